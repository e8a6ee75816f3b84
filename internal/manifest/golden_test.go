package manifest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of golden files")

const goldenSep = "----------\n"

// TestShorthandGolden: each testdata/golden file is a manifest using a
// shorthand form, a separator line, and the canonical result as JSON (only
// the slots the manifest sets). Regenerate with -update and review the diff.
func TestShorthandGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(data), goldenSep)
			if !ok {
				t.Fatalf("no %q separator", strings.TrimSpace(goldenSep))
			}
			c, err := Parse([]byte(in), Options{File: "golden.yaml"})
			if err != nil {
				t.Fatal(err)
			}
			got := canonicalJSON(t, c)
			if *update {
				if err := os.WriteFile(f, []byte(in+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("canonical form differs (run with -update and review):\n%s", got)
			}
		})
	}
}

func canonicalJSON(t *testing.T, c *Claw) string {
	t.Helper()
	slots := map[string]any{}
	if len(c.Providers) > 0 {
		slots["Providers"] = c.Providers
	}
	if len(c.Channels) > 0 {
		slots["Channels"] = c.Channels
	}
	if len(c.Tools) > 0 {
		slots["Tools"] = c.Tools
	}
	if c.Sandbox != nil {
		slots["Sandbox"] = c.Sandbox
	}
	if len(c.Policies) > 0 {
		slots["Policies"] = c.Policies
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(slots); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
