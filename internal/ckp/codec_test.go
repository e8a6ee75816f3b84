package ckp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeFrameRefusals(t *testing.T) {
	cases := []struct {
		name string
		line string
		code int    // of the whole frame, or of its single message
		id   string // the reply's id; "" when it must be null
	}{
		{"truncated JSON", `{"jsonrpc":"2.0","id":1,"method":`, CodeParseError, ""},
		{"trailing garbage", `{"jsonrpc":"2.0","id":1,"method":"m"} x`, CodeParseError, ""},
		{"two values on one line", `{"jsonrpc":"2.0","id":1,"method":"m"}{"jsonrpc":"2.0","id":2,"method":"m"}`, CodeParseError, ""},
		{"invalid UTF-8 in a string", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\xc3\"}", CodeParseError, ""},
		{"65 levels", `{"jsonrpc":"2.0","id":1,"method":"m","params":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, CodeInvalidRequest, ""},
		{"deep but unterminated", strings.Repeat("{", 100), CodeInvalidRequest, ""},
		{"not an object", `true`, CodeInvalidRequest, ""},
		{"empty batch", `[]`, CodeInvalidRequest, ""},
		{"missing jsonrpc", `{"id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"jsonrpc as a number", `{"jsonrpc":2.0,"id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"missing method", `{"jsonrpc":"2.0","id":"x"}`, CodeInvalidRequest, `"x"`},
		{"method null", `{"jsonrpc":"2.0","id":"x","method":null}`, CodeInvalidRequest, `"x"`},
		{"unknown member", `{"jsonrpc":"2.0","id":1,"method":"m","meta":{}}`, CodeInvalidRequest, "1"},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`, CodeInvalidRequest, "2"},
		{"duplicate params", `{"jsonrpc":"2.0","id":1,"method":"m","params":{},"params":{"a":1}}`, CodeInvalidRequest, "1"},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"m"}`, CodeInvalidRequest, ""},
		{"boolean id", `{"jsonrpc":"2.0","id":false,"method":"m"}`, CodeInvalidRequest, ""},
	}
	for _, tc := range cases {
		f, e := decodeFrame([]byte(tc.line), 1024)
		if e == nil && len(f.msgs) == 1 {
			e = f.msgs[0].err
			if tc.id != "" && string(f.msgs[0].req.id) != tc.id {
				t.Errorf("%s: id %s, want %s", tc.name, f.msgs[0].req.id, tc.id)
			}
			if tc.id == "" && f.msgs[0].req.id != nil {
				t.Errorf("%s: id %s, want none", tc.name, f.msgs[0].req.id)
			}
		}
		if e == nil || e.Code != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, e, tc.code)
		}
	}
}

func TestDecodeFrameAccepts(t *testing.T) {
	f, e := decodeFrame([]byte(` {"params":{"a" : [1]},"method":"claw.x","jsonrpc":"\u0032.0","id":-0.5e1} `), 1024)
	if e != nil || f.batch || len(f.msgs) != 1 || f.msgs[0].err != nil {
		t.Fatalf("decodeFrame: %v %+v", e, f)
	}
	r := f.msgs[0].req
	if r.method != "claw.x" || string(r.id) != "-0.5e1" || string(r.params) != `{"a" : [1]}` {
		t.Fatalf("request %+v", r)
	}
	f, _ = decodeFrame([]byte(`{"jsonrpc":"2.0","method":"n","id":null}`), 1024)
	if r := f.msgs[0].req; r.notification() || string(r.id) != "null" {
		t.Fatal(`"id":null is a request to be answered with id null, not a notification`)
	}
}

// FuzzDecode: decoding never panics, refusals carry only the codes the
// decoder may give, and every accepted request re-encodes to JSON that
// decodes to the same request.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"claw.status"}`,
		`{"jsonrpc":"2.0","method":"claw.initialized"}`,
		`{"jsonrpc":"2.0","id":"a","method":"claw.tool.call","params":{"name":"echo","arguments":{"t":"\u00e9\n"}}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},1]`,
		`[]`,
		`{"jsonrpc":"2.0","id":1,"method":`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}",
		`{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`,
		`{"jsonrpc":"2.0","id":null,"method":"m","params":[]}`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, e := decodeFrame(line, 1024)
		if e == nil {
			sameMembersAsEncodingJSON(t, line)
		}
		if e != nil {
			if e.Code != CodeParseError && e.Code != CodeInvalidRequest {
				t.Fatalf("frame refused with code %d", e.Code)
			}
			return
		}
		if len(fr.msgs) == 0 || (!fr.batch && len(fr.msgs) != 1) {
			t.Fatalf("frame with %d messages (batch %v)", len(fr.msgs), fr.batch)
		}
		for _, m := range fr.msgs {
			if m.err != nil {
				if m.err.Code != CodeInvalidRequest {
					t.Fatalf("message refused with code %d", m.err.Code)
				}
				continue
			}
			enc := encodeRequest(m.req)
			again, e := decodeFrame(enc, 1024)
			if e != nil || again.batch || len(again.msgs) != 1 || again.msgs[0].err != nil {
				t.Fatalf("re-encoded request %s refused: %v %v", enc, e, again.msgs)
			}
			r := again.msgs[0].req
			if r.method != m.req.method || !bytes.Equal(r.id, m.req.id) || !bytes.Equal(r.params, m.req.params) ||
				(r.id == nil) != (m.req.id == nil) || (r.params == nil) != (m.req.params == nil) {
				t.Fatalf("round trip changed the request:\n%+v\n%+v", m.req, r)
			}
		}
	})
}

// sameMembersAsEncodingJSON holds objectMembers to encoding/json, the slow
// reference: on a valid object both must see the same members, the last of
// duplicates winning in encoding/json.
func sameMembersAsEncodingJSON(t *testing.T, line []byte) {
	if line = bytes.TrimLeft(line, " \t\r\n"); line[0] != '{' {
		return
	}
	var want map[string]json.RawMessage
	if json.Unmarshal(line, &want) != nil {
		if _, ok := objectMembers(line); ok {
			t.Fatalf("objectMembers accepts %q, encoding/json does not", line)
		}
		return
	}
	ms, ok := objectMembers(line)
	if !ok {
		t.Fatalf("objectMembers refuses the object %q", line)
	}
	got := map[string]json.RawMessage{}
	for _, m := range ms {
		got[m.key] = m.value
	}
	if len(got) != len(want) {
		t.Fatalf("objectMembers found %d distinct members, encoding/json %d: %q", len(got), len(want), line)
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("member %q: objectMembers %q, encoding/json %q", k, got[k], v)
		}
	}
}

// FuzzParams: params decoding never panics, refuses only with -32602, and
// what it accepts survives a round trip through its JSON encoding.
func FuzzParams(f *testing.F) {
	for _, s := range []string{
		`{"name":"echo","arguments":{"a":1},"context":{"request_id":"r","identity":"i","sandbox":null,"_meta":{}}}`,
		`{"protocolVersion":"0.3.0","clientInfo":{"name":"n","version":"v"},"manifest":{"kind":"Claw"},"capabilities":{"tools":{}}}`,
		`{"request_id":"r","reason":"ok"}`,
		`{"reason":"x","timeout_ms":300000}`,
		`{"name":"a","name":"b"}`,
		`{"na\u006de":"echo"}`,
		`{}`,
	} {
		for m := range byte(4) {
			f.Add(m, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, method byte, raw []byte) {
		if !utf8.Valid(raw) || tooDeep(raw, maxDepth) || !json.Valid(raw) {
			return // decodeFrame refuses these before any params decoder runs
		}
		raw = bytes.TrimLeft(raw, " \t\r\n")
		if raw[0] != '{' {
			return // dispatch refuses non-object params before decoding them
		}
		roundTrip := func(v any, e *Error, decode func(json.RawMessage) (any, *Error)) {
			if e != nil {
				if e.Code != CodeInvalidParams {
					t.Fatalf("params refused with code %d", e.Code)
				}
				return
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			again, e := decode(enc)
			if e != nil {
				t.Fatalf("re-encoded params %s refused: %v", enc, e)
			}
			if enc2, _ := json.Marshal(again); !bytes.Equal(enc, enc2) {
				t.Fatalf("round trip changed the params:\n%s\n%s", enc, enc2)
			}
		}
		switch method % 4 {
		case 0:
			dec := func(r json.RawMessage) (any, *Error) { return decodeToolCall(r) }
			v, e := dec(raw)
			roundTrip(v, e, dec)
		case 1:
			dec := func(r json.RawMessage) (any, *Error) { return decodeInitialize(r) }
			v, e := dec(raw)
			roundTrip(v, e, dec)
		case 2:
			dec := func(r json.RawMessage) (any, *Error) { return decodeDecision(r) }
			v, e := dec(raw)
			roundTrip(v, e, dec)
		case 3:
			if _, e := decodeShutdown(raw); e != nil && e.Code != CodeInvalidParams {
				t.Fatalf("shutdown params refused with code %d", e.Code)
			}
		}
	})
}

// leakyError is a Coded error from inside the kernel: its own text is
// declared safe, but a wrapper around it may add anything.
type leakyError struct{}

func (leakyError) Error() string           { return "kernel: policy denied" }
func (leakyError) CKPCode() int            { return CodePolicyDenied }
func (leakyError) CKPData() map[string]any { return map[string]any{"rule_id": "r1"} }

type zeroCoded struct{}

func (zeroCoded) Error() string           { return "token=" + secret }
func (zeroCoded) CKPCode() int            { return 0 }
func (zeroCoded) CKPData() map[string]any { return nil }

func TestErrorFromDoesNotLeakInternalErrorText(t *testing.T) {
	internal := fmt.Errorf("querying /var/lib/clawkeep/vault.db with key %s: %w", secret, errors.New("locked"))
	cases := []struct {
		name string
		err  error
		want Error
	}{
		{"plain internal error", internal, Error{Code: CodeInternal, Message: "internal error"}},
		{"zero-coded error", zeroCoded{}, Error{Code: CodeInternal, Message: "internal error"}},
		{"coded error wrapped with a secret", fmt.Errorf("call with key %s: %w", secret, leakyError{}),
			Error{Code: CodePolicyDenied, Message: "kernel: policy denied", Data: map[string]any{"rule_id": "r1"}}},
		{"wire error wrapped with a secret", fmt.Errorf("key %s: %w", secret, &Error{Code: CodeToolTimeout, Message: "tool timed out"}),
			Error{Code: CodeToolTimeout, Message: "tool timed out"}},
		{"wire error without a message", &Error{Code: CodeSandboxDenied}, Error{Code: CodeSandboxDenied, Message: "sandbox denied"}},
		{"nil *Error", (*Error)(nil), Error{Code: CodeInternal, Message: "internal error"}},
	}
	for _, tc := range cases {
		got := ErrorFrom(tc.err)
		b, _ := json.Marshal(got)
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "/var/lib") {
			t.Errorf("%s: wire error leaks: %s", tc.name, b)
		}
		want, _ := json.Marshal(tc.want)
		if string(b) != string(want) {
			t.Errorf("%s: %s, want %s", tc.name, b, want)
		}
	}
	if ErrorFrom(nil) != nil {
		t.Error("ErrorFrom(nil) != nil")
	}
	if s := (&Error{Code: CodeInvalidParams, Message: "invalid params: x"}).Error(); !strings.HasPrefix(s, "ckp: ") {
		t.Errorf("Error() = %q", s)
	}
}

func TestUnencodableErrorDataFallsBack(t *testing.T) {
	b := encodeError(json.RawMessage("1"), &Error{Code: CodePolicyDenied, Message: "denied", Data: map[string]any{"f": func() {}}})
	var w struct{ Error Error }
	if err := json.Unmarshal(b, &w); err != nil || w.Error.Code != CodePolicyDenied || w.Error.Data != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
}
