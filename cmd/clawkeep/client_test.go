package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// testAPIToken is the org-scoped token the fake servers expect.
const testAPIToken = "ckt_test-token-0123456789"

// fakeRequest is one request a fake server received.
type fakeRequest struct {
	method, path, contentType, auth string
	body                            []byte
}

// fakeAPI is a real HTTP server on 127.0.0.1 that speaks the contract: the
// answer function picks the response; every request is recorded.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []fakeRequest // guarded by mu
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newFakeAPI(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, fakeRequest{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), body})
		f.mu.Unlock()
		f.answer(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

func fakeWriteJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func fakeWriteProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type": "https://clawkeep.dev/problems/" + code, "title": code, "status": status, "code": code, "detail": detail,
	})
}

// isolateClientEnv points every config location at a fresh temporary directory and
// clears the environment the client reads; it returns the config path.
func isolateClientEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conf", "clawkeep", "client.json")
	t.Setenv("CLAWKEEP_CONFIG", cfg)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("CLAWKEEP_SERVER", "")
	t.Setenv("CLAWKEEP_TOKEN", "")
	return cfg
}

func runClient(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code, handled := clientCommand(args[0], args[1:], strings.NewReader(stdin), &out, &errb)
	if !handled {
		t.Fatalf("clientCommand(%q) not handled", args[0])
	}
	return out.String(), errb.String(), code
}

func saveClientConfig(t *testing.T, path string, cfg clientConfig, perm os.FileMode) {
	t.Helper()
	if err := clientWriteConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func TestLoginWritesConfigPrivatelyAndNeverPrintsTheToken(t *testing.T) {
	cfgPath := isolateClientEnv(t)
	const session = "cks_session-secret-abcdef"
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var in map[string]string
		if r.Method != http.MethodPost || r.URL.Path != "/v1/login" || r.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &in) != nil || in["email"] != "ada@example.com" || in["password"] != "pw with spaces" || len(in) != 2 {
			fakeWriteProblem(w, 400, "bad_request", "unexpected request")
			return
		}
		fakeWriteJSON(w, 200, `{"token":"`+session+`","expires_at":"2026-12-01T00:00:00Z","user":{"id":1,"email":"ada@example.com","instance_owner":true}}`)
	})
	for _, extra := range [][]string{nil, {"--json"}} {
		args := append([]string{"login", "--server", srv.URL, "--email", "ada@example.com"}, extra...)
		stdout, stderr, code := runClient(t, "pw with spaces\nsecond line ignored\n", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", args, code, stderr)
		}
		if strings.Contains(stdout+stderr, session) || strings.Contains(stdout+stderr, "pw with spaces") {
			t.Fatalf("%v printed a secret:\n%s%s", args, stdout, stderr)
		}
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %04o, want 0700", di.Mode().Perm())
	}
	cfg, err := clientReadConfig(cfgPath)
	if err != nil || cfg.Server != srv.URL || cfg.Token != session {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	// No temporary file is left beside it.
	if ents, _ := os.ReadDir(filepath.Dir(cfgPath)); len(ents) != 1 {
		t.Errorf("config dir holds %d entries, want 1", len(ents))
	}
	// The saved session is what later commands send.
	srv.answer = func(w http.ResponseWriter, r *http.Request, body []byte) {
		fakeWriteJSON(w, 200, `{"orgs":[{"name":"acme","role":"owner"}]}`)
	}
	stdout, stderr, code := runClient(t, "", "org", "list")
	if code != 0 || !strings.Contains(stdout, "acme") || strings.Contains(stdout+stderr, session) {
		t.Fatalf("org list: exit %d\n%s%s", code, stdout, stderr)
	}
	reqs := srv.requests()
	if got := reqs[len(reqs)-1].auth; got != "Bearer "+session {
		t.Fatalf("org list sent Authorization %q", got)
	}
}

func TestWorldReadableConfigRefused(t *testing.T) {
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		cfgPath := isolateClientEnv(t)
		srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
			fakeWriteJSON(w, 200, `{"orgs":[]}`)
		})
		saveClientConfig(t, cfgPath, clientConfig{Server: srv.URL, Token: testAPIToken}, perm)
		stdout, stderr, code := runClient(t, "", "org", "list")
		if code != 2 || !strings.Contains(stderr, "too open") || !strings.Contains(stderr, "chmod 600") {
			t.Errorf("mode %04o: exit %d, stderr %q; want 2 and the reason", perm, code, stderr)
		}
		if strings.Contains(stdout+stderr, testAPIToken) {
			t.Errorf("mode %04o: the refusal printed the token", perm)
		}
		if n := len(srv.requests()); n != 0 {
			t.Errorf("mode %04o: %d requests sent with a leaked token", perm, n)
		}
	}
}

func TestConfigWithGarbageDoesNotEchoIt(t *testing.T) {
	cfgPath := isolateClientEnv(t)
	os.MkdirAll(filepath.Dir(cfgPath), 0o700)
	os.WriteFile(cfgPath, []byte(`{"server":"http://127.0.0.1:1","token":"ckt_leak","extra":1}`), 0o600)
	_, stderr, code := runClient(t, "", "org", "list")
	if code != 2 || strings.Contains(stderr, "ckt_leak") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestServerAndTokenPrecedenceFlagEnvFile(t *testing.T) {
	var servers [3]*fakeAPI
	for i := range servers {
		servers[i] = newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
			fakeWriteJSON(w, 200, `{"orgs":[]}`)
		})
	}
	flagSrv, envSrv, fileSrv := servers[0], servers[1], servers[2]
	cases := []struct {
		name              string
		flags             []string
		env               map[string]string
		wantSrv           *fakeAPI
		wantAuth          string
		wantCode          int
		wantNoRequestsAny bool
	}{
		{name: "flags beat env and file",
			flags:   []string{"--server", flagSrv.URL, "--token", "ckt_flag"},
			env:     map[string]string{"CLAWKEEP_SERVER": envSrv.URL, "CLAWKEEP_TOKEN": "ckt_env"},
			wantSrv: flagSrv, wantAuth: "Bearer ckt_flag"},
		{name: "env beats file",
			env:     map[string]string{"CLAWKEEP_SERVER": envSrv.URL, "CLAWKEEP_TOKEN": "ckt_env"},
			wantSrv: envSrv, wantAuth: "Bearer ckt_env"},
		{name: "flag token with the file's server",
			flags:   []string{"--token", "ckt_flag"},
			wantSrv: fileSrv, wantAuth: "Bearer ckt_flag"},
		{name: "env token with the file's server",
			env:     map[string]string{"CLAWKEEP_TOKEN": "ckt_env"},
			wantSrv: fileSrv, wantAuth: "Bearer ckt_env"},
		{name: "file alone",
			wantSrv: fileSrv, wantAuth: "Bearer ckt_file"},
		// The file's token was issued by the file's server: sending it to
		// a server named on the command line would hand it to a stranger.
		{name: "file token is not sent to a flag server",
			flags: []string{"--server", flagSrv.URL}, wantCode: 2, wantNoRequestsAny: true},
		{name: "file token is not sent to an env server",
			env: map[string]string{"CLAWKEEP_SERVER": envSrv.URL}, wantCode: 2, wantNoRequestsAny: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := isolateClientEnv(t)
			saveClientConfig(t, cfgPath, clientConfig{Server: fileSrv.URL, Token: "ckt_file"}, 0o600)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			before := [3]int{}
			for i, s := range servers {
				before[i] = len(s.requests())
			}
			_, stderr, code := runClient(t, "", append([]string{"org", "list"}, tc.flags...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.wantCode, stderr)
			}
			for i, s := range servers {
				reqs := s.requests()[before[i]:]
				switch {
				case tc.wantNoRequestsAny || s != tc.wantSrv:
					if len(reqs) != 0 {
						t.Errorf("server %d got %d requests (auth %q)", i, len(reqs), reqs[0].auth)
					}
				case len(reqs) != 1 || reqs[0].auth != tc.wantAuth:
					t.Errorf("server %d got %+v, want one request with %q", i, reqs, tc.wantAuth)
				}
			}
		})
	}
}

func TestProblemResponsesExitOneWithTheCode(t *testing.T) {
	isolateClientEnv(t)
	t.Setenv("CLAWKEEP_TOKEN", testAPIToken)
	cases := []struct {
		status      int
		code, retry string
		want        []string
	}{
		{403, "forbidden", "", []string{"forbidden", "role viewer may not"}},
		{404, "not_found", "", []string{"not_found"}},
		{429, "rate_limited", "7", []string{"rate_limited", "retry after 7"}},
		{503, "worker_unavailable", "3", []string{"worker_unavailable", "retry after 3"}},
	}
	for _, tc := range cases {
		srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
			if tc.retry != "" {
				w.Header().Set("Retry-After", tc.retry)
			}
			fakeWriteProblem(w, tc.status, tc.code, "role viewer may not")
		})
		t.Setenv("CLAWKEEP_SERVER", srv.URL)
		_, stderr, code := runClient(t, "", "agent", "list", "--org", "acme")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", tc.code, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q lacks %q", tc.code, stderr, w)
			}
		}
	}
	// An error page that is not a problem document still exits 1, with the status.
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.WriteHeader(502)
		io.WriteString(w, "<html>bad gateway</html>")
	})
	t.Setenv("CLAWKEEP_SERVER", srv.URL)
	if _, stderr, code := runClient(t, "", "agent", "list", "--org", "acme"); code != 1 || !strings.Contains(stderr, "502") {
		t.Errorf("502 page: exit %d, stderr %q", code, stderr)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) { fakeWriteJSON(w, 200, `{}`) })
	t.Setenv("CLAWKEEP_SERVER", srv.URL)
	t.Setenv("CLAWKEEP_TOKEN", testAPIToken)
	cases := [][]string{
		{"org"},
		{"org", "frobnicate"},
		{"org", "create"},
		{"org", "create", "a", "b"},
		{"org", "list", "--no-such-flag"},
		{"agent", "list"}, // no --org
		{"agent", "get", "--org", "o"},
		{"agent", "apply", "--org", "o"},
		{"agent", "apply", "--org", "o", "-f", "/nonexistent/claw.yaml"},
		{"user", "add", "--org", "o", "--email", "e@x", "--role", "god"},
		{"member", "set-role", "--org", "o", "--user-id", "3", "--role", "root"},
		{"member", "remove", "--org", "o"},
		{"token", "create", "--org", "o", "--name", "ci", "--role", "admin", "--expires", "forever"},
		{"token", "create", "--org", "o", "--name", "ci", "--role", "admin", "--expires", "-1h"},
		{"token", "revoke", "--org", "o"},
		{"ability", "grant", "--org", "o", "--agent", "a", "--service", "gh"}, // no action
		{"ability", "grant", "--org", "o", "--agent", "a", "--service", "gh", "--action", "issues.create=yes"},
		{"ability", "grant", "--org", "o", "--agent", "a", "--service", "gh", "--action", "issues.create"},
		// A credential with no host could be sent wherever the agent points it.
		{"ability", "grant", "--org", "o", "--agent", "a", "--service", "gh", "--action", "x=automatic", "--credential", "gh"},
		{"ability", "grant", "--org", "o", "--agent", "a", "--service", "gh", "--action", "x=automatic", "--host", "api.github.com"},
		{"credential", "set", "--org", "o", "--name", "gh", "--type", "bearer"},
		{"credential", "set", "--org", "o", "--name", "gh", "--type", "api-key"}, // empty stdin
		{"approvals", "reject", "--org", "o", "42", "--reason", "because"},
		{"approvals", "approve", "--org", "o"},
		{"remote-audit", "tail", "--org", "o"},
		{"login", "--email", "e@x"}, // no password on stdin
		{"bootstrap", "--email", "e@x"},
	}
	for _, args := range cases {
		stdout, stderr, code := runClient(t, "", args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s%s", args, code, stdout, stderr)
		}
		if stderr == "" {
			t.Errorf("%q: no message", args)
		}
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	for _, args := range [][]string{{"org", "--help"}, {"token", "create", "--help"}, {"login", "-h"}} {
		if _, _, code := runClient(t, "", args...); code != 0 {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
	}
	if _, handled := clientCommand("no-such-command", nil, strings.NewReader(""), io.Discard, io.Discard); handled {
		t.Error("an unknown command was handled")
	}
}

// clientCase is one subcommand and the one request the contract says it sends.
type clientCase struct {
	args        []string
	stdin       string
	method      string
	path        string // as sent, escaped
	route       string // the OpenAPI path template
	contentType string
	body        string // JSON (compared as values) or, for YAML, exact text
	status      int
	answer      string
	wantOut     string
}

const testClawYAML = "claw: \"0.3.0\"\nkind: Claw\nmetadata:\n  name: triage-bot\n  version: \"1.0.0\"\nspec: {}\n"

func clientCases(t *testing.T) []clientCase {
	dir := t.TempDir()
	manifestFile := filepath.Join(dir, "claw.yaml")
	if err := os.WriteFile(manifestFile, []byte(testClawYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	o := []string{"--org", "acme"}
	with := func(head []string, tail ...string) []string {
		return append(append(append([]string{}, head...), o...), tail...)
	}
	return []clientCase{
		{args: []string{"org", "create", "acme"}, method: "POST", path: "/v1/orgs", route: "/v1/orgs",
			contentType: "application/json", body: `{"name":"acme"}`, status: 201,
			answer: `{"name":"acme","id":7,"created_at":"2026-01-01T00:00:00Z"}`, wantOut: "created org acme (id 7)"},
		{args: []string{"org", "list"}, method: "GET", path: "/v1/orgs", route: "/v1/orgs", status: 200,
			answer: `{"orgs":[{"name":"acme","role":"owner"}]}`, wantOut: "acme"},
		{args: with([]string{"user", "add"}, "--email", "bo@example.com", "--role", "member"), method: "POST",
			path: "/v1/orgs/acme/members", route: "/v1/orgs/{org}/members", contentType: "application/json",
			body: `{"email":"bo@example.com","role":"member"}`, status: 201,
			answer: `{"user_id":12,"email":"bo@example.com","role":"member"}`, wantOut: "user id 12"},
		{args: with([]string{"user", "add"}, "--email", "cy@example.com", "--role", "viewer", "--password-stdin"),
			stdin: "new-user-pw\n", method: "POST", path: "/v1/orgs/acme/members", route: "/v1/orgs/{org}/members",
			contentType: "application/json", body: `{"email":"cy@example.com","role":"viewer","password":"new-user-pw"}`,
			status: 201, answer: `{"user_id":"u13","email":"cy@example.com","role":"viewer"}`, wantOut: "user id u13"},
		{args: with([]string{"member", "list"}), method: "GET", path: "/v1/orgs/acme/members", route: "/v1/orgs/{org}/members",
			status: 200, answer: `{"members":[{"user_id":12,"email":"bo@example.com","role":"member","added_at":"2026-01-01T00:00:00Z"}]}`,
			wantOut: "bo@example.com"},
		{args: with([]string{"member", "set-role"}, "--user-id", "12", "--role", "admin"), method: "PATCH",
			path: "/v1/orgs/acme/members/12", route: "/v1/orgs/{org}/members/{user_id}", contentType: "application/json",
			body: `{"role":"admin"}`, status: 200, answer: `{"user_id":12,"email":"bo@example.com","role":"admin"}`,
			wantOut: "now admin"},
		{args: with([]string{"member", "remove"}, "--user-id", "12"), method: "DELETE", path: "/v1/orgs/acme/members/12",
			route: "/v1/orgs/{org}/members/{user_id}", status: 204, wantOut: "removed user 12"},
		{args: with([]string{"token", "create"}, "--name", "ci", "--role", "member", "--expires", "720h"), method: "POST",
			path: "/v1/orgs/acme/tokens", route: "/v1/orgs/{org}/tokens", contentType: "application/json",
			body: `{"name":"ci","role":"member","expires_in":"720h"}`, status: 201,
			answer: `{"token":"ckt_brand-new","id":"t1","name":"ci","role":"member"}`, wantOut: "ckt_brand-new\n"},
		{args: with([]string{"token", "list"}), method: "GET", path: "/v1/orgs/acme/tokens", route: "/v1/orgs/{org}/tokens",
			status: 200, answer: `{"tokens":[{"id":"t1","name":"ci","role":"member","agent":null,"created_by":1,"created_at":"2026-01-01T00:00:00Z","expires_at":null,"revoked":false,"last_used_at":null}]}`,
			wantOut: "ci"},
		{args: with([]string{"token", "revoke"}, "t1"), method: "DELETE", path: "/v1/orgs/acme/tokens/t1",
			route: "/v1/orgs/{org}/tokens/{id}", status: 204, wantOut: "revoked token t1"},
		{args: with([]string{"agent", "apply"}, "-f", manifestFile), method: "PUT", path: "/v1/orgs/acme/agents/triage-bot",
			route: "/v1/orgs/{org}/agents/{agent}", contentType: "application/yaml", body: testClawYAML, status: 201,
			answer: `{"name":"triage-bot","sha256":"ab12","updated_at":"2026-01-01T00:00:00Z"}`, wantOut: "triage-bot created"},
		{args: with([]string{"agent", "list"}), method: "GET", path: "/v1/orgs/acme/agents", route: "/v1/orgs/{org}/agents",
			status: 200, answer: `{"agents":[{"name":"triage-bot","updated_at":"2026-01-01T00:00:00Z","sha256":"ab12"}]}`,
			wantOut: "triage-bot"},
		{args: with([]string{"agent", "get"}, "triage-bot"), method: "GET", path: "/v1/orgs/acme/agents/triage-bot",
			route: "/v1/orgs/{org}/agents/{agent}", status: 200, answer: testClawYAML, wantOut: testClawYAML},
		// The name comes before the flags here: both orders work.
		{args: append([]string{"agent", "delete", "triage-bot"}, o...), method: "DELETE", path: "/v1/orgs/acme/agents/triage-bot",
			route: "/v1/orgs/{org}/agents/{agent}", status: 204, wantOut: "deleted agent triage-bot"},
		{args: with([]string{"agent", "token"}, "triage-bot"), method: "POST", path: "/v1/orgs/acme/agents/triage-bot/tokens",
			route: "/v1/orgs/{org}/agents/{agent}/tokens", contentType: "application/json", body: `{}`, status: 201,
			answer: `{"token":"cka_agent-new","id":"a1"}`, wantOut: "cka_agent-new\n"},
		{args: with([]string{"ability", "grant"}, "--agent", "triage-bot", "--service", "github",
			"--action", "issues.create=approval", "--action", "issues.list=automatic",
			"--credential", "gh", "--host", "api.github.com", "--header", "Authorization", "--format", "Bearer %s",
			"--guidelines", "be nice"),
			method: "PUT", path: "/v1/orgs/acme/agents/triage-bot/abilities/github",
			route: "/v1/orgs/{org}/agents/{agent}/abilities/{service}", contentType: "application/json",
			body:   `{"actions":{"issues.create":"approval","issues.list":"automatic"},"credential":{"name":"gh","hosts":["api.github.com"],"header":"Authorization","format":"Bearer %s"},"guidelines":"be nice"}`,
			status: 200, answer: `{"service":"github","actions":{"issues.create":"approval","issues.list":"automatic"},"updated_at":"2026-01-01T00:00:00Z"}`,
			wantOut: "issues.create=approval issues.list=automatic"},
		{args: with([]string{"ability", "list"}, "--agent", "triage-bot"), method: "GET",
			path: "/v1/orgs/acme/agents/triage-bot/abilities", route: "/v1/orgs/{org}/agents/{agent}/abilities", status: 200,
			answer:  `{"abilities":[{"service":"github","actions":{"issues.list":"automatic"},"credential":{"name":"gh","hosts":["api.github.com"]}}]}`,
			wantOut: "gh -> api.github.com"},
		{args: with([]string{"ability", "revoke"}, "--agent", "triage-bot", "--service", "github"), method: "DELETE",
			path: "/v1/orgs/acme/agents/triage-bot/abilities/github", route: "/v1/orgs/{org}/agents/{agent}/abilities/{service}",
			status: 204, wantOut: "may no longer use github"},
		{args: with([]string{"credential", "set"}, "--name", "gh", "--type", "api-key"), stdin: "ghp_\"quoted\"\\value\n",
			method: "PUT", path: "/v1/orgs/acme/credentials/gh", route: "/v1/orgs/{org}/credentials/{name}",
			contentType: "application/json", body: `{"type":"api-key","value":"ghp_\"quoted\"\\value"}`, status: 204,
			wantOut: "stored credential gh"},
		{args: with([]string{"credential", "list"}), method: "GET", path: "/v1/orgs/acme/credentials",
			route: "/v1/orgs/{org}/credentials", status: 200,
			answer:  `{"credentials":[{"name":"gh","type":"api-key","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}]}`,
			wantOut: "api-key"},
		{args: with([]string{"credential", "delete"}, "--name", "gh"), method: "DELETE", path: "/v1/orgs/acme/credentials/gh",
			route: "/v1/orgs/{org}/credentials/{name}", status: 204, wantOut: "deleted credential gh"},
		{args: with([]string{"approvals", "list"}), method: "GET", path: "/v1/orgs/acme/approvals", route: "/v1/orgs/{org}/approvals",
			status: 200, answer: `{"approvals":[{"id":"ap1","agent":"triage-bot","tool":"github.issues.create","summary":"open an issue","risk":"high","why":"writes","created_at":"2026-01-01T00:00:00Z","deadline":"2026-01-01T00:05:00Z"}]}`,
			wantOut: "open an issue"},
		{args: with([]string{"approvals", "approve"}, "ap1", "--note", "ok by me"), method: "POST",
			path: "/v1/orgs/acme/approvals/ap1/approve", route: "/v1/orgs/{org}/approvals/{id}/approve",
			contentType: "application/json", body: `{"note":"ok by me"}`, status: 200,
			answer: `{"id":"ap1","outcome":"approved","by":"ada@example.com"}`, wantOut: "ap1 approved by ada@example.com"},
		{args: with([]string{"approvals", "reject"}, "ap1", "--reason", "too_risky", "--details", "not today"), method: "POST",
			path: "/v1/orgs/acme/approvals/ap1/reject", route: "/v1/orgs/{org}/approvals/{id}/reject",
			contentType: "application/json", body: `{"reason":"too_risky","details":"not today"}`, status: 200,
			answer: `{"id":"ap1","outcome":"denied","by":"ada@example.com","reason":"too_risky"}`, wantOut: "denied"},
		{args: with([]string{"remote-audit", "verify"}), method: "GET", path: "/v1/orgs/acme/audit/verify",
			route: "/v1/orgs/{org}/audit/verify", status: 200, answer: `{"ok":true,"records":42}`, wantOut: "intact: 42 records"},
		{args: with([]string{"remote-audit", "export"}), method: "GET", path: "/v1/orgs/acme/audit/export",
			route: "/v1/orgs/{org}/audit/export", status: 200, answer: "{\"seq\":1}\n{\"seq\":2}\n", wantOut: "{\"seq\":1}\n{\"seq\":2}\n"},
		{args: []string{"logout"}, method: "POST", path: "/v1/logout", route: "/v1/logout", status: 204, wantOut: "logged out"},
		// Names are path segments, escaped: "../tokens" cannot reach another route.
		{args: with([]string{"agent", "get"}, "../tokens"), method: "GET", path: "/v1/orgs/acme/agents/..%2Ftokens",
			route: "/v1/orgs/{org}/agents/{agent}", status: 200, answer: testClawYAML, wantOut: testClawYAML},
	}
}

func TestEachSubcommandSendsTheContractRequest(t *testing.T) {
	for _, tc := range clientCases(t) {
		t.Run(strings.Join(tc.args[:min(2, len(tc.args))], "_"), func(t *testing.T) {
			isolateClientEnv(t)
			srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
				if tc.answer == "" {
					w.WriteHeader(tc.status)
					return
				}
				fakeWriteJSON(w, tc.status, tc.answer)
			})
			t.Setenv("CLAWKEEP_SERVER", srv.URL)
			t.Setenv("CLAWKEEP_TOKEN", testAPIToken)
			stdout, stderr, code := runClient(t, tc.stdin, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != tc.method || r.path != tc.path {
				t.Errorf("sent %s %s, want %s %s", r.method, r.path, tc.method, tc.path)
			}
			if r.auth != "Bearer "+testAPIToken {
				t.Errorf("Authorization %q", r.auth)
			}
			if tc.contentType != "" && r.contentType != tc.contentType {
				t.Errorf("Content-Type %q, want %q", r.contentType, tc.contentType)
			}
			switch {
			case tc.body == "":
				if len(r.body) != 0 {
					t.Errorf("unexpected body %s", r.body)
				}
			case tc.contentType == "application/json":
				var got, want any
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatalf("body %s: %v", r.body, err)
				}
				json.Unmarshal([]byte(tc.body), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("body %s, want %s", r.body, tc.body)
				}
			default:
				if string(r.body) != tc.body {
					t.Errorf("body %q, want %q", r.body, tc.body)
				}
			}
			if !strings.Contains(stdout, tc.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout, tc.wantOut)
			}
			if strings.Contains(stdout+stderr, testAPIToken) {
				t.Errorf("the caller's token was printed")
			}
			if tc.stdin != "" && strings.Contains(stdout+stderr, strings.TrimSpace(tc.stdin)) {
				t.Errorf("a secret read from stdin was printed")
			}
		})
	}
}

// TestNewTokenPrintedAloneOnce: the one place a token is shown, it is the
// whole first line of stdout, and only once.
func TestNewTokenPrintedAloneOnce(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		fakeWriteJSON(w, 201, `{"token":"ckt_shown-once","id":"t9","name":"ci","role":"viewer"}`)
	})
	stdout, stderr, code := runClient(t, "", "token", "create", "--server", srv.URL, "--token", testAPIToken,
		"--org", "acme", "--name", "ci", "--role", "viewer")
	if code != 0 || strings.Split(stdout, "\n")[0] != "ckt_shown-once" || strings.Count(stdout+stderr, "ckt_shown-once") != 1 {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
}

// TestTokenListNeverShowsValues: even a server that wrongly includes token
// values in the list does not get them printed.
func TestTokenListNeverShowsValues(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		fakeWriteJSON(w, 200, `{"tokens":[{"id":"t1","name":"ci","role":"member","token":"ckt_should-not-be-here","revoked":false}]}`)
	})
	t.Setenv("CLAWKEEP_SERVER", srv.URL)
	t.Setenv("CLAWKEEP_TOKEN", testAPIToken)
	for _, extra := range []string{"--org=acme", "--json"} {
		stdout, stderr, code := runClient(t, "", "token", "list", "--org", "acme", extra)
		if code != 0 || strings.Contains(stdout+stderr, "ckt_") || !strings.Contains(stdout, "t1") {
			t.Errorf("%s: exit %d\n%s%s", extra, code, stdout, stderr)
		}
	}
}

func TestBootstrapThenLoginSavesTheSession(t *testing.T) {
	cfgPath := isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var in map[string]string
		json.Unmarshal(body, &in)
		switch {
		case r.URL.Path == "/v1/bootstrap" && in["token"] == "boot-123" && in["email"] == "ada@example.com" && in["password"] == "pw":
			fakeWriteJSON(w, 201, `{"user":{"id":1,"email":"ada@example.com","instance_owner":true}}`)
		case r.URL.Path == "/v1/login" && in["email"] == "ada@example.com" && in["password"] == "pw":
			fakeWriteJSON(w, 200, `{"token":"cks_boot-session","expires_at":"2026-12-01T00:00:00Z","user":{"id":1,"email":"ada@example.com","instance_owner":true}}`)
		default:
			fakeWriteProblem(w, 401, "unauthenticated", "no")
		}
	})
	stdout, stderr, code := runClient(t, "pw\n", "bootstrap", "--server", srv.URL, "--token", "boot-123", "--email", "ada@example.com")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "cks_boot-session") || strings.Contains(stdout+stderr, "boot-123") {
		t.Fatalf("a secret was printed:\n%s%s", stdout, stderr)
	}
	if cfg, err := clientReadConfig(cfgPath); err != nil || cfg.Token != "cks_boot-session" || cfg.Server != srv.URL {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	if reqs := srv.requests(); len(reqs) != 2 || reqs[0].auth != "" || reqs[1].auth != "" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestLogoutForgetsTheSavedSession(t *testing.T) {
	cfgPath := isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) { w.WriteHeader(204) })
	saveClientConfig(t, cfgPath, clientConfig{Server: srv.URL, Token: "cks_old"}, 0o600)
	if _, stderr, code := runClient(t, "", "logout"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err := clientReadConfig(cfgPath)
	if err != nil || cfg.Token != "" || cfg.Server != srv.URL {
		t.Fatalf("config after logout %+v, %v", cfg, err)
	}
	if reqs := srv.requests(); len(reqs) != 1 || reqs[0].path != "/v1/logout" || reqs[0].auth != "Bearer cks_old" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestPlainHTTPToRemoteHostRefused(t *testing.T) {
	isolateClientEnv(t)
	// No request can leave: the refusal comes before any connection, and
	// these hosts are never contacted.
	for _, server := range []string{"http://example.com", "http://10.0.0.8:7450", "http://127.1:7450", "http://localhost.example.com"} {
		_, stderr, code := runClient(t, "", "org", "list", "--server", server, "--token", testAPIToken)
		if code != 2 || !strings.Contains(stderr, "clear text") {
			t.Errorf("%s: exit %d, stderr %q", server, code, stderr)
		}
		if strings.Contains(stderr, testAPIToken) {
			t.Errorf("%s: the token was printed", server)
		}
	}
	for _, tc := range []struct {
		raw      string
		insecure bool
		ok       bool
	}{
		{"http://127.0.0.1:7450", false, true},
		{"http://[::1]:7450/", false, true},
		{"http://LOCALHOST:7450", false, true},
		{"https://keep.example.com", false, true},
		{"https://keep.example.com/prefix/", false, true},
		{"http://keep.example.com", true, true},
		{"http://example.com", false, false},              // the token would cross the network in clear text
		{"http://[::ffff:10.0.0.1]", false, false},        // a mapped address that is not loopback
		{"http://127.1", false, false},                    // a short form netip refuses; failing closed
		{"https://ada:pw@keep.example.com", false, false}, // a password in history and the config file
		{"https://ada@keep.example.com", false, false},
		{"ftp://keep.example.com", false, false},
		{"file:///etc/passwd", false, false},
		{"keep.example.com", false, false}, // no scheme
		{"https://", false, false},
		{"https://keep.example.com/?x=1", false, false},
		{"https://keep.example.com/#frag", false, false},
		{"", false, false},
	} {
		u, err := parseServerURL(tc.raw, tc.insecure)
		if (err == nil) != tc.ok || (err == nil) != u.IsValid() {
			t.Errorf("parseServerURL(%q, %v) = %q, %v; want ok=%v", tc.raw, tc.insecure, u, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("parseServerURL(%q) echoed the password: %v", tc.raw, err)
		}
	}
}

func TestBearerTokenRedactedInEveryFormat(t *testing.T) {
	tok, err := parseBearerToken("ckt_secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s %q %x", tok, tok, tok, tok, tok, tok), fmt.Sprint(clientTarget{token: tok})} {
		if strings.Contains(s, "secret") {
			t.Errorf("formatted as %q", s)
		}
	}
	// A token with a newline could inject headers.
	if _, err := parseBearerToken("ckt_a\r\nX-Evil: 1"); err == nil {
		t.Error("a token with CR LF was accepted")
	}
}

func TestServerCannotInjectTerminalEscapes(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch r.URL.Path {
		case "/v1/orgs":
			fakeWriteJSON(w, 200, `{"orgs":[{"name":"acme\u001b]0;owned\u0007","role":"owner"}]}`)
		case "/v1/orgs/acme/agents/evil":
			w.Header().Set("Content-Type", "application/yaml")
			io.WriteString(w, "metadata:\n  name: evil\x1b[2J\n")
		default:
			fakeWriteProblem(w, 403, "forbidden", "nope\x1b[31m red")
		}
	})
	t.Setenv("CLAWKEEP_SERVER", srv.URL)
	t.Setenv("CLAWKEEP_TOKEN", testAPIToken)
	for _, args := range [][]string{{"org", "list"}, {"agent", "get", "--org", "acme", "evil"}, {"agent", "list", "--org", "x"}} {
		stdout, stderr, _ := runClient(t, "", args...)
		if strings.ContainsRune(stdout+stderr, 0x1b) {
			t.Errorf("%q: an escape sequence reached the terminal: %q %q", args, stdout, stderr)
		}
	}
}

// TestRedirectDoesNotCarryTheToken: a server that redirects elsewhere does
// not get the client to send its token there.
func TestRedirectDoesNotCarryTheToken(t *testing.T) {
	isolateClientEnv(t)
	other := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) { fakeWriteJSON(w, 200, `{"orgs":[]}`) })
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		http.Redirect(w, r, other.URL+"/v1/orgs", http.StatusTemporaryRedirect)
	})
	_, _, code := runClient(t, "", "org", "list", "--server", srv.URL, "--token", testAPIToken)
	if code != 1 || len(other.requests()) != 0 {
		t.Fatalf("exit %d, the other server got %d requests", code, len(other.requests()))
	}
}

func TestOversizedResponseRefused(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"orgs":[`)
		chunk := bytes.Repeat([]byte(`{"name":"x","role":"viewer"},`), 1<<15)
		for n := 0; n <= clientMaxResponse; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `{"name":"x","role":"viewer"}]}`)
	})
	_, stderr, code := runClient(t, "", "org", "list", "--server", srv.URL, "--token", testAPIToken)
	if code != 2 || !strings.Contains(stderr, "larger than") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestRemoteAuditVerifyBrokenChainExitsOne(t *testing.T) {
	isolateClientEnv(t)
	srv := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		fakeWriteJSON(w, 200, `{"ok":false,"records":9,"problem":"record 4 hash mismatch"}`)
	})
	stdout, _, code := runClient(t, "", "remote-audit", "verify", "--org", "acme", "--server", srv.URL, "--token", testAPIToken)
	if code != 1 || !strings.Contains(stdout, "BROKEN") || !strings.Contains(stdout, "record 4 hash mismatch") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

// TestOpenAPIHasEveryClientRoute checks internal/server/openapi.yaml: each
// route the client calls exists with its method, and every operation has
// an operationId, a known x-clawkeep-role and only declared path parameters.
func TestOpenAPIHasEveryClientRoute(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "server", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	extra := []clientCase{
		{method: "POST", route: "/v1/login"},
		{method: "POST", route: "/v1/bootstrap"},
	}
	for _, tc := range append(clientCases(t), extra...) {
		if _, ok := doc.Paths[tc.route][strings.ToLower(tc.method)]; !ok {
			t.Errorf("openapi.yaml lacks %s %s, which the client calls", tc.method, tc.route)
		}
	}
	roles := map[string]bool{"anyone": true, "session": true, "person": true, "instance-owner": true, "viewer": true,
		"member": true, "admin": true, "owner": true, "agent": true}
	ids := map[string]string{}
	ops := 0
	for path, item := range doc.Paths {
		for method, v := range item {
			if method == "parameters" {
				continue
			}
			op, _ := v.(map[string]any)
			ops++
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s: no operationId", method, path)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s on %s and %s %s", id, prev, method, path)
			}
			ids[id] = method + " " + path
			if role, _ := op["x-clawkeep-role"].(string); !roles[role] {
				t.Errorf("%s %s: x-clawkeep-role %q", method, path, role)
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
	if ops != 36 {
		t.Errorf("%d operations, want the contract's 36", ops)
	}
}

// FuzzParseServerURL: whatever the input, an accepted URL is canonical (it
// parses back to itself), is http(s) with a host and no user:password@,
// and is plain http only to a loopback host unless --insecure-http.
func FuzzParseServerURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:7450", "https://keep.example.com/p/", "http://[::1]", "http://a:b@127.0.0.1",
		"HTTP://LOCALHOST", "http://127.1", "http://[::ffff:127.0.0.1]", "https://%65xample.com", "http://localhost%2f@evil"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, insecure bool) {
		u, err := parseServerURL(raw, insecure)
		if err != nil {
			if u.IsValid() {
				t.Fatalf("%q: error %v with a valid URL", raw, err)
			}
			return
		}
		again, err := parseServerURL(u.String(), insecure)
		if err != nil || again != u {
			t.Fatalf("%q -> %q -> %q, %v", raw, u, again, err)
		}
		p, err := url.Parse(u.String())
		if err != nil || p.User != nil || p.Hostname() == "" || (p.Scheme != "http" && p.Scheme != "https") {
			t.Fatalf("%q accepted as %q", raw, u)
		}
		if p.Scheme == "http" && !insecure && !clientIsLoopback(p.Hostname()) {
			t.Fatalf("%q: plain http to %q accepted", raw, p.Hostname())
		}
	})
}
