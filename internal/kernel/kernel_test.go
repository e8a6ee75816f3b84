package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

// fixture is a kernel over real SQLite files in a temporary data directory.
type fixture struct {
	t         *testing.T
	dir       string
	k         *Kernel
	audit     *audit.Log
	approvals *approval.Store
}

const head = `claw: "0.3.0"
kind: Claw
metadata: {name: test-agent}
spec:
  providers:
    - inline: {protocol: openai-compatible, endpoint: "http://localhost:11434/v1", model: m, auth: {type: none}%s}
`

// newFixture builds a kernel for a manifest made of head plus body (identity,
// tools, sandbox, policies in YAML). limits is YAML for provider limits or "".
func newFixture(t *testing.T, limits, body string, exempt ...netip.Prefix) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.open(limits, body, exempt...)
	return f
}

func (f *fixture) open(limits, body string, exempt ...netip.Prefix) {
	t := f.t
	t.Helper()
	if limits != "" {
		limits = ", limits: {" + limits + "}"
	}
	claw, err := manifest.Parse([]byte(fmt.Sprintf(head, limits)+body), manifest.Options{File: "test.yaml"})
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	cfg := f.openStores(claw)
	cfg.Exempt = exempt
	if f.k, err = New(cfg); err != nil {
		t.Fatalf("kernel: %v", err)
	}
}

// openStores opens the fixture's audit chain and approval store and
// returns a kernel config over them for claw; f.close closes them.
func (f *fixture) openStores(claw *manifest.Claw) Config {
	f.t.Helper()
	var err error
	if f.audit, err = audit.Open(f.dir, audit.Options{Tenant: "t1"}); err != nil {
		f.t.Fatal(err)
	}
	if f.approvals, err = approval.Open(filepath.Join(f.dir, "approvals.db"), approval.Options{}); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(f.close)
	return Config{Tenant: "t1", Claw: claw, Workspace: filepath.Join(f.dir, "ws"), Audit: f.audit, Approvals: f.approvals}
}

func (f *fixture) close() {
	if f.k == nil {
		return
	}
	f.k.Close()
	f.audit.Close()
	f.approvals.Close()
	f.k = nil
}

func (f *fixture) call(name, id string, args any) (*ckp.ToolCallResult, error) {
	raw, _ := json.Marshal(args)
	return f.k.Call(context.Background(), ckp.ToolCallParams{Name: name, Arguments: raw, Context: ckp.ToolCallContext{RequestID: id}})
}

func code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func wantCode(t *testing.T, err error, want int) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != want {
		t.Fatalf("want kernel error %d, got %v", want, err)
	}
	return e
}

const fileTools = `
  tools:
    - inline: {name: write, labels: {clawkeep.dev/builtin: file.write}, description: w, input_schema: {type: object}}
    - inline: {name: read, labels: {clawkeep.dev/builtin: file.read}, description: r, input_schema: {type: object}, annotations: {readOnlyHint: true}}
    - inline: {name: echo, description: e, input_schema: {type: object}, annotations: {readOnlyHint: true}}
  sandbox:
    inline: {level: none, capabilities: {filesystem: {mode: full}}}
`

func TestObserverCannotRunSideEffectingTools(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: observer}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	e := wantCode(t, func() error { _, err := f.call("write", "o1", map[string]any{"path": "x", "content": "y"}); return err }(), ckp.CodePolicyDenied)
	if e.Layer != LayerIdentity {
		t.Fatalf("layer %q", e.Layer)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("observer's write reached the workspace")
	}
	if _, err := f.call("echo", "o2", map[string]any{}); err != nil {
		t.Fatalf("read-only tool refused for observer: %v", err)
	}
}

func TestSupervisedCatchAllAllowDoesNotSkipApproval(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: supervised}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	done := make(chan error, 1)
	go func() { _, err := f.call("write", "s1", map[string]any{"path": "x", "content": "y"}); done <- err }()
	if err := f.k.Decide(context.Background(), "s1", false, "tester", "no"); err != nil {
		t.Fatalf("the write was not waiting for approval: %v", err)
	}
	wantCode(t, <-done, ckp.CodeApprovalDenied)
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("denied write reached the workspace")
	}
}

func TestSupervisedExplicitAllowRunsWithoutApproval(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: supervised}}`+fileTools+`
  policies: [{inline: {rules: [{id: w, action: allow, scope: tool, match: {tool: write}}]}}]
`)
	if _, err := f.call("write", "e1", map[string]any{"path": "x", "content": "y"}); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultDenyWhenNoRuleMatches(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: only-echo, action: allow, scope: tool, match: {tool: echo}}]}}]
`)
	e := wantCode(t, func() error { _, err := f.call("read", "d1", map[string]any{"path": "x"}); return err }(), ckp.CodePolicyDenied)
	if e.Rule != "" {
		t.Fatalf("default deny names rule %q", e.Rule)
	}
}

func TestFileToolsCannotEscapeWorkspace(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("top secret"), 0o600)
	os.Symlink(outside, filepath.Join(f.dir, "ws", "link"))
	for _, p := range []string{"../secret", "/etc/passwd", secret, "link/secret", "a/../../secret"} {
		t.Run(p, func(t *testing.T) {
			res, err := f.call("read", "esc-"+p, map[string]any{"path": p})
			if err == nil && !res.IsError {
				t.Fatalf("read %q escaped the workspace: %v", p, res.Content)
			}
			if res != nil && len(res.Content) > 0 && strings.Contains(res.Content[0].Text, "top secret") {
				t.Fatal("secret content returned")
			}
		})
	}
}

func TestPathWithinRejectsSymlinkEscape(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: safe-only, action: allow, scope: tool, match: {tool: write}, conditions: {path_within: safe}}]}}]
`)
	os.MkdirAll(filepath.Join(f.dir, "ws", "safe"), 0o700)
	os.MkdirAll(filepath.Join(f.dir, "ws", "other"), 0o700)
	os.Symlink(filepath.Join(f.dir, "ws", "other"), filepath.Join(f.dir, "ws", "safe", "jump"))
	if _, err := f.call("write", "p1", map[string]any{"path": "safe/ok.txt", "content": "x"}); err != nil {
		t.Fatalf("write inside path_within refused: %v", err)
	}
	wantCode(t, func() error {
		_, err := f.call("write", "p2", map[string]any{"path": "safe/jump/evil.txt", "content": "x"})
		return err
	}(), ckp.CodePolicyDenied)
	wantCode(t, func() error {
		_, err := f.call("write", "p3", map[string]any{"path": "safe/../other/evil.txt", "content": "x"})
		return err
	}(), ckp.CodePolicyDenied)
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "other", "evil.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("write escaped path_within")
	}
}

func TestAuditFailureRefusesCalls(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	f.audit.Close() // the audit chain is gone: nothing may run unrecorded
	_, err := f.call("write", "a1", map[string]any{"path": "x", "content": "y"})
	if err == nil {
		t.Fatal("a tool ran with no audit log")
	}
	if _, statErr := os.Stat(filepath.Join(f.dir, "ws", "x")); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatal("tool ran before its decision was recorded")
	}
}

func TestDecisionRecordedBeforeOutcome(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	if _, err := f.call("echo", "r1", map[string]any{"text": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := f.audit.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := f.audit.Tail(10)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, r := range recs {
		if r.RequestID == "r1" {
			events = append(events, r.Event+"/"+r.Decision+r.Outcome)
		}
	}
	if strings.Join(events, ",") != "decision/allow,outcome/ok" {
		t.Fatalf("audit events %v", events)
	}
}

const costTools = `  identity: {inline: {personality: p, autonomy: autonomous}}
  tools:
    - inline: {name: pricey, labels: {clawkeep.dev/builtin: echo, clawkeep.dev/cost-tokens: "600"}, description: e, input_schema: {type: object}, annotations: {readOnlyHint: true}}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`

func TestQuotaCannotBeResetByRestart(t *testing.T) {
	f := newFixture(t, "tokens_per_day: 1000", costTools)
	if _, err := f.call("pricey", "q1", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open("tokens_per_day: 1000", costTools)
	wantCode(t, func() error { _, err := f.call("pricey", "q2", map[string]any{}); return err }(), ckp.CodeQuotaExceeded)
}

func TestQuotaConcurrentCallsCannotOverspend(t *testing.T) {
	f := newFixture(t, "tokens_per_day: 3000", costTools)
	var ok, over atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.call("pricey", fmt.Sprintf("c%d", i), map[string]any{})
			switch code(err) {
			case 0:
				ok.Add(1)
			case ckp.CodeQuotaExceeded:
				over.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 5 || over.Load() != 35 {
		t.Fatalf("%d calls ran, %d refused; the budget pays for exactly 5", ok.Load(), over.Load())
	}
}

func TestTokensPerRequest(t *testing.T) {
	f := newFixture(t, "tokens_per_request: 500", costTools)
	e := wantCode(t, func() error { _, err := f.call("pricey", "t1", map[string]any{}); return err }(), ckp.CodeQuotaExceeded)
	if e.Layer != LayerQuota {
		t.Fatalf("layer %q", e.Layer)
	}
}

const netTools = `  identity: {inline: {personality: p, autonomy: autonomous}}
  tools:
    - inline: {name: fetch, labels: {clawkeep.dev/builtin: http.fetch}, description: f, input_schema: {type: object}, annotations: {readOnlyHint: true}}
  sandbox:
    inline: {level: none, capabilities: {network: {mode: allow-all}}}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`

func TestFetchRefusesLoopbackWithoutExemption(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	f := newFixture(t, "", netTools)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{
		srv.URL,
		fmt.Sprintf("http://localhost:%d/", port),
		fmt.Sprintf("http://127.1:%d/", port),              // short form: a name to Go, 127.0.0.1 to libc
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), // IPv4-mapped
		fmt.Sprintf("http://0x7f000001:%d/", port),         // hex
		fmt.Sprintf("http://2130706433:%d/", port),         // decimal
	} {
		res, err := f.call("fetch", "lb-"+u, map[string]any{"url": u})
		if err == nil && !res.IsError {
			t.Errorf("%s: fetched loopback: %v", u, res.Content)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
}

func TestFetchRedirectToMetadataRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			fmt.Fprint(w, "fine")
			return
		}
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer srv.Close()
	f := newFixture(t, "", netTools, netip.MustParsePrefix("127.0.0.1/32"))
	res, err := f.call("fetch", "ok", map[string]any{"url": srv.URL + "/ok"})
	if err != nil || !strings.Contains(res.Content[0].Text, "fine") {
		t.Fatalf("exempted local API: %v %v", res, err)
	}
	wantCode(t, func() error { _, err := f.call("fetch", "redir", map[string]any{"url": srv.URL + "/go"}); return err }(), ckp.CodeSandboxDenied)
}

func TestRequestIDReusedForDifferentCallRefused(t *testing.T) {
	f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`)
	if _, err := f.call("write", "same", map[string]any{"path": "a", "content": "1"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, func() error {
		_, err := f.call("write", "same", map[string]any{"path": "a", "content": "2"})
		return err
	}(), ckp.CodeInvalidParams)
	data, _ := os.ReadFile(filepath.Join(f.dir, "ws", "a"))
	if string(data) != "1" {
		t.Fatalf("the retry with altered arguments ran: %q", data)
	}
}

func TestApprovalTimeoutDefaults(t *testing.T) {
	for _, def := range []string{"deny", "allow"} {
		t.Run(def, func(t *testing.T) {
			f := newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: gate, action: require-approval, scope: all, approval: {timeout_seconds: 1, default_if_timeout: `+def+`}}]}}]
`)
			_, err := f.call("echo", "to", map[string]any{"text": "x"})
			if def == "deny" {
				wantCode(t, err, ckp.CodeApprovalTimeout)
			} else if err != nil {
				t.Fatalf("default allow on timeout refused: %v", err)
			}
		})
	}
}

func TestCheckRefusesUnenforceableManifests(t *testing.T) {
	for name, body := range map[string]string{
		"unknown builtin":          `  tools: [{inline: {name: x, labels: {clawkeep.dev/builtin: shell.exec}, description: d, input_schema: {type: object}}}]`,
		"vm level":                 `  sandbox: {inline: {level: vm}}`,
		"file tool at process":     `  tools: [{inline: {name: r, labels: {clawkeep.dev/builtin: file.read}, description: d, input_schema: {type: object}}}]` + "\n" + `  sandbox: {inline: {level: process}}`,
		"exec tool at none":        `  tools: [{inline: {name: x, labels: {clawkeep.dev/exec: '["/bin/true"]'}, description: d, input_schema: {type: object}}}]`,
		"unmatched annotation key": `  policies: [{inline: {rules: [{id: r, action: deny, scope: tool, match: {annotations: {costly: true}}}]}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			claw, err := manifest.Parse([]byte(fmt.Sprintf(head, "")+"  identity: {inline: {personality: p}}\n"+body+"\n"), manifest.Options{File: "t.yaml"})
			if err != nil {
				return // refused by the loader already: just as good
			}
			if err := Check(claw); err == nil {
				t.Fatal("Check accepted a manifest the kernel cannot enforce")
			}
		})
	}
}

func TestQuotaOfApprovedCallsSurvivesRestart(t *testing.T) {
	gated := strings.Replace(costTools, "{id: all, action: allow, scope: all}", "{id: gate, action: require-approval, scope: all}", 1)
	f := newFixture(t, "tokens_per_day: 1000", gated)
	done := make(chan error, 1)
	go func() { _, err := f.call("pricey", "g1", map[string]any{}); done <- err }()
	if err := f.k.Decide(context.Background(), "g1", true, "tester", ""); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open("tokens_per_day: 1000", gated)
	wantCode(t, func() error { _, err := f.call("pricey", "g2", map[string]any{}); return err }(), ckp.CodeQuotaExceeded)
}

// TestApprovalCannotBeReplayedAfterRestart: the in-memory replay cache is
// gone after a restart, but the approval must still authorize one run only.
func TestApprovalCannotBeReplayedAfterRestart(t *testing.T) {
	body := `  identity: {inline: {personality: p, autonomy: autonomous}}` + fileTools + `
  policies: [{inline: {rules: [{id: gate, action: require-approval, scope: tool, match: {tool: write}}]}}]
`
	f := newFixture(t, "", body)
	done := make(chan error, 1)
	go func() { _, err := f.call("write", "once", map[string]any{"path": "pay", "content": "1"}); done <- err }()
	if err := f.k.Decide(context.Background(), "once", true, "tester", ""); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.dir, "ws", "pay"))
	f.close()
	f.open("", body)
	wantCode(t, func() error {
		_, err := f.call("write", "once", map[string]any{"path": "pay", "content": "1"})
		return err
	}(), ckp.CodeInvalidParams)
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "pay")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the approved call ran a second time after a restart")
	}
}

const fakeAWSKey = "AKIAZ7Q3RV2MB4NXKD5P" // right shape, not a real key

func leakFixture(t *testing.T, scope, action string) *fixture {
	return newFixture(t, "", `  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}], secret_scanning: {enabled: true, scope: `+scope+`, action: `+action+`}}}]
`)
}

func TestToolOutputSecretIsRedactedBeforeTheAgentSeesIt(t *testing.T) {
	f := leakFixture(t, "output", "redact")
	os.WriteFile(filepath.Join(f.dir, "ws", "creds"), []byte("aws_access_key_id = "+fakeAWSKey+"\n"), 0o600)
	res, err := f.call("read", "l1", map[string]any{"path": "creds"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Content[0].Text, fakeAWSKey) || !strings.Contains(res.Content[0].Text, "[REDACTED:") {
		t.Fatalf("output reached the agent unredacted: %q", res.Content[0].Text)
	}
	f.audit.Flush(context.Background())
	recs, _ := f.audit.Tail(5)
	for _, r := range recs {
		for _, v := range r.Detail {
			if strings.Contains(v, fakeAWSKey) {
				t.Fatal("the audit record holds the secret")
			}
		}
	}
}

func TestToolOutputSecretBlocked(t *testing.T) {
	f := leakFixture(t, "output", "block")
	os.WriteFile(filepath.Join(f.dir, "ws", "creds"), []byte(fakeAWSKey), 0o600)
	e := wantCode(t, func() error { _, err := f.call("read", "l2", map[string]any{"path": "creds"}); return err }(), ckp.CodeSandboxDenied)
	if strings.Contains(e.Msg, fakeAWSKey) {
		t.Fatal("the refusal quotes the secret")
	}
}

func TestSecretInArgumentsBlockedBeforeTheToolRuns(t *testing.T) {
	f := leakFixture(t, "input", "block")
	wantCode(t, func() error {
		_, err := f.call("write", "l3", map[string]any{"path": "out", "content": "key=" + fakeAWSKey})
		return err
	}(), ckp.CodeSandboxDenied)
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "out")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the write ran")
	}
}
