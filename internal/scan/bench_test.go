package scan

import (
	"strings"
	"testing"

	"github.com/clawkeep/clawkeep/internal/scan/scantest"
)

// mixedText returns about n bytes of prose, Go code, JSON and log lines with
// a secret every 64 KiB, the kind of text tool output is made of.
func mixedText(n int) []byte {
	g := scantest.NewGen(42)
	parts := scantest.Prose
	var b strings.Builder
	next := 64 << 10
	for i := 0; b.Len() < n; i++ {
		b.WriteString(parts[i%len(parts)])
		if b.Len() >= next {
			b.WriteString("export GITHUB_TOKEN=" + g.Make("ghp") + "\n")
			next += 64 << 10
		}
	}
	return []byte(b.String())
}

func BenchmarkScanMixed(b *testing.B) {
	text := mixedText(1 << 20)
	d := NewDetector([][]byte{scantest.VaultValue, []byte("another-vault-value-123")})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.Scan(text)
	}
}

func BenchmarkRedactMixed(b *testing.B) {
	text := mixedText(1 << 20)
	d := NewDetector([][]byte{scantest.VaultValue})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Redact(text)
	}
}

// BenchmarkScanAdversarial measures input built from nothing but triggers,
// the worst case for the bounded windows each candidate opens.
func BenchmarkScanAdversarial(b *testing.B) {
	for _, unit := range []string{"-----BEGIN PRIVATE KEY-----", "token=token", "token:token", "password=\"x", "sk-", "eyJ ", "a://b:c@", "ghp_", "AKIA", "SG.x"} {
		text := []byte(strings.Repeat(unit, (1<<20)/len(unit)))
		b.Run(strings.Trim(unit, " -:/=@"), func(b *testing.B) {
			var d Detector
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				d.Scan(text)
			}
		})
	}
}

// BenchmarkRedactManyFindings: 1 MiB of distinct AWS key ids, each written
// twice, the worst case for redacting every occurrence.
func BenchmarkRedactManyFindings(b *testing.B) {
	g := scantest.NewGen(5)
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		k := g.Make("awsid")
		sb.WriteString(k + " " + k + "\n")
	}
	text := []byte(sb.String())
	var d Detector
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Redact(text)
	}
}
