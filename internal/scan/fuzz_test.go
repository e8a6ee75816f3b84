package scan

import (
	"bytes"
	"testing"

	"github.com/clawkeep/clawkeep/internal/scan/scantest"
)

// FuzzScan: Scan never panics, its findings are in bounds, sorted and
// non-overlapping, and Redact leaves no finding's text anywhere in its
// output.
func FuzzScan(f *testing.F) {
	for i, l := range loadCorpus(f) {
		f.Add([]byte(scantest.NewGen(uint64(i)).Expand(l.Text)))
	}
	f.Add([]byte("password=[REDACTED:generic-secret]Zx9[REDACTED:g]Zx9q"))
	f.Add([]byte("ghp_ghp_ghp_ sk-sk-sk- eyJ.eyJ. -----BEGIN PRIVATE KEY-----"))
	f.Add([]byte{})
	d := NewDetector([][]byte{scantest.VaultValue, []byte("fuzz-known-value")})
	f.Fuzz(func(t *testing.T, text []byte) {
		fs := d.Scan(text)
		checkFindings(t, text, fs)
		out := d.Redact(text)
		for _, fd := range fs {
			if v := text[fd.Start:fd.End]; bytes.Contains(out, v) {
				t.Fatalf("finding %v (%q) survives in Redact output %q", fd, v, out)
			}
		}
	})
}
