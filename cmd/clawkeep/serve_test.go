package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// serveProc is `clawkeep serve` running as a child process.
type serveProc struct {
	url, bootstrap string
	stderr         *lockedBuffer
}

// startServe runs the real binary on a fresh data directory and reads its
// address and one-time bootstrap token from stderr. The data root is
// world-traversable so workers under their own uid (as root) can reach
// their directories.
func startServe(t *testing.T) *serveProc {
	t.Helper()
	root, err := os.MkdirTemp("", "clawkeep-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o711)
	t.Cleanup(func() { os.RemoveAll(root) })
	cmd := exec.Command(binPath, "serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "data"))
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(hangGuard):
			cmd.Process.Kill()
		}
		pw.Close()
	})
	s := &serveProc{stderr: &lockedBuffer{}}
	addr := regexp.MustCompile(`serving the API on (http://\S+)`)
	got := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.stderr.Write([]byte(line + "\n"))
			if m := addr.FindStringSubmatch(line); m != nil {
				s.url = m[1]
			}
			if strings.HasPrefix(line, "ckb_") {
				s.bootstrap = line
				close(got)
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(hangGuard):
		t.Fatal("serve printed no bootstrap token")
	}
	return s
}

// cli runs a client subcommand in-process with the config file of one
// person, and returns its exit code and stdout.
func cli(t *testing.T, config, stdin string, args ...string) (int, string) {
	t.Helper()
	t.Setenv("CLAWKEEP_CONFIG", config)
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	if code != 0 {
		t.Logf("clawkeep %s: exit %d: %s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return code, out.String()
}

func mustCLI(t *testing.T, config, stdin string, args ...string) string {
	t.Helper()
	code, out := cli(t, config, stdin, args...)
	if code != 0 {
		t.Fatalf("clawkeep %s: exit %d", strings.Join(args, " "), code)
	}
	return out
}

const e2eAgent = `claw: "0.3.0"
kind: Claw
metadata: {name: helper}
spec:
  identity: {inline: {personality: "A careful helper.", autonomy: autonomous}}
  providers:
    - inline: {protocol: openai-compatible, endpoint: "http://localhost:11434/v1", model: m, auth: {type: none}}
  tools:
    - inline: {name: send-mail, labels: {clawkeep.dev/builtin: echo, clawkeep.dev/service: gmail, clawkeep.dev/action: send}, description: send, input_schema: {type: object}}
  sandbox:
    inline: {level: none}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`

// TestServeEndToEnd is the whole path from a fresh data directory: serve,
// bootstrap the owner, create an organisation, a member and a viewer,
// apply an agent, make a tool call over WebSocket that needs approval,
// approve it through the API as the member (after the viewer could list
// it but not approve it), see the result and the audit trail.
func TestServeEndToEnd(t *testing.T) {
	s := startServe(t)
	dir := t.TempDir()
	ownerCfg, memberCfg, viewerCfg := filepath.Join(dir, "owner.json"), filepath.Join(dir, "member.json"), filepath.Join(dir, "viewer.json")

	mustCLI(t, ownerCfg, "owner password 123\n", "bootstrap", "--server", s.url, "--token", s.bootstrap, "--email", "owner@example.com")
	if code, _ := cli(t, filepath.Join(dir, "again.json"), "x password 1234\n", "bootstrap", "--server", s.url, "--token", s.bootstrap, "--email", "x@example.com"); code == 0 {
		t.Fatal("the bootstrap token worked twice")
	}
	mustCLI(t, ownerCfg, "", "org", "create", "acme")
	mustCLI(t, ownerCfg, "member password 1\n", "user", "add", "--org", "acme", "--email", "member@example.com", "--role", "member", "--password-stdin")
	mustCLI(t, ownerCfg, "viewer password 1\n", "user", "add", "--org", "acme", "--email", "viewer@example.com", "--role", "viewer", "--password-stdin")
	mustCLI(t, memberCfg, "member password 1\n", "login", "--server", s.url, "--email", "member@example.com")
	mustCLI(t, viewerCfg, "viewer password 1\n", "login", "--server", s.url, "--email", "viewer@example.com")

	manifest := filepath.Join(dir, "claw.yaml")
	os.WriteFile(manifest, []byte(e2eAgent), 0o600)
	mustCLI(t, ownerCfg, "", "agent", "apply", "--org", "acme", "-f", manifest)
	mustCLI(t, ownerCfg, "", "ability", "grant", "--org", "acme", "--agent", "helper", "--service", "gmail", "--action", "send=approval")
	agentToken := strings.TrimSpace(mustCLI(t, ownerCfg, "", "agent", "token", "--org", "acme", "helper"))
	if !strings.HasPrefix(agentToken, "cka_") {
		t.Fatalf("agent token output %q", agentToken)
	}

	// The agent connects over WebSocket and asks to send mail.
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/v1/ckp", &websocket.DialOptions{
		Subprotocols: []string{"claw"}, HTTPHeader: map[string][]string{"Authorization": {"Bearer " + agentToken}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(v any) {
		b, _ := json.Marshal(v)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	replies := make(chan map[string]any, 16)
	go func() {
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				close(replies)
				return
			}
			var m map[string]any
			json.Unmarshal(msg, &m)
			if m["id"] != nil {
				replies <- m
			}
		}
	}()
	send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "claw.initialize", "params": map[string]any{
		"protocolVersion": "0.3.0", "clientInfo": map[string]string{"name": "e2e", "version": "1"},
		"manifest": "claw://local/claw/helper", "capabilities": map[string]any{}}})
	if r := <-replies; r["error"] != nil {
		t.Fatalf("initialize: %v", r)
	}
	send(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "claw.tool.call", "params": map[string]any{
		"name": "send-mail", "arguments": map[string]any{"to": "client@example.com"}, "context": map[string]any{"request_id": "mail-1"}}})
	// The agent cannot approve its own call.
	send(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "claw.tool.approve", "params": map[string]any{"request_id": "mail-1"}})
	if r := <-replies; r["id"] != float64(3) || r["error"] == nil {
		t.Fatalf("the agent approved its own call: %v", r)
	}

	// The viewer sees the pending request but cannot approve it.
	deadline := time.Now().Add(hangGuard)
	for {
		_, out := cli(t, viewerCfg, "", "approvals", "list", "--org", "acme")
		if strings.Contains(out, "mail-1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never appeared in the viewer's list")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := cli(t, viewerCfg, "", "approvals", "approve", "--org", "acme", "mail-1"); code != 1 {
		t.Fatalf("the viewer's approve: exit %d, want 1 (refused)", code)
	}
	select {
	case r := <-replies:
		t.Fatalf("the call finished before anyone allowed to approved it: %v", r)
	default:
	}
	mustCLI(t, memberCfg, "", "approvals", "approve", "--org", "acme", "mail-1")

	r := <-replies
	if r["id"] != float64(2) || r["result"] == nil {
		t.Fatalf("tool call reply: %v", r)
	}
	if !strings.Contains(mustJSON(r["result"]), "client@example.com") {
		t.Fatalf("tool result: %v", r["result"])
	}
	ws.Close(websocket.StatusNormalClosure, "")

	const credential = "sk-live-E2E-CREDENTIAL-VALUE-77"
	mustCLI(t, ownerCfg, credential+"\n", "credential", "set", "--org", "acme", "--name", "stripe", "--type", "api-key")
	if out := mustCLI(t, viewerCfg, "", "credential", "list", "--org", "acme"); !strings.Contains(out, "stripe") || strings.Contains(out, credential) {
		t.Fatalf("credential list: %q", out)
	}
	export := mustCLI(t, viewerCfg, "", "audit", "export", "--org", "acme")
	for _, want := range []string{`"approval-required"`, `"by":"user:member@example.com"`, `"event":"outcome"`} {
		if !strings.Contains(export, want) {
			t.Errorf("audit export lacks %s:\n%s", want, export)
		}
	}
	mustCLI(t, viewerCfg, "", "audit", "verify", "--org", "acme")
	for _, secret := range []string{"owner password", "member password", agentToken, credential} {
		if strings.Contains(s.stderr.String(), secret) || strings.Contains(export, secret) {
			t.Fatalf("a secret (%.12s...) leaked into the server log or the audit trail", secret)
		}
	}
	if !strings.Contains(export, `"name":"stripe"`) {
		t.Error("storing the credential was not audited")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
