package audit

import (
	"bytes"
	"maps"
	"testing"
)

// FuzzParseKey: a key file is either refused or is exactly the bytes
// marshalKey writes for what was parsed; and any tenant label survives a
// round trip.
func FuzzParseKey(f *testing.F) {
	f.Add(marshalKey("t1", make([]byte, 32)))
	f.Add(marshalKey("tenant \"quoted\"\n", bytes.Repeat([]byte{0xff}, 32)))
	f.Add([]byte("clawkeep audit key v1\ntenant t1\nseed AAAA\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		seed := bytes.Repeat([]byte{9}, 32)
		if tenant, got, err := parseKey(marshalKey(string(data), seed)); err != nil || tenant != string(data) || !bytes.Equal(got, seed) {
			t.Fatalf("tenant %q does not round-trip: %q, %v", data, tenant, err)
		}
		tenant, seed, err := parseKey(data)
		if err != nil {
			return
		}
		if len(seed) != 32 || !bytes.Equal(marshalKey(tenant, seed), data) {
			t.Fatalf("parseKey accepted a non-canonical key file %q", data)
		}
	})
}

// FuzzDecodeDetail: a stored detail is either refused or is exactly what
// encodeDetail writes for the map it decodes to, so one stored text has one
// meaning.
func FuzzDecodeDetail(f *testing.F) {
	f.Add(`{"layer":"policy","reason":"denied \u003cby\u003e rule"}`)
	f.Add(`{"b":"1","a":"2"}`)
	f.Add(`{"a":"1","a":"2"}`)
	f.Add(`{}`)
	f.Add(``)
	f.Add(`{"a":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := decodeDetail(s)
		if err != nil {
			return
		}
		if again, err := encodeDetail(d); err != nil || again != s {
			t.Fatalf("decodeDetail(%q) accepted; re-encodes as %q, %v", s, again, err)
		}
	})
}

// FuzzCanonicalIsInjective: two records that differ in any field never
// share a canonical encoding, so no edit of a stored record keeps its hash.
func FuzzCanonicalIsInjective(f *testing.F) {
	f.Add("agent", "decision", "k", "v", "agent", "decision", "k", "v", int64(1), int64(1))
	f.Add("ab", "c", "", "", "a", "bc", "", "", int64(0), int64(0))
	f.Add("a", "", "k", "v", "a", "", "kv", "", int64(0), int64(0))
	f.Add("a", "b\x00", "k", "", "a", "b", "k\x00", "", int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, a1, e1, k1, v1, a2, e2, k2, v2 string, c1, c2 int64) {
		mk := func(agent, event, k, v string, cost int64) (Record, string, bool) {
			r := Record{Agent: agent, Event: event, Tool: k + v, CostTokens: cost}
			if k != "" {
				r.Detail = map[string]string{k: v}
			}
			d, err := encodeDetail(r.Detail)
			return r, d, err == nil
		}
		r1, d1, ok1 := mk(a1, e1, k1, v1, c1)
		r2, d2, ok2 := mk(a2, e2, k2, v2, c2)
		if !ok1 || !ok2 {
			return
		}
		same := r1.strings() == r2.strings() && c1 == c2 && maps.Equal(r1.Detail, r2.Detail)
		if enc := bytes.Equal(appendBody(nil, &r1, d1), appendBody(nil, &r2, d2)); enc != same {
			t.Fatalf("records %+v and %+v: equal encodings %v, equal records %v", r1, r2, enc, same)
		}
	})
}
