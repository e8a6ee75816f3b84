package ckp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting. encoding/json recurses once per level, so
// a deep value costs stack and time before any check of ours could run; no
// CKP message comes near 64 levels.
const maxDepth = 64

// request is one JSON-RPC request or notification whose envelope is valid.
type request struct {
	id     json.RawMessage // nil for a notification; else a string, number or null literal
	method string
	params json.RawMessage // nil when absent; otherwise any JSON value, checked by the method
}

func (r request) notification() bool { return r.id == nil }

// message is one element of a frame: a request, or the refusal its
// envelope earned. A refused envelope is always answered, to req.id when
// that could be read and to null otherwise: it is not a valid
// notification, so the silence owed to notifications does not apply.
type message struct {
	req request
	err *Error // or nil
}

// frame is one decoded line: a single message, or a batch of them.
type frame struct {
	batch bool
	msgs  []message
}

// decodeFrame decodes one line. A non-nil *Error refuses the whole line
// with a single reply to id null. maxBatch bounds the elements of a batch.
//
// The checks run cheapest first and before any unmarshalling: UTF-8
// (encoding/json would silently replace bad bytes, so what we act on would
// differ from what was sent), nesting depth, then syntax.
func decodeFrame(line []byte, maxBatch int) (frame, *Error) {
	if !utf8.Valid(line) {
		return frame{}, errorf(CodeParseError, "parse error: invalid UTF-8")
	}
	if tooDeep(line, maxDepth) {
		return frame{}, errorf(CodeInvalidRequest, "invalid request: JSON nested deeper than %d levels", maxDepth)
	}
	if !json.Valid(line) {
		return frame{}, errorf(CodeParseError, "parse error: invalid JSON")
	}
	line = bytes.TrimLeft(line, " \t\r\n")
	if line[0] != '[' {
		return frame{msgs: []message{decodeMessage(line)}}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(line, &elems); err != nil {
		return frame{}, errorf(CodeParseError, "parse error: invalid JSON")
	}
	if len(elems) == 0 {
		return frame{}, errorf(CodeInvalidRequest, "invalid request: empty batch")
	}
	if len(elems) > maxBatch {
		e := errorf(CodeInvalidRequest, "invalid request: batch of more than %d requests", maxBatch)
		e.Data = map[string]any{"limit": maxBatch}
		return frame{}, e
	}
	f := frame{batch: true, msgs: make([]message, len(elems))}
	for i, el := range elems {
		f.msgs[i] = decodeMessage(el)
	}
	return f, nil
}

// tooDeep reports whether b, read as JSON, opens more than max nested
// arrays or objects. It does not validate; brackets inside strings do not
// count.
func tooDeep(b []byte, max int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// decodeMessage decodes one syntactically valid JSON value as a request
// envelope: exactly the members jsonrpc "2.0", method (a string), and
// optionally id (string, number or null) and params, each at most once.
func decodeMessage(raw []byte) message {
	var m message
	ms, ok := objectMembers(raw)
	if !ok {
		return refuse(m, "request must be a JSON object")
	}
	var version, method json.RawMessage
	var problem string // the first envelope problem; reported once the id is known
	var seen [4]bool
	for _, mb := range ms {
		slot := -1
		switch mb.key {
		case "jsonrpc":
			slot, version = 0, mb.value
		case "method":
			slot, method = 1, mb.value
		case "params":
			slot, m.req.params = 2, mb.value
		case "id":
			slot = 3
			if validID(mb.value) {
				m.req.id = mb.value
			} else {
				m.req.id = nil
				problem = "id must be a string, a number or null"
			}
		default:
			if problem == "" {
				problem = "unknown member " + quoteField("", mb.key)
			}
		}
		if slot >= 0 && seen[slot] && problem == "" {
			problem = "duplicate member " + quoteField("", mb.key)
		}
		if slot >= 0 {
			seen[slot] = true
		}
	}
	if problem != "" {
		return refuse(m, problem)
	}
	if version == nil {
		return refuse(m, `missing member "jsonrpc"`)
	}
	if string(version) != `"2.0"` {
		var s string
		if json.Unmarshal(version, &s) != nil || s != "2.0" {
			return refuse(m, `jsonrpc must be "2.0"`)
		}
	}
	if method == nil {
		return refuse(m, `missing member "method"`)
	}
	if method[0] != '"' || json.Unmarshal(method, &m.req.method) != nil {
		return refuse(m, "method must be a string")
	}
	return m
}

// member is one member of a JSON object; value aliases the input.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers splits obj into its members, in order and duplicates
// included, which encoding/json cannot report. obj must have passed
// json.Valid: this is a splitter, not a validator. It is not
// json.Decoder.Token because that builds (and drops) an error string for
// every value it reads, which dominated the cost of a request.
func objectMembers(obj []byte) ([]member, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	var ms []member
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return ms, true
	}
	for i < len(obj) && obj[i] == '"' {
		end := valueEnd(obj, i)
		key, ok := unquote(obj[i:end])
		if !ok {
			return nil, false
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		i = skipSpace(obj, i+1)
		end = valueEnd(obj, i)
		if end <= i {
			return nil, false
		}
		ms = append(ms, member{key, obj[i:end]})
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return nil, false
		}
		switch obj[i] {
		case '}':
			return ms, true
		case ',':
			i = skipSpace(obj, i+1)
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = valueEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
	}
	return len(b)
}

func unquote(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b[1 : len(b)-1]), true
	}
	var s string
	return s, json.Unmarshal(b, &s) == nil
}

func refuse(m message, why string) message {
	m.err = errorf(CodeInvalidRequest, "invalid request: %s", why)
	return m
}

func validID(v json.RawMessage) bool {
	switch c := v[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return string(v) == "null"
}

// encodeRequest is the inverse of decodeMessage for an accepted request; the
// fuzz test holds the two to a round trip.
func encodeRequest(r request) []byte {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0"`)
	if r.id != nil {
		b.WriteString(`,"id":`)
		b.Write(r.id)
	}
	b.WriteString(`,"method":`)
	method, _ := json.Marshal(r.method) // a string always encodes
	b.Write(method)
	if r.params != nil {
		b.WriteString(`,"params":`)
		b.Write(r.params)
	}
	b.WriteByte('}')
	return b.Bytes()
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"` // nil encodes as null
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

type notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

// marshalLine encodes v as one line. HTML escaping is off so that ids and
// text come back as sent; json never emits a raw newline inside a value.
func marshalLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeResult(id json.RawMessage, result any) []byte {
	b, err := marshalLine(response{JSONRPC: "2.0", ID: id, Result: result})
	if err != nil {
		return encodeError(id, &Error{Code: CodeInternal, Message: "internal error: result could not be encoded"})
	}
	return b
}

func encodeError(id json.RawMessage, e *Error) []byte {
	b, err := marshalLine(response{JSONRPC: "2.0", ID: id, Error: e})
	if err != nil {
		// Data from a Coded error may hold values json cannot encode.
		b, _ = marshalLine(response{JSONRPC: "2.0", ID: id, Error: &Error{Code: e.Code, Message: e.Message}})
	}
	return b
}

// lineReader reads newline-delimited frames of at most max bytes. A longer
// line is discarded up to its newline and reported, so that one oversized
// frame costs the peer one error, not the connection; memory stays bounded
// by max whatever the peer sends.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	err error // sticky: returned once the last line has been delivered
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its "\n" or "\r\n". tooLong reports a
// discarded line. The line is valid until the next call. err is io.EOF or
// a read error once input ends; a final line without "\n" still counts.
func (r *lineReader) next() (line []byte, tooLong bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		// +2 leaves room for the "\r\n" that does not count against max.
		if !tooLong && len(r.buf)+len(chunk) > r.max+2 {
			tooLong, r.buf = true, r.buf[:0]
		}
		if !tooLong {
			r.buf = append(r.buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			r.err = err
			if !tooLong && len(r.buf) == 0 {
				return nil, false, err
			}
		}
		line = bytes.TrimSuffix(r.buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if tooLong || len(line) > r.max {
			return nil, true, nil
		}
		return line, false, nil
	}
}

func frameTooLong(max int) *Error {
	e := errorf(CodeInvalidRequest, "invalid request: frame longer than %d bytes", max)
	e.Data = map[string]any{"limit": max}
	return e
}
