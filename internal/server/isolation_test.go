package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/tenant"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CLAWKEEP_REQUIRE_ALL") != "" {
			t.Fatal("this test needs root (workers under their own uid) and CLAWKEEP_REQUIRE_ALL is set")
		}
		t.Skip("needs root: workers run under their own uid only when the supervisor is root")
	}
}

// TestOrgATokenCannotTouchOrgB: every route of organisation b, called with
// a's owner session, a's API token and a's agent token, is refused, and
// nothing in b changes.
func TestOrgATokenCannotTouchOrgB(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.org("b")
	aOwner := f.member("a", "alice@example.com", "owner")
	aAPI := f.mustDo("POST", "/v1/orgs/a/tokens", aOwner, map[string]any{"name": "ci", "role": "owner"}, 201).json["token"].(string)
	aAgent := f.agent("a", "helper")
	f.agent("b", "helper")
	f.mustDo("PUT", "/v1/orgs/b/credentials/cred1", f.owner, map[string]any{"type": "api-key", "value": "sk-b-secret-000000"}, 204)
	before := f.mustDo("GET", "/v1/orgs/b/audit/export", f.owner, nil, 200).raw

	for _, rt := range routes() {
		if rt.who.minRole() == 0 {
			continue
		}
		path := expand(rt.pattern, false)
		path = "/v1/orgs/b" + path[len("/v1/orgs/a"):]
		for name, tok := range map[string]string{"a's owner": aOwner, "a's API token": aAPI, "a's agent token": aAgent} {
			r := f.do(rt.method, path, tok, bodyFor(rt))
			if r.status != 404 || !hasPrefix(detail(r), "no organisation") {
				t.Errorf("%s %s with %s: %d %s, want 404 no organisation", rt.method, path, name, r.status, r.raw)
			}
		}
	}
	after := f.mustDo("GET", "/v1/orgs/b/audit/export", f.owner, nil, 200).raw
	if string(before) != string(after) {
		t.Errorf("b's audit chain changed under a's requests")
	}
	// a's agent token runs a's agent, in a's worker: b's audit never sees it.
	if r := f.toolCall(aAgent, "echo", "iso-1"); r.status != 200 {
		t.Fatalf("a's own call: %d %s", r.status, r.raw)
	}
	recs := f.mustDo("GET", "/v1/orgs/b/audit?tool=echo", f.owner, nil, 200).json["records"].([]any)
	if len(recs) != 0 {
		t.Errorf("a's tool call reached b's audit chain: %v", recs)
	}
}

// TestWorkerOfACannotOpenBsDataDirectory runs, as worker a's uid, a
// process that tries to list b's data directory and read its vault and
// master key: a compromised worker gets no further.
func TestWorkerOfACannotOpenBsDataDirectory(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, fixtureOpts{uidBase: 300000})
	f.org("a")
	f.org("b")
	f.agent("a", "helper")
	f.agent("b", "helper")
	f.mustDo("PUT", "/v1/orgs/b/credentials/cred1", f.owner, map[string]any{"type": "api-key", "value": "sk-b-secret-000000"}, 204)
	a, b := orgOf(t, f, "a"), orgOf(t, f, "b")
	pid := f.sup.WorkerPID(a)
	if pid == 0 {
		t.Fatal("a's worker is not running")
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := f.sup.UID(a)
	if !containsLine(string(st), fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid)) {
		t.Fatalf("a's worker does not run as uid %d:\n%s", uid, st)
	}
	try := func(asUID int, dir string) int {
		cmd := exec.Command(f.exe, "try-open", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(asUID), Gid: uint32(asUID), Groups: []uint32{}}}
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := try(uid, f.sup.DataDir(a)); code != 0 {
		t.Fatalf("control: a's uid cannot open its own data directory (exit %d)", code)
	}
	if code := try(uid, f.sup.DataDir(b)); code != 3 {
		t.Fatalf("a's uid opened b's data directory (exit %d)", code)
	}
	if code := try(uid, filepath.Join(f.root, "supervisor")); code != 3 {
		t.Fatalf("a's uid opened the supervisor's identity store (exit %d)", code)
	}
}

func containsLine(s, line string) bool {
	for _, l := range splitLines(s) {
		if l == line {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func orgOf(t *testing.T, f *fixture, name string) tenant.Org {
	t.Helper()
	o, err := f.ids.Org(name)
	if err != nil {
		t.Fatal(err)
	}
	return tenant.Org{ID: o.ID, Name: o.Name}
}

// TestKillingOneWorkerLeavesTheOtherServing kills a's worker with SIGKILL
// while both organisations' agents are making tool calls. b sees no error
// at all; a's calls fail only until its worker is back; every call either
// organisation was answered for is in its audit chain; both chains verify.
func TestKillingOneWorkerLeavesTheOtherServing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.org("b")
	tokA, tokB := f.agent("a", "helper"), f.agent("b", "helper")
	a := orgOf(t, f, "a")
	firstPID := f.sup.WorkerPID(a)

	type result struct {
		acked  []string
		failed int
	}
	var mu sync.Mutex
	results := map[string]*result{"a": {}, "b": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, org := range []string{"a", "b"} {
		tok := map[string]string{"a": tokA, "b": tokB}[org]
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("%s-%d-%d", org, w, i)
					r := f.toolCall(tok, "echo", id)
					mu.Lock()
					if r.status == 200 && r.json["result"] != nil {
						results[org].acked = append(results[org].acked, id)
					} else {
						results[org].failed++
					}
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for a to be back (restart with backoff), then let both run on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pid := f.sup.WorkerPID(a)
		if pid != 0 && pid != firstPID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's worker did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	ackedBeforeRestart := len(results["a"].acked)
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if results["b"].failed != 0 {
		t.Errorf("b had %d failed calls while a's worker died", results["b"].failed)
	}
	if len(results["a"].acked) <= ackedBeforeRestart {
		t.Errorf("a answered no calls after its restart")
	}
	t.Logf("a: %d answered, %d failed around the kill; b: %d answered", len(results["a"].acked), results["a"].failed, len(results["b"].acked))
	for _, org := range []string{"a", "b"} {
		v := f.mustDo("GET", "/v1/orgs/"+org+"/audit/verify", f.owner, nil, 200)
		if v.json["ok"] != true {
			t.Errorf("%s's audit chain does not verify: %s", org, v.raw)
		}
		export := string(f.mustDo("GET", "/v1/orgs/"+org+"/audit/export", f.owner, nil, 200).raw)
		outcomes := map[string]bool{}
		for _, line := range splitLines(export) {
			if line == "" {
				continue
			}
			var rec struct {
				Event     string `json:"event"`
				RequestID string `json:"request_id"`
				Outcome   string `json:"outcome"`
			}
			jsonUnmarshal(line, &rec)
			if rec.Event == "outcome" && rec.Outcome == "ok" {
				outcomes[rec.RequestID] = true
			}
		}
		for _, id := range results[org].acked {
			if !outcomes[id] {
				t.Errorf("%s: call %s was answered but its outcome is not in the audit chain", org, id)
			}
		}
	}
}

// TestCKPWebSocketRefusesBadTokensWith4002: the transport's own answer to a
// bad credential, including a person's token, which never opens CKP.
func TestCKPWebSocketRefusesBadTokensWith4002(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.agent("a", "helper")
	for name, tok := range map[string]string{"none": "", "garbage": "cka_nope", "person session": f.owner} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		hdr := map[string][]string{}
		if tok != "" {
			hdr["Authorization"] = []string{"Bearer " + tok}
		}
		c, _, err := websocket.Dial(ctx, "ws"+f.url[len("http"):]+"/v1/ckp", &websocket.DialOptions{Subprotocols: []string{"claw"}, HTTPHeader: hdr})
		if err != nil {
			cancel()
			t.Fatalf("%s: dial: %v", name, err)
		}
		_, _, err = c.Read(ctx)
		if got := websocket.CloseStatus(err); got != 4002 {
			t.Errorf("%s: close status %d (%v), want 4002", name, got, err)
		}
		c.CloseNow()
		cancel()
	}
}
