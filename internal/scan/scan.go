// Package scan finds secrets in text: the tenant's own vault values in their
// common encodings, provider credentials by their real shapes, and
// high-entropy values assigned to secret-like names.
//
// # Threat model
//
// Text leaving the kernel (tool output shown to a model, log lines, audit
// details, outbound request bodies) may carry a credential, put there by a
// careless tool or by a steered agent that wants to exfiltrate it. The
// attacker may encode a vault value (base64 in both alphabets, with or
// without padding, hex in either case, URL encoding) to slip past an exact
// match. Scan runs on attacker-chosen input, so it must run in time linear
// in the input and must never panic: candidates are found with literal
// searches for their prefixes (or for '=' and ':' for assignments), each
// candidate is examined in a window of bounded size, and a prefix repeated
// back to back is examined once.
//
// Scan does not find a secret that is split, re-encoded twice, encrypted,
// embedded unaligned in a longer base64 stream, or written in a shape it does
// not know with an entropy below the threshold. It is a net for accidents
// and lazy exfiltration, not a proof that text is clean.
//
// # Guarantees
//
// Findings are sorted by offset, in bounds and non-overlapping; where two
// candidates overlap the longer one wins. Kinds are the Kind constants.
// GitHub classic tokens are reported only when their CRC32 checksum holds. Redact removes every finding of
// Scan and every other occurrence of a finding's text, so a value found once
// is not left behind anywhere else in the output. Neither Scan, Redact nor
// the Detector's String form ever return a known value outside the text they
// were given.
package scan

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
	"strconv"
)

// Finding is one secret in a scanned text: Kind names the rule (for example
// "github-token", "vault", "generic-secret") and text[Start:End] holds it.
type Finding struct {
	Kind       string
	Start, End int
}

// MinKnownLen is the shortest vault value NewDetector looks for; shorter
// values would match ordinary words and numbers.
const MinKnownLen = 8

// Detector finds secrets. It is safe for concurrent use: nothing in it
// changes after NewDetector.
//
// The zero Detector finds provider formats and generic secrets but none of
// the tenant's own values; build one with NewDetector.
type Detector struct {
	known [][]byte // encoded forms of the vault values, deduplicated; never printed
}

// NewDetector returns a detector that also finds the given vault values,
// raw and in base64 (std and URL, padded or not), hex (lower and upper case)
// and URL-encoded forms. Values shorter than MinKnownLen are ignored. The
// values are copied.
func NewDetector(known [][]byte) *Detector {
	d := &Detector{}
	seen := map[string]bool{}
	for _, k := range known {
		if len(k) < MinKnownLen {
			continue
		}
		for _, form := range encodings(k) {
			if len(form) < MinKnownLen || seen[form] {
				continue
			}
			seen[form] = true
			d.known = append(d.known, []byte(form))
		}
	}
	// Longest first, so that the raw form inside a longer encoding does not
	// matter: overlap resolution keeps the longer one anyway.
	sort.SliceStable(d.known, func(i, j int) bool { return len(d.known[i]) > len(d.known[j]) })
	return d
}

// String describes the detector without its values.
func (d *Detector) String() string {
	if d == nil {
		return "scan.Detector(nil)"
	}
	return "scan.Detector{known forms: " + strconv.Itoa(len(d.known)) + "}"
}

// GoString is String: %#v must not print the vault values either.
func (d *Detector) GoString() string { return d.String() }

// Scan returns the secrets in text, sorted by Start and non-overlapping.
// A nil Detector behaves as the zero Detector.
func (d *Detector) Scan(text []byte) []Finding {
	var c collector
	if d != nil {
		for _, k := range d.known {
			for off := 0; off <= len(text)-len(k); {
				i := bytes.Index(text[off:], k)
				if i < 0 {
					break
				}
				c.add(KindVault, off+i, off+i+len(k))
				off += i + 1
			}
		}
	}
	scanProviders(text, &c)
	return c.resolve(text)
}

// Redact returns a copy of text in which every finding of Scan, and every
// other occurrence of a finding's text, is replaced by "[REDACTED:kind]".
func (d *Detector) Redact(text []byte) []byte {
	fs := d.Scan(text)
	if len(fs) == 0 {
		return bytes.Clone(text)
	}
	var secrets []secret
	seen := map[string]bool{}
	for _, f := range fs {
		v := text[f.Start:f.End]
		if seen[string(v)] {
			continue
		}
		seen[string(v)] = true
		secrets = append(secrets, secret{v, f.Kind})
	}
	cur := text
	// A marker never contains a secret unless the secret itself contains
	// "[REDACTED:", and then every round shrinks the text; a few rounds end
	// it, and the fallback below fails closed.
	for round := 0; round < 4; round++ {
		spans := occurrences(cur, secrets)
		if len(spans) == 0 {
			if round == 0 {
				panic("scan: internal error: finding text not found in its own input")
			}
			return cur
		}
		cur = replace(cur, merge(spans))
	}
	return []byte("[REDACTED]")
}

type secret struct {
	val  []byte // a finding's text, at least one byte
	kind string
}

// occurrences returns every occurrence in text of every secret. With few
// secrets it searches for each in turn; with many (an attacker can fill a
// text with thousands of distinct findings) it makes one Rabin-Karp pass per
// distinct length, so the work is the text length times the number of
// distinct lengths, not times the number of secrets.
func occurrences(text []byte, secrets []secret) []Finding {
	var out []Finding
	if len(secrets) <= 16 {
		for _, s := range secrets {
			for off := 0; off <= len(text)-len(s.val); {
				i := bytes.Index(text[off:], s.val)
				if i < 0 {
					break
				}
				out = append(out, Finding{s.kind, off + i, off + i + len(s.val)})
				off += i + 1
			}
		}
		return out
	}
	// Polynomial hashing modulo the prime 2^61-1 with a random base: unlike
	// a power-of-two modulus, an attacker cannot build colliding strings
	// without knowing the base.
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		panic("scan: internal error: no randomness: " + err.Error())
	}
	base := binary.LittleEndian.Uint64(rb[:])%(mersenne61-256) + 256
	byLen := map[int]map[uint64][]int{}
	for i, s := range secrets {
		if byLen[len(s.val)] == nil {
			byLen[len(s.val)] = map[uint64][]int{}
		}
		h := polyHash(s.val, base)
		byLen[len(s.val)][h] = append(byLen[len(s.val)][h], i)
	}
	for l, table := range byLen {
		if l > len(text) {
			continue
		}
		pow := uint64(1) // base^(l-1)
		for range l - 1 {
			pow = mulMod(pow, base)
		}
		h := polyHash(text[:l], base)
		for i := 0; ; i++ {
			for _, id := range table[h] {
				if bytes.Equal(text[i:i+l], secrets[id].val) {
					out = append(out, Finding{secrets[id].kind, i, i + l})
				}
			}
			if i+l >= len(text) {
				break
			}
			h = addMod(h, mersenne61-mulMod(uint64(text[i]), pow))
			h = addMod(mulMod(h, base), uint64(text[i+l]))
		}
	}
	return out
}

const mersenne61 = 1<<61 - 1

func mulMod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	// a*b = hi*2^64 + lo; 2^64 = 8 * 2^61 ≡ 8 (mod 2^61-1).
	r := (lo & mersenne61) + (lo >> 61) + (hi << 3)
	for r >= mersenne61 {
		r -= mersenne61
	}
	return r
}

func addMod(a, b uint64) uint64 {
	r := a + b
	if r >= mersenne61 {
		r -= mersenne61
	}
	return r
}

func polyHash(b []byte, base uint64) uint64 {
	var h uint64
	for _, c := range b {
		h = addMod(mulMod(h, base), uint64(c))
	}
	return h
}

// merge sorts spans and joins overlapping ones; a joined span keeps the kind
// of its first part.
func merge(spans []Finding) []Finding {
	slices.SortFunc(spans, func(a, b Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		if s.Start < last.End {
			last.End = max(last.End, s.End)
			continue
		}
		out = append(out, s)
	}
	return out
}

// replace returns text with each of the sorted, disjoint spans replaced by
// its marker.
func replace(text []byte, spans []Finding) []byte {
	out := make([]byte, 0, len(text))
	prev := 0
	for _, s := range spans {
		out = append(out, text[prev:s.Start]...)
		out = append(out, "[REDACTED:"...)
		out = append(out, s.Kind...)
		out = append(out, ']')
		prev = s.End
	}
	return append(out, text[prev:]...)
}

// collector gathers candidate findings from every rule.
type collector struct {
	cands []Finding
}

func (c *collector) add(kind string, start, end int) {
	c.cands = append(c.cands, Finding{kind, start, end})
}

// resolve keeps the longest of overlapping candidates (ties: the earlier,
// then the one added first) and returns them sorted by Start. Candidates
// inside a base64 data: URI of an image are dropped.
func (c *collector) resolve(text []byte) []Finding {
	if len(c.cands) == 0 {
		return nil
	}
	images := imageSpans(text)
	order := make([]int, len(c.cands))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		a, b := c.cands[x], c.cands[y]
		if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
			return lb - la
		}
		return a.Start - b.Start
	})
	var kept []Finding // sorted by Start, disjoint
	for _, idx := range order {
		f := c.cands[idx]
		if f.End <= f.Start || insideAny(images, f) {
			continue
		}
		// First kept span that ends after f starts.
		i := sort.Search(len(kept), func(i int) bool { return kept[i].End > f.Start })
		if i < len(kept) && kept[i].Start < f.End {
			continue // overlaps a longer (or equal, earlier) one
		}
		kept = slices.Insert(kept, i, f)
	}
	return kept
}

func insideAny(spans []Finding, f Finding) bool {
	for _, s := range spans {
		if f.Start >= s.Start && f.End <= s.End {
			return true
		}
	}
	return false
}

// imageSpans returns the base64 payloads of data:image/ URIs.
func imageSpans(text []byte) []Finding {
	var out []Finding
	const lit = "data:image/"
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte(lit))
		if i < 0 {
			return out
		}
		start := off + i
		j := start + len(lit)
		for j < len(text) && (isB64Std(text[j]) || text[j] == ';' || text[j] == ',' || text[j] == '-' || text[j] == '_') {
			j++
		}
		out = append(out, Finding{"image", start, j})
		off = j
		if off <= start {
			off = start + 1
		}
	}
}
