package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/manifest"
	sbx "github.com/clawkeep/clawkeep/internal/sandbox"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// fileFixture is a kernel over a manifest loaded from a directory, with
// files (wasm modules) beside it.
func fileFixture(t *testing.T, body string, files map[string][]byte, exempt ...netip.Prefix) (*fixture, error) {
	t.Helper()
	return fileFixtureCfg(t, body, files, func(c *Config) { c.Exempt = exempt })
}

func fileFixtureCfg(t *testing.T, body string, files map[string][]byte, mod func(*Config)) (*fixture, error) {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	mdir := filepath.Join(f.dir, "manifest")
	os.Mkdir(mdir, 0o755)
	for name, b := range files {
		os.WriteFile(filepath.Join(mdir, name), b, 0o644)
	}
	path := filepath.Join(mdir, "claw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(head, "")+body), 0o644)
	claw, err := manifest.Load(path)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	cfg := f.openStores(claw)
	mod(&cfg)
	f.k, err = New(cfg)
	return f, err
}

func requireLevel(t *testing.T, lvl sbx.Level) {
	t.Helper()
	if _, err := sbx.New(sbx.Config{Level: lvl}); err != nil {
		if os.Getenv("CLAWKEEP_REQUIRE_ALL") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// lastOutcome flushes the audit log and returns the newest outcome record.
func (f *fixture) lastOutcome() audit.Record {
	f.t.Helper()
	f.audit.Flush(context.Background())
	recs, err := f.audit.Tail(20)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event == "outcome" {
			return recs[i]
		}
	}
	f.t.Fatal("no outcome record")
	return audit.Record{}
}

const allowAll = `
  identity: {inline: {personality: p, autonomy: autonomous}}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`

func execTool(name, argv string) string {
	return fmt.Sprintf("    - inline: {name: %s, description: d, input_schema: {type: object}, labels: {clawkeep.dev/exec: '%s'}}\n", name, argv)
}

func TestExecToolRunsInItsSandbox(t *testing.T) {
	for _, lvl := range []sbx.Level{sbx.LevelProcess, sbx.LevelContainer} {
		t.Run(string(lvl), func(t *testing.T) {
			requireLevel(t, lvl)
			f, err := fileFixture(t, allowAll+"  tools:\n"+
				execTool("count", `["/usr/bin/wc", "-c"]`)+
				"    - inline: {name: slow, description: d, input_schema: {type: object}, timeout_ms: 500, labels: {clawkeep.dev/exec: '[\"/usr/bin/sleep\"]'}}\n"+
				execTool("spin", `["/bin/sh", "-c", "while :; do :; done"]`)+
				execTool("fetch", `["/usr/bin/curl", "-sSf", "-m", "5"]`)+
				execTool("touch", `["/usr/bin/touch"]`)+
				`  sandbox:
    inline:
      level: `+string(lvl)+`
      capabilities:
        network: {mode: allowlist, allowed_hosts: [api.example.com]}
        filesystem: {mode: full}
        shell: {mode: restricted, blocked_commands: [rm]}
      resource_limits: {timeout_ms: 20000, memory_mb: 256}
`, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.call("count", "", map[string]any{"stdin": "hello"})
			if err != nil || res.IsError || strings.TrimSpace(res.Content[0].Text) != "5" {
				t.Fatalf("count: %+v %v", res, err)
			}
			if _, err := f.call("touch", "", map[string]any{"args": []string{"made-by-job"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(f.dir, "ws", "made-by-job")); err != nil {
				t.Fatalf("the job did not write the workspace: %v", err)
			}

			// Time limit: -32014, and the audit says which meter.
			_, err = f.call("slow", "", map[string]any{"args": []string{"30"}})
			e := wantCode(t, err, ckp.CodeToolTimeout)
			if e.Extra["meter"] != "wall_clock" {
				t.Fatalf("meter %v", e.Extra)
			}
			if rec := f.lastOutcome(); rec.Outcome != "timeout" || rec.Detail["meter"] != "wall_clock" {
				t.Fatalf("audit %+v", rec)
			}

			// Network refusal: -32010, audited with the proxy's reason.
			_, err = f.call("fetch", "", map[string]any{"args": []string{"http://169.254.169.254/latest/meta-data/"}})
			wantCode(t, err, ckp.CodeSandboxDenied)
			if rec := f.lastOutcome(); rec.Outcome != "sandbox-denied" || !strings.Contains(rec.Detail["network_refusals"], "169.254.169.254") {
				t.Fatalf("audit %+v", rec)
			}

			// A blocked command smuggled in the arguments never runs.
			_, err = f.call("touch", "", map[string]any{"args": []string{"x;rm", "-rf", "/"}})
			wantCode(t, err, ckp.CodeSandboxDenied)
			_, err = f.call("count", "", map[string]any{"args": []any{1}})
			wantCode(t, err, ckp.CodeInvalidParams)
		})
	}
}

func TestExecShellRefusedWhenShellDenied(t *testing.T) {
	requireLevel(t, sbx.LevelProcess)
	_, err := fileFixture(t, allowAll+"  tools:\n"+execTool("sh", `["/bin/sh", "-c", "id"]`)+`  sandbox: {inline: {level: process}}
`, nil)
	if err == nil || !strings.Contains(err.Error(), "denies shells") {
		t.Fatalf("err = %v", err)
	}
	f, err := fileFixture(t, allowAll+"  tools:\n"+execTool("env", `["/usr/bin/env"]`)+`  sandbox: {inline: {level: process}}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.call("env", "", map[string]any{"args": []string{"/bin/sh", "-c", "id"}})
	wantCode(t, err, ckp.CodeSandboxDenied)
}

func TestExecToolNeedsAnExternalLevel(t *testing.T) {
	_, err := fileFixture(t, allowAll+"  tools:\n"+execTool("x", `["/bin/true"]`)+`  sandbox: {inline: {level: none}}
`, nil)
	if err == nil || !strings.Contains(err.Error(), "needs sandbox level process or container") {
		t.Fatalf("err = %v", err)
	}
	_, err = fileFixture(t, allowAll+`  tools:
    - inline: {name: read, labels: {clawkeep.dev/builtin: file.read}, description: r, input_schema: {type: object}}
  sandbox: {inline: {level: process}}
`, nil)
	if err == nil || !strings.Contains(err.Error(), "weaker than sandbox level") {
		t.Fatalf("err = %v", err)
	}
}

// A skill's permissions narrow the sandbox: network off for the tools it
// uses, whatever the sandbox allows; the same tool without the skill
// reaches the service.
func TestSkillPermissionsNarrowTheSandbox(t *testing.T) {
	requireLevel(t, sbx.LevelProcess)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "reached") }))
	defer api.Close()
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	const sandbox = `  sandbox:
    inline: {level: process, capabilities: {network: {mode: allow-all}}}
`
	tool := "  tools:\n" + execTool("fetch", `["/usr/bin/curl", "-sS", "-m", "5"]`)
	for _, skill := range []string{"", `  skills:
    - inline: {name: offline, description: d, tools_required: [fetch], instruction: i, permissions: {network: false, filesystem: none}}
`} {
		f, err := fileFixture(t, allowAll+tool+skill+sandbox, nil, local...)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.call("fetch", "", map[string]any{"args": []string{api.URL}})
		reached := err == nil && !res.IsError && res.Content[0].Text == "reached"
		if reached != (skill == "") {
			t.Fatalf("skill %q: reached=%v (%+v %v)", skill, reached, res, err)
		}
	}
}

func wasmModule(t *testing.T, wat string) ([]byte, string) {
	t.Helper()
	b, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func TestWASMToolMetersAndPin(t *testing.T) {
	loop, loopSum := wasmModule(t, `(module (func (export "run") (loop $l (br $l))))`)
	hello, helloSum := wasmModule(t, `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`)
	tools := fmt.Sprintf(`  tools:
    - inline: {name: spin, description: d, input_schema: {type: object}, labels: {clawkeep.dev/wasm: loop.wasm, clawkeep.dev/wasm-sha256: %s, clawkeep.dev/wasm-function: run}}
    - inline: {name: hello, description: d, input_schema: {type: object}, labels: {clawkeep.dev/wasm: hello.wasm, clawkeep.dev/wasm-sha256: %s}}
  sandbox: {inline: {level: wasm, resource_limits: {timeout_ms: 300}}}
`, loopSum, helloSum)
	f, err := fileFixture(t, allowAll+tools, map[string][]byte{"loop.wasm": loop, "hello.wasm": hello})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.call("hello", "", map[string]any{})
	if err != nil || res.Content[0].Text != "hello from wasm" {
		t.Fatalf("hello: %+v %v", res, err)
	}
	_, err = f.call("spin", "", map[string]any{})
	e := wantCode(t, err, ckp.CodeToolTimeout)
	if m := e.Extra["meter"]; m != "wall_clock" && m != "fuel" {
		t.Fatalf("meter %v", e.Extra)
	}
	if rec := f.lastOutcome(); rec.Outcome != "timeout" {
		t.Fatalf("audit %+v", rec)
	}
}

func TestCurlAvailableForKernelTests(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil && os.Getenv("CLAWKEEP_REQUIRE_ALL") != "" {
		t.Fatal("curl is needed by the exec tool tests")
	}
}

func TestRequireAllLimitsLabel(t *testing.T) {
	requireLevel(t, sbx.LevelProcess)
	_, err := fileFixture(t, allowAll+"  tools:\n"+execTool("t", `["/bin/true"]`)+`  sandbox: {inline: {level: process, labels: {clawkeep.dev/require-all-limits: maybe}}}
`, nil)
	if err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Fatalf("err = %v", err)
	}
}

// A credential bound in the manifest reaches the API through the proxy;
// the exec tool, its output and the audit see only the placeholder, and a
// host the binding does not name gets nothing.
func TestManifestBoundCredentialSeenOnlyByTheAPI(t *testing.T) {
	requireLevel(t, sbx.LevelProcess)
	const token = "sk-bound-in-manifest-51f0c2"
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, "api ok")
	}))
	defer api.Close()
	vdir := t.TempDir()
	v, err := vault.Open(vdir, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Put("t1", "api", vault.Bearer, []byte(token)); err != nil {
		t.Fatal(err)
	}
	body := allowAll + "  tools:\n" + execTool("fetch", `["/usr/bin/curl", "-sS", "-m", "5"]`) + `  sandbox:
    inline:
      level: process
      labels:
        clawkeep.dev/credential.api: '{"hosts": ["127.0.0.1"], "path_prefix": "/v1", "header": "Authorization", "format": "Bearer %s"}'
      capabilities: {network: {mode: allow-all}}
`
	f, err := fileFixtureCfg(t, body, nil, func(c *Config) {
		c.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Secrets = func(name string) (*vault.Secret, error) { return v.Get("t1", name) }
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.call("fetch", "", map[string]any{"args": []string{"-H", "Authorization: {{cred:api}}", api.URL + "/v1/x"}})
	if err != nil || res.IsError || res.Content[0].Text != "api ok" {
		t.Fatalf("%+v %v", res, err)
	}
	// Outside the path prefix the placeholder is refused, never sent.
	res, err = f.call("fetch", "", map[string]any{"args": []string{"-sf", "-H", "Authorization: {{cred:api}}", api.URL + "/admin"}})
	if err == nil && !res.IsError {
		t.Fatalf("a request outside the binding was sent: %+v", res)
	}
	f.audit.Flush(context.Background())
	recs, _ := f.audit.Tail(50)
	for _, r := range recs {
		for _, d := range r.Detail {
			if strings.Contains(d, token) {
				t.Fatal("the audit holds the token")
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || !strings.HasSuffix(seen[0], "Bearer "+token) {
		t.Fatalf("the api saw %q", seen)
	}
	// Without a vault, a manifest that binds credentials is refused.
	if _, err := fileFixture(t, body, nil); err == nil || !strings.Contains(err.Error(), "no vault") {
		t.Fatalf("err = %v", err)
	}
}
