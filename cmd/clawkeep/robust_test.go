package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHostileFramesDoNotKillTheRuntime sends frames an attacker controls and
// checks each gets a clean error while the process keeps serving.
func TestHostileFramesDoNotKillTheRuntime(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")
	cases := []struct {
		name  string
		frame string
		code  int
	}{
		{"huge frame over the line limit", `{"jsonrpc":"2.0","id":"big","method":"claw.tool.call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("A", 2<<20) + `"}}}`, -32600},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":\"u\",\"method\":\"claw.status\",\"params\":{\"x\":\"\xff\xfe\"}}", -32700},
		{"deep nesting", `{"jsonrpc":"2.0","id":"deep","method":"claw.status","params":{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}}`, -32600},
		{"unknown top-level member", `{"jsonrpc":"2.0","id":"m","method":"claw.status","params":{},"extra":1}`, -32600},
		{"wrong jsonrpc version", `{"jsonrpc":"1.0","id":"v","method":"claw.status","params":{}}`, -32600},
		{"params not an object", `{"jsonrpc":"2.0","id":"arr","method":"claw.status","params":[1,2]}`, -32602},
		{"unknown params field", `{"jsonrpc":"2.0","id":"f","method":"claw.tool.call","params":{"name":"echo","arguments":{},"context":{"request_id":"r-unknown"},"sudo":true}}`, -32602},
		{"not JSON at all", "\x00\x01binary garbage", -32700},
		{"a bare number", `42`, -32600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.send(tc.frame)
			f := p.nextOther()
			if f.Error == nil || f.Error.Code != tc.code {
				t.Fatalf("want error %d, got %s", tc.code, truncate(string(f.Raw)))
			}
			// Still serving.
			if r := wantResult(t, p.call("claw.status", map[string]any{})); r["state"] != "READY" {
				t.Fatalf("state after hostile frame: %v", r)
			}
		})
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

func TestBatches(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")

	t.Run("mixed batch", func(t *testing.T) {
		p.send(`[` +
			`{"jsonrpc":"2.0","id":"b1","method":"claw.tool.call","params":{"name":"echo","arguments":{"text":"one"},"context":{"request_id":"batch-1"}}},` +
			`{"jsonrpc":"2.0","method":"claw.initialized"},` +
			`{"jsonrpc":"2.0","id":"b2","method":"claw.nonexistent"},` +
			`{"jsonrpc":"2.0","id":"b3","method":"claw.status","params":{}}` +
			`]`)
		f := p.nextOther()
		var replies []frame
		if err := json.Unmarshal(f.Raw, &replies); err != nil {
			t.Fatalf("batch reply is not an array: %s", f.Raw)
		}
		if len(replies) != 3 {
			t.Fatalf("want 3 replies (the notification gets none), got %s", f.Raw)
		}
		byID := map[string]frame{}
		for _, r := range replies {
			byID[string(r.ID)] = r
		}
		if byID[`"b1"`].Error != nil || byID[`"b3"`].Error != nil {
			t.Fatalf("batch replies %s", f.Raw)
		}
		if e := byID[`"b2"`].Error; e == nil || e.Code != -32601 {
			t.Fatalf("unknown method in batch: %s", f.Raw)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		p.send(`[]`)
		wantError(t, p.nextOther(), -32600)
	})
	t.Run("batch of notifications gets no reply", func(t *testing.T) {
		p.send(`[{"jsonrpc":"2.0","method":"claw.initialized"},{"jsonrpc":"2.0","method":"claw.nonexistent"}]`)
		wantResult(t, p.call("claw.status", map[string]any{}))
		select {
		case f := <-p.other:
			t.Fatalf("notification batch was answered: %s", f.Raw)
		default:
		}
	})
}

func TestConcurrentCallsOnOneConnection(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")
	// A call waiting for approval must not hold up the others.
	gated := p.async("claw.tool.call", toolParams("approval-tool", "gated-1", map[string]any{"text": "late"}))
	var chans []<-chan frame
	for i := range 64 {
		chans = append(chans, p.async("claw.tool.call", toolParams("echo", fmt.Sprintf("conc-%d", i), map[string]any{"text": fmt.Sprint(i)})))
	}
	for i, ch := range chans {
		if got := resultText(t, p.wait(ch)); got != fmt.Sprint(i) {
			t.Fatalf("call %d returned %q", i, got)
		}
	}
	wantResult(t, p.call("claw.tool.approve", map[string]any{"request_id": "gated-1"}))
	if got := resultText(t, p.wait(gated)); got != "late" {
		t.Fatalf("gated call returned %q", got)
	}
}

func TestIdempotentRetries(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")

	call := p.async("claw.tool.call", toolParams("approval-tool", "idem-1", map[string]any{"text": "once"}))
	wantResult(t, p.call("claw.tool.approve", map[string]any{"request_id": "idem-1"}))
	first := resultText(t, p.wait(call))

	// The retry returns the first outcome at once: no second approval.
	if again := resultText(t, p.call("claw.tool.call", toolParams("approval-tool", "idem-1", map[string]any{"text": "once"}))); again != first {
		t.Fatalf("retry returned %q, first %q", again, first)
	}
	// A refusal replays too.
	wantError(t, p.call("claw.tool.call", toolParams("destructive-tool", "idem-2", map[string]any{"path": "a"})), -32011)
	wantError(t, p.call("claw.tool.call", toolParams("destructive-tool", "idem-2", map[string]any{"path": "a"})), -32011)

	t.Run("request_id reused for another call is refused", func(t *testing.T) {
		e := wantError(t, p.call("claw.tool.call", toolParams("approval-tool", "idem-1", map[string]any{"text": "changed"})), -32602)
		if !strings.Contains(e.Message, "different call") {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("concurrent duplicates run once", func(t *testing.T) {
		a := p.async("claw.tool.call", toolParams("approval-tool", "idem-3", map[string]any{"text": "dup"}))
		b := p.async("claw.tool.call", toolParams("approval-tool", "idem-3", map[string]any{"text": "dup"}))
		wantResult(t, p.call("claw.tool.approve", map[string]any{"request_id": "idem-3"}))
		if x, y := resultText(t, p.wait(a)), resultText(t, p.wait(b)); x != "dup" || y != "dup" {
			t.Fatalf("duplicates returned %q and %q", x, y)
		}
		// Only one approval was ever pending: a second approve finds it decided.
		wantError(t, p.call("claw.tool.approve", map[string]any{"request_id": "idem-3"}), -32602)
	})
}

// TestApprovalRacingTimeout approves calls right at their deadline: each
// ends exactly one way, and the approve reply agrees with the call's outcome.
func TestApprovalRacingTimeout(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("race-%d", i)
			call := p.async("claw.tool.call", toolParams("approval-tool", id, map[string]any{"text": id}))
			// The rule's timeout is 2 s; approve from 1.9 s to 2.1 s.
			time.Sleep(1900*time.Millisecond + time.Duration(i)*200*time.Millisecond/n)
			ack := p.call("claw.tool.approve", map[string]any{"request_id": id})
			res := p.wait(call)
			switch {
			case ack.Error == nil && res.Error == nil:
				if got := resultText(t, res); got != id {
					t.Errorf("%s: approved call returned %q", id, got)
				}
			case ack.Error != nil && res.Error != nil && res.Error.Code == -32012:
			default:
				t.Errorf("%s: approve and outcome disagree: approve %s, call %s", id, ack.Raw, res.Raw)
			}
		}()
	}
	wg.Wait()
}

// TestShutdownWhileWaitingForApproval: the waiting call is answered, the
// drain reports it could not finish, and after a restart the pending request
// is expired and audited rather than dropped.
func TestShutdownWhileWaitingForApproval(t *testing.T) {
	dataDir := t.TempDir()
	p := start(t, dataDir, "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")
	call := p.async("claw.tool.call", toolParams("approval-tool", "shut-1", map[string]any{}))
	// Give the call time to reach the approval gate, so that a request is
	// pending in the store when the process stops. (If it had not, the
	// shutdown assertions still hold; only the restart check needs it.)
	time.Sleep(300 * time.Millisecond)
	r := wantResult(t, p.call("claw.shutdown", map[string]any{"timeout_ms": 100}))
	if r["drained"] != false {
		t.Fatalf("shutdown with a call waiting for approval reported %v", r)
	}
	if f := p.wait(call); f.Error == nil {
		t.Fatalf("waiting call got a result after shutdown: %s", f.Raw)
	}
	<-p.done
	p.cmd.Wait()

	// The approval had a 2 s deadline; restart after it passed.
	time.Sleep(2100 * time.Millisecond)
	q := start(t, dataDir, "--manifest", conformanceManifest)
	q.mustInitialize("claw://local/claw/conformance")
	wantResult(t, q.call("claw.shutdown", map[string]any{}))
	<-q.done
	q.cmd.Wait()
	tail, _ := clawkeepCmd(t, "audit", "tail", "--data-dir", dataDir, "-n", "50")
	if !strings.Contains(tail, "event=approval tool=approval-tool request_id=shut-1 decision=expired") {
		t.Fatalf("restart did not expire the pending approval:\n%s", tail)
	}
	if out, code := clawkeepCmd(t, "audit", "verify", "--data-dir", dataDir); code != 0 {
		t.Fatalf("audit verify: %s", out)
	}
}
