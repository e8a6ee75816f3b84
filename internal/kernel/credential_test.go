package kernel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/egress/egresstest"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// TestCredentialInjectedAtBoundaryNeverSeenByAgent: a local server stands
// in for an API; the agent's http.fetch sends a placeholder; the server sees
// the real token; the tool result, the audit chain and every file the run
// wrote never contain it; a redirect to another host arrives without it.
func TestCredentialInjectedAtBoundaryNeverSeenByAgent(t *testing.T) {
	const token = "tok_e2e_9c1f7a3b5d2e8f4a6b0c"
	var mu sync.Mutex
	var seen []string // Authorization headers each server received
	record := func(who string, r *http.Request) {
		mu.Lock()
		seen = append(seen, who+": "+r.Header.Get("Authorization")+" "+r.Header.Get("X-Api-Key"))
		mu.Unlock()
	}
	// The other host is 127.0.0.2: another host than the credential's.
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("other", r)
		fmt.Fprint(w, "other host")
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("this test needs 127.0.0.2 on loopback: %v", err)
	}
	other.Listener.Close()
	other.Listener = ln
	other.Start()
	defer other.Close()
	otherURL := other.URL
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("api", r)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, otherURL+"/landing", http.StatusFound)
			return
		}
		fmt.Fprint(w, "api ok")
	}))
	defer api.Close()

	dir := t.TempDir()
	cred := egresstest.BearerCredential(t, "api", token, "127.0.0.1")
	claw, err := manifest.Parse([]byte(fmt.Sprintf(head, "")+`  identity: {inline: {personality: p, autonomy: autonomous}}
  tools:
    - inline: {name: fetch, labels: {clawkeep.dev/builtin: http.fetch}, description: f, input_schema: {type: object}, annotations: {readOnlyHint: true}}
  sandbox:
    inline: {level: none, capabilities: {network: {mode: allow-all}}}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`), manifest.Options{File: "t.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(dir, audit.Options{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := approval.Open(filepath.Join(dir, "approvals.db"), approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(Config{
		Tenant: "t1", Claw: claw, Workspace: filepath.Join(dir, "ws"), Audit: log, Approvals: ap,
		Exempt:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, // the test's own servers
		Credentials: []egress.Credential{cred},
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(id, url string) (string, error) {
		args, _ := json.Marshal(map[string]any{"url": url, "headers": map[string]string{"Authorization": egress.Placeholder("api")}})
		res, err := k.Call(context.Background(), ckp.ToolCallParams{Name: "fetch", Arguments: args, Context: ckp.ToolCallContext{RequestID: id}})
		if err != nil {
			return "", err
		}
		return res.Content[0].Text, nil
	}
	var results []string
	out, err := call("c1", api.URL+"/v1")
	if err != nil || !strings.Contains(out, "api ok") {
		t.Fatalf("fetch through the boundary: %q %v", out, err)
	}
	results = append(results, out)
	out, err = call("c2", api.URL+"/redirect")
	results = append(results, out, fmt.Sprint(err))
	k.Close()
	log.Close()
	ap.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[0] != "api: Bearer "+token+" " {
		t.Fatalf("the API did not receive the real token: %q", seen)
	}
	reached := false
	for _, s := range seen {
		if strings.HasPrefix(s, "other:") {
			reached = true
			if strings.Contains(s, token) {
				t.Fatalf("the redirect target received the token: %q", s)
			}
		}
	}
	if !reached {
		t.Fatalf("the redirect was not followed, so it proves nothing: %q, results %q", seen, results)
	}
	for _, r := range results {
		if strings.Contains(r, token) {
			t.Fatalf("the agent saw the token: %q", r)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte(token)) {
			t.Errorf("%s contains the token", p)
		}
		return nil
	})
	recs, err := audit.ReadTail(dir, 50)
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, r := range recs {
		if r.Event == "credential" && r.Detail["credential"] == "api" {
			used++
		}
	}
	if used == 0 {
		t.Fatal("credential use was not audited")
	}
}

// A tool that reads a file holding the tenant's own credential, plain or
// base64-encoded, returns it redacted: secret_scanning knows the vault's
// values, not only provider formats. The value has no provider shape.
func TestVaultValueInToolOutputIsRedacted(t *testing.T) {
	const value = "tenant-own-secret-7d1c0b92e4f5a8"
	dir := t.TempDir()
	v, err := vault.Open(filepath.Join(dir, "vault"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Put("t1", "own", vault.APIKey, []byte(value)); err != nil {
		t.Fatal(err)
	}
	place, _ := egress.HeaderPlacement("X-Key", "%s")
	cred := egress.Credential{Name: "own", Hosts: []string{"api.example.com"}, Placement: place,
		Secret: func() (*vault.Secret, error) { return v.Get("t1", "own") }}
	claw, err := manifest.Parse([]byte(fmt.Sprintf(head, "")+`  identity: {inline: {personality: p, autonomy: autonomous}}`+fileTools+`
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}], secret_scanning: {enabled: true, scope: output, action: redact}}}]
`), manifest.Options{File: "t.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := audit.Open(dir, audit.Options{Tenant: "t1"})
	defer log.Close()
	ap, _ := approval.Open(filepath.Join(dir, "approvals.db"), approval.Options{})
	defer ap.Close()
	k, err := New(Config{Tenant: "t1", Claw: claw, Workspace: filepath.Join(dir, "ws"), Audit: log, Approvals: ap, Credentials: []egress.Credential{cred}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	os.WriteFile(filepath.Join(dir, "ws", "leak"), []byte("plain "+value+" b64 "+base64.StdEncoding.EncodeToString([]byte(value))), 0o600)
	args, _ := json.Marshal(map[string]any{"path": "leak"})
	res, err := k.Call(context.Background(), ckp.ToolCallParams{Name: "read", Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Content[0].Text
	if strings.Contains(out, value) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(value))) || strings.Count(out, "[REDACTED:") != 2 {
		t.Fatalf("the tenant's secret reached the agent: %q", out)
	}
}
