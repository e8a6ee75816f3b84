package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clawkeep/clawkeep/internal/audit"
)

// TestCredentialValueNeverComesBack: a credential is write-only. Its value
// appears in no API response, in neither audit chain, and in no file of
// the data directory in clear.
func TestCredentialValueNeverComesBack(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.agent("a", "helper")
	const secret = "sk-live-THIS-IS-THE-SECRET-4242"
	f.mustDo("PUT", "/v1/orgs/a/credentials/stripe", f.owner, map[string]any{"type": "api-key", "value": secret}, 204)
	var seen []byte
	for _, p := range []string{"/v1/orgs/a/credentials", "/v1/orgs/a/audit", "/v1/orgs/a/audit/export", "/v1/orgs/a/agents", "/metrics"} {
		seen = append(seen, f.mustDo("GET", p, f.owner, nil, 200).raw...)
	}
	if !bytes.Contains(seen, []byte(`"stripe"`)) {
		t.Fatal("the credential is not listed at all")
	}
	filepath.WalkDir(f.root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".test") {
			if b, err := os.ReadFile(path); err == nil {
				seen = append(seen, b...)
			}
		}
		return nil
	})
	if bytes.Contains(seen, []byte(secret)) {
		t.Fatal("the credential value came back in a response or sits in clear in the data directory")
	}
}

// TestDeletedAgentsTokensStopWorking: deleting an agent revokes its
// tokens, and a token cannot be minted for an agent that does not exist.
func TestDeletedAgentsTokensStopWorking(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	tok := f.agent("a", "helper")
	if r := f.toolCall(tok, "echo", "d-1"); r.status != 200 {
		t.Fatalf("call before delete: %d %s", r.status, r.raw)
	}
	f.mustDo("DELETE", "/v1/orgs/a/agents/helper", f.owner, nil, 204)
	if r := f.toolCall(tok, "echo", "d-2"); r.status != 401 {
		t.Fatalf("call with a deleted agent's token: %d %s", r.status, r.raw)
	}
	if r := f.do("POST", "/v1/orgs/a/agents/ghost/tokens", f.owner, nil); r.status != 404 {
		t.Fatalf("token for a missing agent: %d %s", r.status, r.raw)
	}
}

// TestAPITokenCannotMintAHigherRole: an admin's token cannot create an
// owner token (only owners manage tokens at all), and a revoked token is
// refused at once.
func TestRevokedTokenIsRefusedAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	r := f.mustDo("POST", "/v1/orgs/a/tokens", f.owner, map[string]any{"name": "ci", "role": "viewer"}, 201)
	tok, id := r.json["token"].(string), r.json["id"].(string)
	f.mustDo("GET", "/v1/orgs/a", tok, nil, 200)
	list := f.mustDo("GET", "/v1/orgs/a/tokens", f.owner, nil, 200)
	if bytes.Contains(list.raw, []byte(tok)) {
		t.Fatal("the token list shows a token's value")
	}
	f.mustDo("DELETE", "/v1/orgs/a/tokens/"+id, f.owner, nil, 204)
	if r := f.do("GET", "/v1/orgs/a", tok, nil); r.status != 401 {
		t.Fatalf("revoked token: %d %s", r.status, r.raw)
	}
}

// TestCriticalApprovalNeedsAnAdmin: a member decides ordinary requests but
// not critical ones (financial transactions, account changes).
func TestCriticalApprovalNeedsAnAdmin(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	member := f.member("a", "m@example.com", "member")
	admin := f.member("a", "ad@example.com", "admin")
	yaml := strings.Replace(string(agentYAML("payer")), "{name: send-mail, labels: {", "{name: send-mail, labels: {clawkeep.dev/risk: critical, ", 1)
	f.mustDo("PUT", "/v1/orgs/a/agents/payer", f.owner, []byte(yaml), 201)
	f.mustDo("PUT", "/v1/orgs/a/agents/payer/abilities/gmail", f.owner, map[string]any{"actions": map[string]string{"send": "approval"}}, 200)
	tok := f.mustDo("POST", "/v1/orgs/a/agents/payer/tokens", f.owner, nil, 201).json["token"].(string)
	done := make(chan response, 1)
	go func() { done <- f.toolCall(tok, "send-mail", "pay-1") }()
	waitPending(t, f, "a", "pay-1")
	if r := f.do("POST", "/v1/orgs/a/approvals/pay-1/approve", member, nil); r.status != 403 {
		t.Fatalf("member approved a critical request: %d %s", r.status, r.raw)
	}
	f.mustDo("POST", "/v1/orgs/a/approvals/pay-1/reject", admin, map[string]any{"reason": "too_risky", "details": "amount too high"}, 200)
	r := <-done
	if r.json["error"] == nil {
		t.Fatalf("rejected call ran: %s", r.raw)
	}
}

func waitPending(t *testing.T, f *fixture, org, id string) {
	t.Helper()
	for i := 0; i < 600; i++ {
		r := f.mustDo("GET", "/v1/orgs/"+org+"/approvals", f.owner, nil, 200)
		if bytes.Contains(r.raw, []byte(`"id":"`+id+`"`)) {
			return
		}
		sleepBrief()
	}
	t.Fatalf("approval %s never became pending", id)
}

// TestEscapedSlashCannotReachAnotherWorkerRoute: a path value holding
// "%2F.." stays one value on its way to the worker; it is not cleaned into
// a different route there.
func TestEscapedSlashCannotReachAnotherWorkerRoute(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.agent("a", "helper")
	viewer := f.member("a", "v@example.com", "viewer")
	f.mustDo("PUT", "/v1/orgs/a/credentials/cred1", f.owner, map[string]any{"type": "api-key", "value": "sk-secret-value-1"}, 204)
	for _, p := range []string{
		"/v1/orgs/a/agents/x%2F..%2F..%2Fcredentials",
		"/v1/orgs/a/agents/helper%2F..%2F..%2Fcredentials",
		"/v1/orgs/a/agents/helper%2Fabilities",
	} {
		r := f.do("GET", p, viewer, nil)
		if r.status == 200 {
			t.Errorf("GET %s: 200 %s", p, r.raw)
		}
	}
	// An admin-only worker route is not reachable from a member route.
	member := f.member("a", "m@example.com", "member")
	r := f.do("POST", "/v1/orgs/a/approvals/x%2F..%2F..%2Fagents%2Fhelper%2Ftokens/approve", member, nil)
	if r.status != 404 {
		t.Errorf("member's crafted approve: %d %s", r.status, r.raw)
	}
}

// TestHostilePathValuesGetClearErrors: odd names in every path slot are a
// 4xx naming the problem, never a 500, and the server keeps serving.
func TestHostilePathValuesGetClearErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.agent("a", "helper")
	for _, v := range []string{"%00", "..", "%2E%2E", "a%20b", strings.Repeat("x", 300), "%E2%80%AE", "UPPER", "-x"} {
		for _, p := range []string{
			"/v1/orgs/a/agents/" + v, "/v1/orgs/a/credentials/" + v, "/v1/orgs/a/agents/helper/abilities/" + v,
			"/v1/orgs/a/tokens/" + v, "/v1/orgs/a/members/" + v, "/v1/orgs/" + v,
		} {
			for _, m := range []string{"GET", "DELETE"} {
				r := f.do(m, p, f.owner, nil)
				if r.status >= 500 {
					t.Errorf("%s %s: %d %s", m, p, r.status, r.raw)
				}
			}
		}
	}
	f.mustDo("GET", "/v1/orgs/a/agents", f.owner, nil, 200)
}

// TestCKPOverPOSTAnswersBatchesAndNotifications: a batch gets one array
// reply, a notification alone gets 204, garbage gets a parse error, and a
// retried request_id is answered from the same kernel without running
// again.
func TestCKPOverPOSTAnswersBatchesAndNotifications(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	tok := f.agent("a", "helper")
	call := func(id any, rid string) map[string]any {
		return map[string]any{"jsonrpc": "2.0", "id": id, "method": "claw.tool.call",
			"params": map[string]any{"name": "echo", "arguments": map[string]any{"k": rid}, "context": map[string]any{"request_id": rid}}}
	}
	r := f.mustDo("POST", "/v1/ckp", tok, []any{call(1, "b-1"), call(2, "b-2"), map[string]any{"jsonrpc": "2.0", "method": "claw.initialized"}}, 200)
	var batch []map[string]any
	if err := json.Unmarshal(r.raw, &batch); err != nil || len(batch) != 2 {
		t.Fatalf("batch reply: %s", r.raw)
	}
	f.mustDo("POST", "/v1/ckp", tok, map[string]any{"jsonrpc": "2.0", "method": "claw.initialized"}, 204)
	req, _ := http.NewRequest("POST", f.url+"/v1/ckp", strings.NewReader("{not json\n]]"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "-32700") {
		t.Fatalf("garbage: %d %s", resp.StatusCode, body)
	}
	for i := 0; i < 2; i++ {
		if r := f.mustDo("POST", "/v1/ckp", tok, call(9, "retry-1"), 200); r.json["result"] == nil {
			t.Fatalf("retry %d: %s", i, r.raw)
		}
	}
	recs := f.mustDo("GET", "/v1/orgs/a/audit?event=outcome&limit=1000", f.owner, nil, 200).json["records"].([]any)
	ran := 0
	for _, rec := range recs {
		if rec.(map[string]any)["request_id"] == "retry-1" {
			ran++
		}
	}
	if ran != 1 {
		t.Fatalf("a retried request_id ran %d times", ran)
	}
}

// TestMembershipAndTokenChangesReachTheOrgsOwnAuditChain: who may act in
// an organisation is part of its own record, visible in its export, and
// its chain still verifies.
func TestMembershipAndTokenChangesReachTheOrgsOwnAuditChain(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.member("a", "new@example.com", "viewer")
	id := f.mustDo("POST", "/v1/orgs/a/tokens", f.owner, map[string]any{"name": "ci", "role": "viewer"}, 201).json["id"].(string)
	f.mustDo("DELETE", "/v1/orgs/a/tokens/"+id, f.owner, nil, 204)
	export := string(f.mustDo("GET", "/v1/orgs/a/audit/export", f.owner, nil, 200).raw)
	for _, want := range []string{`"event":"member","tool":"","request_id":"","decision":"added"`, `"decision":"created"`, `"decision":"revoked"`, `"by":"user:root@example.com"`, `"user":"new@example.com"`} {
		if !strings.Contains(export, want) {
			t.Errorf("org a's chain lacks %s:\n%s", want, export)
		}
	}
	if strings.Contains(export, "password of new@example.com") {
		t.Fatal("a password reached the audit chain")
	}
	if v := f.mustDo("GET", "/v1/orgs/a/audit/verify", f.owner, nil, 200); v.json["ok"] != true {
		t.Fatalf("chain: %s", v.raw)
	}
}

// TestPasswordTypedAsEmailIsNotAudited: people type their password into
// the email field; a failed login records the account, never what was
// typed when it names no account.
func TestPasswordTypedAsEmailIsNotAudited(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	const typed = "Tr0ub4dor&3-typed-in-the-wrong-box"
	f.do("POST", "/v1/login", "", map[string]any{"email": typed, "password": "x"})
	f.do("POST", "/v1/login", "", map[string]any{"email": "root@example.com", "password": "wrong password!!"})
	if err := f.log.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := audit.Export(filepath.Join(f.root, "supervisor"), &buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), typed) {
		t.Fatal("what was typed as an email reached the audit chain")
	}
	if !strings.Contains(buf.String(), `"email":"root@example.com"`) || !strings.Contains(buf.String(), `"email":"(no such account)"`) {
		t.Fatalf("failed logins not audited as expected:\n%s", buf.String())
	}
}
