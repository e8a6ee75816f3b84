package scan

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkInjectionProse(b *testing.B) {
	d := NewInjectionDetector()
	text := injBenignProse(256 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Scan(text)
	}
}

// injAdversarial returns n bytes of near-miss fragments, invisible
// characters, homoglyphs, spaced letters and encodings: every stage works.
func injAdversarial(n int) string {
	parts := []string{
		"ignore the weather, ", "previous ", "instruc\u200btions ", "i g n o r e ", "s y s t e m ",
		"&#105;&amp;%20%41 ", "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ= ", "deadbeefcafebabe0123 ", "<!-- note --> ",
		"<div hidden>x</div> ", "![a](https://x.example/p?s=1) ", "рrеvіоus ", "1gn0r3 ", "\u202e", "ＩＧＮＯＲＥ ",
		"you are now ", "for example ", "do not ", "all your ", "send the ", "$ ", "<|im_ ", "\nsystem ", "[inst ",
	}
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		sb.WriteString(parts[i%len(parts)])
	}
	return sb.String()[:n]
}

func BenchmarkInjectionAdversarial(b *testing.B) {
	d := NewInjectionDetector()
	text := injAdversarial(256 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Scan(text)
	}
}

// BenchmarkInjectionScaling shows time per byte staying flat as the input
// grows fourfold twice.
func BenchmarkInjectionScaling(b *testing.B) {
	d := NewInjectionDetector()
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		text := injAdversarial(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				d.Scan(text)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(text)), "ns/byte")
		})
	}
}
