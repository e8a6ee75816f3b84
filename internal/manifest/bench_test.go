package manifest

import (
	"path/filepath"
	"testing"
)

// BenchmarkLoadExample loads the official L3 example manifest.
func BenchmarkLoadExample(b *testing.B) {
	path := filepath.Join(sharedCKP, "examples", "sdk_examples_l3.claw.yaml")
	needShared(b, path)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadRefs loads a manifest made of refs, globs and claw:// URIs,
// which adds a confined file open per primitive.
func BenchmarkLoadRefs(b *testing.B) {
	dir := b.TempDir()
	write(b, dir, "claw.yaml", minimal+"  tools: [\"./tools/*.yaml\"]\n")
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		write(b, dir, "tools/"+n+".yaml", toolFile(n, ""))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(filepath.Join(dir, "claw.yaml")); err != nil {
			b.Fatal(err)
		}
	}
}
