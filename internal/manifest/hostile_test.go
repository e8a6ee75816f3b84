package manifest

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// nested returns a manifest whose metadata.annotations hold a value nested
// depth levels deep in total (root mapping, metadata and annotations count).
func nested(depth int) string {
	inner := strings.Repeat("[", depth-3) + strings.Repeat("]", depth-3)
	return strings.Replace(minimal, "metadata: {name: m}", "metadata: {name: m, annotations: {deep: "+inner+"}}", 1)
}

// TestHostileInputRefusedCleanly: each input would crash, stall or
// mislead a careless loader; each must give a clean *ErrorList.
func TestHostileInputRefusedCleanly(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	cases := []struct {
		name, src, want string
	}{
		// Expanding aliases is the billion-laughs attack.
		{"alias bomb", bomb, "YAML anchors and aliases are not allowed"},
		{"anchor in manifest", strings.Replace(minimal, "model: m", "model: &m m", 1), "YAML anchors and aliases are not allowed"},
		{"nesting 65 deep", nested(65), "nesting is deeper than 64 levels"},
		// 4 MiB is far above any real manifest.
		{"5 MiB file", minimal + "# " + strings.Repeat("x", 5<<20) + "\n", "file is larger than 4194304 bytes"},
		{"invalid UTF-8", strings.Replace(minimal, "personality: p", "personality: \xff\xfe", 1), "file is not valid UTF-8"},
		// A second document could carry a different manifest than the
		// one a reviewer read.
		{"second document", minimal + "---\n" + minimal, "only one YAML document is allowed per file"},
		{"duplicate key", strings.Replace(minimal, "model: m", "model: m, model: evil", 1), `duplicate key "model"`},
		{"merge key", strings.Replace(minimal, "metadata: {name: m}", "metadata: {<<: {name: m}}", 1), "YAML merge keys (<<) are not allowed"},
		{"binary tag", strings.Replace(minimal, "model: m", "model: !!binary bQ==", 1), "YAML tag !!binary is not allowed"},
		{"custom tag", strings.Replace(minimal, "model: m", "model: !evil m", 1), "YAML tag !evil is not allowed"},
		{"complex key", strings.Replace(minimal, "metadata: {name: m}", "metadata: {name: m, ? [a]: b}", 1), "mapping keys must be plain scalars"},
		{"empty", "", "file is empty"},
		{"not a mapping", "- a\n- b\n", "expected a mapping, got a list"},
		{"syntax error", "claw: [\n", "malformed YAML"},
		{"integer overflow", strings.Replace(minimal, "{type: none}}", "{type: none}, limits: {tokens_per_day: 99999999999999999999999}}", 1), "out of range"},
		{"infinite number", strings.Replace(minimal, "{type: none}}", "{type: none}, hints: {cost_priority: .inf}}", 1), "expected a finite number"},
		{"NaN label value", strings.Replace(minimal, "metadata: {name: m}", "metadata: {name: m, annotations: {x: .nan}}", 1), "expected a finite number"},
		{"not a claw", "claw: \"0.3.0\"\nkind: Tool\nmetadata: {name: t}\nspec: {description: d, input_schema: {type: object}}\n", "h.yaml:2:7: kind: expected kind Claw, got kind Tool"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), Options{File: "h.yaml"})
			var list *ErrorList
			if c != nil || !errors.As(err, &list) {
				t.Fatalf("want *ErrorList, got claw %v err %v", c != nil, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestNesting64DeepAccepted(t *testing.T) {
	if _, err := Parse([]byte(nested(64)), Options{File: "n.yaml"}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesOversizedFile(t *testing.T) {
	dir := t.TempDir()
	big := write(t, dir, "claw.yaml", minimal+"# "+strings.Repeat("x", 5<<20)+"\n")
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "file not found") {
		t.Fatalf("got %v", err)
	}
}

// TestHugeErrorCountIsBounded: a file of twelve thousand unknown keys
// must not produce twelve thousand lines of output.
func TestHugeErrorCountIsBounded(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(minimal)
	b.WriteString("  tools:\n    - inline: {name: t, description: d, input_schema: {type: object}")
	for i := range 12000 {
		b.WriteString(", k")
		b.WriteString(strings.Repeat("z", i%7))
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+(i/26)%26)) + string(rune('a'+(i/676)%26)) + string(rune('a'+(i/17576)%26)))
		b.WriteString(": 1")
	}
	b.WriteString("}\n")
	_, err := Parse(b.Bytes(), Options{File: "many.yaml"})
	var list *ErrorList
	if !errors.As(err, &list) || len(*list) != maxErrors+1 {
		t.Fatalf("want %d entries, got %v", maxErrors+1, err != nil)
	}
	if !strings.Contains((*list)[maxErrors].Msg, "more errors not shown") {
		t.Errorf("last entry: %v", (*list)[maxErrors])
	}
}

// TestSecretRefIsANameNotAValue checks that the loader keeps secret_ref as
// written and never resolves it: a manifest names secrets, it never holds
// them, so no error or field can leak one.
func TestSecretRefIsANameNotAValue(t *testing.T) {
	t.Setenv("CLAWKEEP_TEST_SECRET", "s3cr3t-value")
	src := strings.Replace(minimal, "auth: {type: none}", "auth: {type: bearer, secret_ref: CLAWKEEP_TEST_SECRET}, streaming: 7", 1)
	_, err := Parse([]byte(src), Options{File: "s.yaml"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v", err)
	}
	c, err := Parse([]byte(strings.Replace(src, ", streaming: 7", "", 1)), Options{File: "s.yaml"})
	if err != nil || c.Providers[0].Auth.SecretRef != "CLAWKEEP_TEST_SECRET" {
		t.Fatalf("got %v %+v", err, c)
	}
}
