package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedCKP holds the third-party CKP material (examples and schemas) the
// tests read but the repository does not carry.
var sharedCKP = filepath.Join("..", "..", "..", "shared", "ckp") // ../shared/ckp beside the checkout

// needShared skips a test when the shared CKP directory is missing, unless
// CLAWKEEP_REQUIRE_ALL is set (as in CI), where a missing input is a failure.
func needShared(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CLAWKEEP_REQUIRE_ALL") != "" {
			tb.Fatalf("%s is required: %v", dir, err)
		}
		tb.Skipf("%s not available: %v", dir, err)
	}
}

// wants returns the "# want: ..." lines of a test file: "valid", or
// substrings that must each appear in one line of the error.
func wants(tb testing.TB, path string) []string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("%s has no '# want:' line", path)
	}
	return out
}

// checkOutcome checks err against the expectations of a test file.
func checkOutcome(t *testing.T, err error, want []string) {
	t.Helper()
	if want[0] == "valid" {
		if err != nil {
			t.Fatalf("want valid, got:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want errors %q, got none", want)
	}
	var list *ErrorList
	if !errors.As(err, &list) || len(*list) == 0 {
		t.Fatalf("want a non-empty *ErrorList, got %T: %v", err, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing error %q in:\n%v", w, err)
		}
	}
}

func runDir(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no test files in testdata/%s", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			checkOutcome(t, err, wants(t, f))
		})
	}
}

// TestConformanceManifests runs the manifest vectors of the CKP conformance
// suite (L1-01/02/03/10, empty providers, L3-04/05).
func TestConformanceManifests(t *testing.T) { runDir(t, "conformance") }

// TestSemanticRulesRejectBadManifests has one failing manifest per
// semantic rule the schema cannot express, each file saying why it must fail.
func TestSemanticRulesRejectBadManifests(t *testing.T) { runDir(t, "invalid") }

func TestValidManifestsLoad(t *testing.T) { runDir(t, "valid") }

func TestOfficialExamplesLoad(t *testing.T) {
	dir := filepath.Join(sharedCKP, "examples")
	needShared(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != 4 {
		t.Fatalf("want the 4 official examples, found %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, c)
			if c.File == "" || !filepath.IsAbs(c.File) {
				t.Errorf("File = %q, want the absolute path", c.File)
			}
		})
	}
}

// checkInvariants asserts what the package doc promises of a loaded Claw.
func checkInvariants(t testing.TB, c *Claw) {
	t.Helper()
	if strings.TrimSpace(c.Identity.Personality) == "" {
		t.Errorf("empty personality")
	}
	switch c.Identity.Autonomy {
	case Observer, Supervised, Autonomous:
	default:
		t.Errorf("autonomy %q", c.Identity.Autonomy)
	}
	if len(c.Providers) == 0 {
		t.Errorf("no provider")
	}
	seen := map[string]bool{}
	for _, tool := range c.Tools {
		if !kebabName.MatchString(tool.Name) || seen[tool.Name] {
			t.Errorf("tool name %q invalid or repeated", tool.Name)
		}
		seen[tool.Name] = true
		if tool.Builtin == "" {
			t.Errorf("tool %q has no builtin", tool.Name)
		}
		if tool.InputSchema == nil && tool.MCPSource == nil {
			t.Errorf("tool %q has neither input schema nor MCP source", tool.Name)
		}
	}
}

func TestDefaultsApplied(t *testing.T) {
	c, err := Parse([]byte(`
claw: "0.3.0"
kind: Claw
metadata: {name: agent, version: 2.0.0}
spec:
  identity: {inline: {personality: p}}
  providers:
    - inline: {protocol: custom, endpoint: "http://x.example", model: m, auth: {type: none}}
    - inline: {protocol: custom, endpoint: "http://y.example", model: m, auth: {type: none}}
  channels: [{inline: {type: cli, transport: stdio, auth: {secret_ref: C}}}]
  tools:
    - inline: {name: echo, description: d, input_schema: {type: object}}
    - inline: {description: d, input_schema: {type: object}, version: 0.0.1, labels: {clawkeep.dev/builtin: file.read, clawkeep.dev/cost-tokens: "12", clawkeep.dev/cost-usd: "0.25"}}
  sandbox: {inline: {level: container}}
  memory: {inline: {stores: [{name: s, type: key-value}]}}
  policies:
    - inline:
        rules: [{id: r, action: require-approval, scope: all, approval: {timeout_seconds: 5}}]
        prompt_injection: {action: warn}
`), Options{File: "d.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "" {
		t.Errorf("File = %q for a parsed manifest", c.File)
	}
	id := c.Identity
	if id.Name != "agent" || id.Autonomy != Supervised || id.Locale != "en-US" || id.Version != "2.0.0" {
		t.Errorf("identity defaults: %+v", id.Meta)
	}
	if c.Providers[0].Name != "provider-0" || c.Providers[1].Name != "provider-1" || c.Channels[0].Name != "channel-0" {
		t.Errorf("generated names: %q %q %q", c.Providers[0].Name, c.Providers[1].Name, c.Channels[0].Name)
	}
	echo, reader := c.Tools[0], c.Tools[1]
	if echo.Builtin != "echo" || echo.Version != "2.0.0" || string(echo.InputSchema) != `{"type":"object"}` {
		t.Errorf("echo: builtin %q version %q schema %s", echo.Builtin, echo.Version, echo.InputSchema)
	}
	if reader.Name != "tool-1" || reader.Builtin != "file.read" || reader.CostTokens != 12 || reader.CostUSD != 0.25 || reader.Version != "0.0.1" {
		t.Errorf("tool-1: %+v", reader)
	}
	sb := c.Sandbox
	if sb.Name != "sandbox" || sb.Runtime != "docker" || sb.Network.Mode != "deny" || sb.FS.Mode != "deny" || sb.Shell.Mode != "deny" {
		t.Errorf("sandbox defaults: %+v", sb)
	}
	if c.Memory.Name != "memory" || c.Policies[0].Name != "policy-0" {
		t.Errorf("single names: %q %q", c.Memory.Name, c.Policies[0].Name)
	}
	p := c.Policies[0]
	if p.Rules[0].Approval.DefaultIfTimeout != "deny" || p.PromptInjection.Detection != "pattern" {
		t.Errorf("policy defaults: %+v %+v", p.Rules[0].Approval, p.PromptInjection)
	}
}

func TestRuntimeInferredFromLevel(t *testing.T) {
	for level, want := range map[string]string{"process": "native", "container": "docker", "wasm": "wasmtime", "vm": "firecracker", "none": "native"} {
		c, err := Parse([]byte(minimal+"  sandbox: {inline: {level: "+level+"}}\n"), Options{File: "s.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Sandbox.Runtime != want {
			t.Errorf("level %s: runtime %q, want %q", level, c.Sandbox.Runtime, want)
		}
	}
}

const minimal = `claw: "0.3.0"
kind: Claw
metadata: {name: m}
spec:
  identity: {inline: {personality: p}}
  providers:
    - inline: {protocol: custom, endpoint: "http://x.example", model: m, auth: {type: none}}
`

// TestErrorPositions pins the line and column of errors of each sort: an
// unknown key points at the key, a bad value at the value, a missing field
// at the mapping that lacks it.
func TestErrorPositions(t *testing.T) {
	src := minimal + `  tools:
    - inline:
        name: t
        descripton: typo
        input_schema: {type: object}
  sandbox:
    inline:
      level: cave
`
	_, err := Parse([]byte(src), Options{File: "pos.yaml"})
	var list *ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want *ErrorList, got %v", err)
	}
	want := []string{
		"pos.yaml:10:9: spec.tools[0].inline.description: required field is missing",
		"pos.yaml:11:9: spec.tools[0].inline.descripton: unknown field; expected one of",
		"pos.yaml:15:14: spec.sandbox.inline.level: \"cave\" is not one of none, process, wasm, container, vm",
	}
	if len(*list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(*list), len(want), err)
	}
	for i, w := range want {
		if got := (*list)[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("error %d:\n got %s\nwant %s", i, got, w)
		}
	}
	e := (*list)[2]
	if e.Pos != (Pos{File: "pos.yaml", Line: 15, Col: 14}) || e.Field != "spec.sandbox.inline.level" {
		t.Errorf("structured error: %+v", e)
	}
}

func TestErrorsAreSortedAndAllReported(t *testing.T) {
	src := minimal + `  tools:
    - {name: "-bad", description: d, input_schema: {type: object}}
  bogus: 1
  channels:
    - {type: nope, transport: stdio, auth: {secret_ref: S}}
`
	_, err := Parse([]byte(src), Options{File: "e.yaml"})
	var list *ErrorList
	if !errors.As(err, &list) || len(*list) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(*list); i++ {
		if (*list)[i-1].Pos.Line > (*list)[i].Pos.Line {
			t.Errorf("errors not sorted:\n%v", err)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != 2 {
		t.Errorf("want one line per error, got %d newlines", n)
	}
}

func TestParseAcceptsJSON(t *testing.T) {
	src := "{\n\t\"claw\": \"0.3.0\", \"kind\": \"Claw\", \"metadata\": {\"name\": \"j\", \"annotations\": {\"heartbeat_interval_ms\": 5000}},\n" +
		"\t\"spec\": {\"identity\": {\"inline\": {\"personality\": \"p\"}},\n" +
		"\t\t\"providers\": [{\"inline\": {\"protocol\": \"custom\", \"endpoint\": \"http://x.example\", \"model\": \"m\", \"auth\": {\"type\": \"none\"}}}]}}"
	c, err := Parse([]byte(src), Options{File: "initialize.manifest"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "j" || c.Annotations["heartbeat_interval_ms"] != int64(5000) {
		t.Errorf("got %q %#v", c.Name, c.Annotations)
	}
}

func TestLoadPrimitiveReportsKind(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "tool.yaml", "claw: \"0.3.0\"\nkind: Tool\nmetadata: {name: t}\nspec: {description: d, input_schema: {type: object}, sandbox_ref: elsewhere}\n")
	write(t, dir, "bad.yaml", "claw: \"0.3.0\"\nkind: Policy\nmetadata: {name: p}\nspec: {rules: []}\n")
	write(t, dir, "claw.yaml", minimal)
	for file, want := range map[string]string{"tool.yaml": "Tool", "claw.yaml": "Claw"} {
		kind, err := LoadPrimitive(filepath.Join(dir, file))
		if err != nil || kind != want {
			t.Errorf("%s: kind %q err %v, want %s", file, kind, err, want)
		}
	}
	kind, err := LoadPrimitive(filepath.Join(dir, "bad.yaml"))
	if kind != "Policy" || err == nil || !strings.Contains(err.Error(), "spec.rules: at least 1 rule is required") {
		t.Errorf("bad policy: kind %q err %v", kind, err)
	}
}

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{Pos: Pos{File: "c.yaml", Line: 3, Col: 5}, Field: "spec.tools[2]", Msg: "m"}, "c.yaml:3:5: spec.tools[2]: m"},
		{Error{Pos: Pos{File: "c.yaml"}, Msg: "file not found"}, "c.yaml: file not found"},
		{Error{Pos: Pos{Line: 1, Col: 2}, Field: "kind", Msg: "m"}, ":1:2: kind: m"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestLoadRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v", err)
	}
}
