package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"
	"unicode/utf8"
)

// The record and checkpoint encodings below are what the chain hashes and the
// key signs. Changing a byte of them breaks every existing log, so they are
// versioned by their domain tags.
const (
	recordTag     = "clawkeep audit record v1\x00"
	checkpointTag = "clawkeep audit checkpoint v1"
	macKeyTag     = "clawkeep audit record mac v1"

	// timeLayout is RFC 3339 with a fixed-width fraction, so that stored
	// times sort as text (Go's RFC3339Nano trims zeros and does not).
	timeLayout = "2006-01-02T15:04:05.000000000Z"

	// maxRecordBytes bounds one record: the log holds names and short
	// reasons, and an unbounded field would let a caller bloat every commit.
	maxRecordBytes = 64 << 10
)

// ErrInvalidRecord is wrapped by Append for a record the log refuses to store.
var ErrInvalidRecord = errors.New("audit: invalid record")

// entry is a validated record waiting for its commit. body is the canonical
// encoding of everything after seq and time, computed by the caller's
// goroutine so that the committer only hashes.
type entry struct {
	rec    Record // Detail is nil; detail holds it encoded
	detail string
	body   []byte
	ts     string   // the stored time; set by the committer
	hash   [32]byte // set by the committer
}

func newEntry(r Record) (entry, error) {
	if r.Seq != 0 || !r.Time.IsZero() {
		return entry{}, fmt.Errorf("%w: Seq and Time are set by the log", ErrInvalidRecord)
	}
	if r.Event == "" {
		return entry{}, fmt.Errorf("%w: empty Event", ErrInvalidRecord)
	}
	for _, s := range r.strings() {
		if !utf8.ValidString(s) {
			return entry{}, fmt.Errorf("%w: a field is not valid UTF-8", ErrInvalidRecord)
		}
	}
	detail, err := encodeDetail(r.Detail)
	if err != nil {
		return entry{}, err
	}
	r.Detail = nil
	n := bodySize(&r, detail)
	if n > maxRecordBytes {
		return entry{}, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrInvalidRecord, n, maxRecordBytes)
	}
	return entry{rec: r, detail: detail, body: appendBody(make([]byte, 0, n), &r, detail)}, nil
}

// strings lists the text fields in canonical order.
func (r *Record) strings() [8]string {
	return [8]string{r.Tenant, r.Agent, r.Event, r.Tool, r.RequestID, r.Decision, r.Rule, r.Outcome}
}

func bodySize(r *Record, detail string) int {
	n := 8 + 4 + len(detail)
	for _, s := range r.strings() {
		n += 4 + len(s)
	}
	return n
}

// appendBody appends the length-prefixed text fields, the cost and the
// detail JSON: every field has an explicit length, so no two records share
// an encoding.
func appendBody(b []byte, r *Record, detail string) []byte {
	for _, s := range r.strings() {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.CostTokens))
	return appendString(b, detail)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// chainHash is SHA-256(prev || canonical record), where the canonical record
// is the domain tag, seq, the time as stored, then body.
func chainHash(h hash.Hash, prev *[32]byte, seq uint64, ts string, body []byte) [32]byte {
	var pre [len(recordTag) + 8 + 4 + len(timeLayout)]byte
	b := append(pre[:0], recordTag...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = appendString(b, ts)
	h.Reset()
	h.Write(prev[:])
	h.Write(b)
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// macKey derives the record MAC key from the signing seed, so one secret
// file holds both and a replaced key file fails both.
func macKey(seed []byte) []byte {
	h := sha256.New()
	h.Write([]byte(macKeyTag))
	h.Write(seed)
	return h.Sum(nil)
}

// recordMAC authenticates a record's chain hash: without the key nobody can
// append a record that verifies, even after the last checkpoint.
func recordMAC(m hash.Hash, sum *[32]byte) [32]byte {
	m.Reset()
	m.Write(sum[:])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func newMAC(seed []byte) hash.Hash { return hmac.New(sha256.New, macKey(seed)) }

// checkpointMessage is what a checkpoint signature covers.
func checkpointMessage(seq uint64, sum []byte, ts string) []byte {
	b := make([]byte, 0, len(checkpointTag)+8+len(sum)+len(ts))
	b = append(b, checkpointTag...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, sum...)
	return append(b, ts...)
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// encodeDetail gives the stored (and hashed) form of Detail: "" for none,
// otherwise JSON with sorted keys. Invalid UTF-8 is refused because JSON
// would silently replace it, and the stored text would no longer say what
// the caller wrote.
func encodeDetail(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "", nil
	}
	for k, v := range d {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return "", fmt.Errorf("%w: a Detail key or value is not valid UTF-8", ErrInvalidRecord)
		}
	}
	b, err := json.Marshal(d) // sorts keys
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	return string(b), nil
}

// decodeDetail parses a stored detail and accepts only the exact form
// encodeDetail writes, so one stored text has one meaning.
func decodeDetail(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("audit: detail: %w", err)
	}
	if again, err := encodeDetail(d); err != nil || again != s {
		return nil, errors.New("audit: detail: not in canonical form")
	}
	return d, nil
}
