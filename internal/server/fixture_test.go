package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/identity"
	"github.com/clawkeep/clawkeep/internal/ratelimit"
	"github.com/clawkeep/clawkeep/internal/tenant"
)

// The test binary is also the worker: the supervisor starts it as
// "<test binary> worker ...", as it starts "clawkeep worker ..." in
// production. "try-open DIR" is the attack helper of the isolation test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "worker":
			os.Exit(tenant.WorkerMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "try-open":
			os.Exit(tryOpen(os.Args[2]))
		}
	}
	os.Exit(m.Run())
}

// tryOpen exits 0 if it can list dir or read a file in it, 3 if refused.
func tryOpen(dir string) int {
	if _, err := os.ReadDir(dir); err == nil {
		return 0
	}
	if _, err := os.ReadFile(filepath.Join(dir, "vault.db")); err == nil {
		return 0
	}
	if _, err := os.ReadFile(filepath.Join(dir, "master.key")); err == nil {
		return 0
	}
	return 3
}

// fixture is a real API server over real workers, SQLite files and
// sockets; only the HTTP listener is httptest's.
type fixture struct {
	t       testing.TB
	root    string
	ids     *identity.Store
	sup     *tenant.Supervisor
	log     *audit.Log
	srv     *httptest.Server
	url     string
	owner   string // the instance owner's session
	exe     string
	limiter *ratelimit.Limiter
}

type fixtureOpts struct {
	ping    time.Duration
	limits  ratelimit.Config
	uidBase uint32
	proxy   *ratelimit.Proxy
}

// newFixture starts a server. The data root and a copy of the test binary
// live in world-traversable directories so that workers running under
// their own uid (as root) can reach them.
func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	root, err := os.MkdirTemp("", "clawkeep-serve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, root: root}
	f.exe = os.Args[0]
	if o.uidBase != 0 {
		// The supervisor's own copy, which workers under their uid can run.
		f.exe = filepath.Join(root, "data", "bin", "clawkeep")
	}
	sup := filepath.Join(root, "supervisor")
	os.Mkdir(sup, 0o700)
	if f.ids, err = identity.Open(filepath.Join(sup, "identity.db"), identity.Options{Argon2: identity.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}); err != nil {
		t.Fatal(err)
	}
	if f.log, err = audit.Open(sup, audit.Options{Tenant: "supervisor"}); err != nil {
		t.Fatal(err)
	}
	if f.sup, err = tenant.NewSupervisor(tenant.SupervisorConfig{
		Root: filepath.Join(root, "data"), Command: []string{os.Args[0]}, UIDBase: o.uidBase, IdleTimeout: time.Minute,
		Logf: func(format string, a ...any) { t.Logf("supervisor: "+format, a...) },
	}); err != nil {
		t.Fatal(err)
	}
	limits := o.limits
	if limits.PerIP == 0 {
		limits = ratelimit.Config{PerIP: 1e6, IPBurst: 1e6, PerOrg: 1e6, OrgBurst: 1e6, LockoutAfter: 1000}
	}
	f.limiter = ratelimit.New(limits)
	api, err := New(Config{Identity: f.ids, Tenants: f.sup, Limiter: f.limiter, Proxy: o.proxy, Audit: f.log, Version: "test", PingInterval: o.ping,
		Logf: func(format string, a ...any) { t.Logf("server: "+format, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(api)
	f.srv.Config.MaxHeaderBytes = MaxHeaderBytes // as cmd/clawkeep serve sets it
	f.srv.Start()
	f.url = f.srv.URL
	t.Cleanup(func() {
		f.srv.Close()
		f.sup.Close()
		f.log.Close()
		f.ids.Close()
	})
	tok, err := f.ids.Bootstrap()
	if err != nil || tok == "" {
		t.Fatalf("bootstrap: %q %v", tok, err)
	}
	f.mustDo("POST", "/v1/bootstrap", "", map[string]any{"token": tok, "email": "root@example.com", "password": "root password 123"}, 201)
	f.owner = f.login("root@example.com", "root password 123")
	return f
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any
}

func (r response) code() string {
	c, _ := r.json["code"].(string)
	return c
}

// do sends one request; body is JSON unless it is a []byte (sent as YAML).
func (f *fixture) do(method, path, token string, body any) response {
	f.t.Helper()
	return doWith(f.t, http.DefaultClient, f.url, method, path, token, body)
}

func doWith(t testing.TB, c *http.Client, base, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/yaml"
	default:
		raw, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &out.json)
	return out
}

func (f *fixture) mustDo(method, path, token string, body any, want int) response {
	f.t.Helper()
	r := f.do(method, path, token, body)
	if r.status != want {
		f.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.raw)
	}
	return r
}

func (f *fixture) login(email, password string) string {
	f.t.Helper()
	r := f.mustDo("POST", "/v1/login", "", map[string]any{"email": email, "password": password}, 200)
	return r.json["token"].(string)
}

// org creates an organisation owned by the instance owner.
func (f *fixture) org(name string) {
	f.t.Helper()
	f.mustDo("POST", "/v1/orgs", f.owner, map[string]any{"name": name}, 201)
}

// member adds a person with role to org and returns their session.
func (f *fixture) member(org, email, role string) string {
	f.t.Helper()
	f.mustDo("POST", "/v1/orgs/"+org+"/members", f.owner, map[string]any{"email": email, "role": role, "password": "password of " + email}, 201)
	return f.login(email, "password of "+email)
}

// agentYAML is a self-contained manifest: echo (read-only, service local)
// and send-mail (service gmail, action send; side effects).
func agentYAML(name string) []byte {
	return []byte(fmt.Sprintf(`claw: "0.3.0"
kind: Claw
metadata: {name: %s}
spec:
  identity: {inline: {personality: "A careful helper.", autonomy: autonomous}}
  providers:
    - inline: {protocol: openai-compatible, endpoint: "http://localhost:11434/v1", model: m, auth: {type: none}}
  tools:
    - inline: {name: echo, description: echo, input_schema: {type: object}, annotations: {readOnlyHint: true}}
    - inline: {name: send-mail, labels: {clawkeep.dev/builtin: echo, clawkeep.dev/service: gmail, clawkeep.dev/action: send}, description: send, input_schema: {type: object}}
  sandbox:
    inline: {level: none}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`, name))
}

// agent applies the test agent to org, grants echo automatically and
// send-mail with approval, and returns an agent token.
func (f *fixture) agent(org, name string) string {
	f.t.Helper()
	f.mustDo("PUT", "/v1/orgs/"+org+"/agents/"+name, f.owner, agentYAML(name), 201)
	f.mustDo("PUT", "/v1/orgs/"+org+"/agents/"+name+"/abilities/local", f.owner, map[string]any{"actions": map[string]string{"echo": "automatic"}}, 200)
	f.mustDo("PUT", "/v1/orgs/"+org+"/agents/"+name+"/abilities/gmail", f.owner, map[string]any{"actions": map[string]string{"send": "approval"}}, 200)
	r := f.mustDo("POST", "/v1/orgs/"+org+"/agents/"+name+"/tokens", f.owner, nil, 201)
	return r.json["token"].(string)
}

// toolCall runs one CKP call over HTTP POST.
func (f *fixture) toolCall(agentToken, tool, requestID string) response {
	f.t.Helper()
	return f.do("POST", "/v1/ckp", agentToken, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "claw.tool.call",
		"params": map[string]any{"name": tool, "arguments": map[string]any{"n": requestID}, "context": map[string]any{"request_id": requestID}}})
}

// clientFrom returns an HTTP client whose connections come from ip, one
// of the 127.0.0.0/8 addresses Linux gives loopback: a real different
// client address, with no proxy header to trust.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func hasPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func jsonUnmarshal(s string, v any) { json.Unmarshal([]byte(s), v) }

func sleepBrief() { time.Sleep(50 * time.Millisecond) }
