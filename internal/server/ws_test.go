package server

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/ratelimit"
)

func dialCKP(t *testing.T, f *fixture, token string) (*websocket.Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws"+f.url[len("http"):]+"/v1/ckp", &websocket.DialOptions{
		Subprotocols: []string{"claw"}, HTTPHeader: map[string][]string{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, ctx
}

func wsCall(t *testing.T, ctx context.Context, c *websocket.Conn, v any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(msg, &m)
		if m["id"] != nil {
			return m
		}
	}
}

func initialize(t *testing.T, ctx context.Context, c *websocket.Conn, agent string) {
	t.Helper()
	r := wsCall(t, ctx, c, map[string]any{"jsonrpc": "2.0", "id": "init", "method": "claw.initialize", "params": map[string]any{
		"protocolVersion": "0.3.0", "clientInfo": map[string]string{"name": "t", "version": "1"},
		"manifest": "claw://local/claw/" + agent, "capabilities": map[string]any{}}})
	if r["error"] != nil {
		t.Fatalf("initialize: %v", r)
	}
}

// TestBinaryFrameClosesWith4001: CKP is one JSON-RPC message per text
// frame; anything else is a protocol error, closed as the profile says.
func TestBinaryFrameClosesWith4001(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	c, ctx := dialCKP(t, f, f.agent("a", "helper"))
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if got := websocket.CloseStatus(err); got != 4001 {
		t.Fatalf("close status %d (%v), want 4001", got, err)
	}
}

// TestToolCallsOverWebSocketAreRateLimited: a socket is no way around the
// per-IP budget; calls over it are answered with an error, not run, and
// the connection stays usable.
func TestToolCallsOverWebSocketAreRateLimited(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 0.01, IPBurst: 1000, PerOrg: 1e6, OrgBurst: 1e6}})
	f.org("a")
	tok := f.agent("a", "helper") // setup spends from the same address's budget
	c, ctx := dialCKP(t, f, tok)
	initialize(t, ctx, c, "helper")
	ran, limited := 0, 0
	for i := 0; i < 80; i++ {
		r := wsCall(t, ctx, c, map[string]any{"jsonrpc": "2.0", "id": i, "method": "claw.tool.call",
			"params": map[string]any{"name": "echo", "arguments": map[string]any{}, "context": map[string]any{"request_id": fmt.Sprint("ws-", i)}}})
		if r["result"] != nil {
			ran++
			continue
		}
		e, _ := r["error"].(map[string]any)
		if d, _ := e["data"].(map[string]any); d["layer"] == "rate_limit" {
			limited++
		}
	}
	if limited == 0 || ran > 50 {
		t.Fatalf("ran %d, rate-limited %d of 80 tool calls over one socket", ran, limited)
	}
	audit := f.mustDo("GET", "/v1/orgs/a/audit?tool=echo&event=outcome&limit=1000", f.owner, nil, 200).json["records"].([]any)
	if len(audit) != ran {
		t.Fatalf("%d calls answered, %d ran according to the audit chain", ran, len(audit))
	}
}

// TestSilentPeerIsClosed: an agent that stops answering pings is closed,
// and its session in the worker with it.
func TestSilentPeerIsClosed(t *testing.T) {
	f := newFixture(t, fixtureOpts{ping: 100 * time.Millisecond})
	f.org("a")
	c, ctx := dialCKP(t, f, f.agent("a", "helper"))
	initialize(t, ctx, c, "helper")
	time.Sleep(1500 * time.Millisecond) // not reading: pings go unanswered
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
				t.Fatalf("close status %d (%v), want 1008", got, err)
			}
			return
		}
	}
}

// TestAnsweringPeerStaysOpen: the control: a reading peer answers the
// pings and keeps its connection.
func TestAnsweringPeerStaysOpen(t *testing.T) {
	f := newFixture(t, fixtureOpts{ping: 100 * time.Millisecond})
	f.org("a")
	c, ctx := dialCKP(t, f, f.agent("a", "helper"))
	initialize(t, ctx, c, "helper")
	rctx, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	for {
		_, _, err := c.Read(rctx) // answers pings while it reads
		if rctx.Err() != nil {
			break
		}
		if err != nil {
			t.Fatalf("connection closed though the peer answered: %v", err)
		}
	}
}
