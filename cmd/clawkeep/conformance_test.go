package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// minimal is the L1 minimal valid manifest, as a JSON object for claw.initialize.
func minimal() map[string]any {
	return map[string]any{
		"claw": "0.3.0", "kind": "Claw",
		"metadata": map[string]any{"name": "l1-minimal"},
		"spec": map[string]any{
			"identity": map[string]any{"inline": map[string]any{"personality": "A minimal agent.", "autonomy": "observer"}},
			"providers": []any{map[string]any{"inline": map[string]any{
				"protocol": "openai-compatible", "endpoint": "http://localhost:11434/v1", "model": "llama3",
				"auth": map[string]any{"type": "none"},
			}}},
		},
	}
}

// TestL1ManifestVectors: L1-01, 02, 03 and 10 through `clawkeep validate`
// and through claw.initialize with the manifest inline.
func TestL1ManifestVectors(t *testing.T) {
	spec := func(m map[string]any) map[string]any { return m["spec"].(map[string]any) }
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		valid  bool
		want   string // a fragment of the error
	}{
		{"L1-01 valid minimal manifest", func(map[string]any) {}, true, ""},
		{"L1-02 missing identity", func(m map[string]any) { delete(spec(m), "identity") }, false, "identity"},
		{"L1-03 missing providers", func(m map[string]any) { delete(spec(m), "providers") }, false, "providers"},
		{"L1-03b empty providers", func(m map[string]any) { spec(m)["providers"] = []any{} }, false, "providers"},
		{"L1-10 empty personality", func(m map[string]any) {
			spec(m)["identity"].(map[string]any)["inline"].(map[string]any)["personality"] = ""
		}, false, "personality"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := minimal()
			tc.mutate(m)
			body, _ := json.MarshalIndent(m, "", "  ")
			file := filepath.Join(t.TempDir(), "claw.yaml")
			if err := os.WriteFile(file, body, 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := clawkeepCmd(t, "validate", file)
			if tc.valid != (code == 0) {
				t.Fatalf("validate exit %d, want valid=%v:\n%s", code, tc.valid, out)
			}
			if !tc.valid && !strings.Contains(out, tc.want) {
				t.Fatalf("validate output does not name %q:\n%s", tc.want, out)
			}

			p := start(t, t.TempDir())
			f := p.initialize(m)
			if tc.valid {
				wantResult(t, f)
				return
			}
			e := wantError(t, f, -32060)
			if !strings.Contains(e.Message, tc.want) {
				t.Fatalf("initialize error does not name %q: %q", tc.want, e.Message)
			}
		})
	}
}

func TestL1ProtocolVectors(t *testing.T) {
	p := start(t, t.TempDir(), "--manifest", conformanceManifest)

	t.Run("L1-09 initialize with {} params", func(t *testing.T) {
		wantError(t, p.call("claw.initialize", map[string]any{}), -32602)
	})
	t.Run("L1-05 version mismatch", func(t *testing.T) {
		f := p.call("claw.initialize", map[string]any{
			"protocolVersion": "9.0.0", "clientInfo": map[string]any{"name": "t", "version": "1"},
			"manifest": "claw://local/claw/conformance", "capabilities": map[string]any{},
		})
		e := wantError(t, f, -32001)
		supported, _ := e.Data["supported"].([]any)
		if len(supported) == 0 || supported[0] != "0.3.0" {
			t.Fatalf("data.supported = %v", e.Data["supported"])
		}
	})
	t.Run("requests before initialize are refused", func(t *testing.T) {
		wantError(t, p.call("claw.status", map[string]any{}), -32600)
	})
	t.Run("L1-04 initialize happy path", func(t *testing.T) {
		f := p.initialize("claw://local/claw/conformance")
		r := wantResult(t, f)
		if r["protocolVersion"] != "0.3.0" || r["conformanceLevel"] != "level-2" {
			t.Fatalf("initialize result %s", f.Result)
		}
		info, _ := r["agentInfo"].(map[string]any)
		if info["name"] != "conformance" {
			t.Fatalf("agentInfo %v", info)
		}
		caps, _ := r["capabilities"].(map[string]any)
		if _, ok := caps["tools"]; !ok {
			t.Fatalf("capabilities %v lack tools", caps)
		}
	})
	t.Run("second initialize is refused", func(t *testing.T) {
		wantError(t, p.initialize("claw://local/claw/conformance"), -32600)
	})
	t.Run("L1-06 status", func(t *testing.T) {
		r := wantResult(t, p.call("claw.status", map[string]any{}))
		if r["state"] != "READY" {
			t.Fatalf("state %v", r["state"])
		}
		if _, ok := r["uptime_ms"].(float64); !ok {
			t.Fatalf("uptime_ms %v", r["uptime_ms"])
		}
	})
	t.Run("L1-08 unknown method", func(t *testing.T) {
		wantError(t, p.call("claw.nonexistent", map[string]any{}), -32601)
	})
	t.Run("L1-11 missing method", func(t *testing.T) {
		p.send(`{"jsonrpc":"2.0","id":"no-method"}`)
		f := p.nextOther()
		wantError(t, f, -32600)
	})
	t.Run("L1-12 malformed JSON", func(t *testing.T) {
		p.send(`{"jsonrpc":"2.0","id":1,"method":`)
		f := p.nextOther()
		wantError(t, f, -32700)
		if string(f.ID) != "null" {
			t.Fatalf("parse error id = %s, want null", f.ID)
		}
	})
	t.Run("notifications never get error replies", func(t *testing.T) {
		p.send(`{"jsonrpc":"2.0","method":"claw.nonexistent"}`)
		p.send(`{"jsonrpc":"2.0","method":"claw.tool.call","params":[]}`)
		// A request after them is answered; nothing else arrives first.
		r := wantResult(t, p.call("claw.status", map[string]any{}))
		if r["state"] != "READY" {
			t.Fatal(r)
		}
		select {
		case f := <-p.other:
			t.Fatalf("a notification was answered: %s", f.Raw)
		default:
		}
	})
	t.Run("L1-07 shutdown drains", func(t *testing.T) {
		r := wantResult(t, p.call("claw.shutdown", map[string]any{"reason": "test"}))
		if r["drained"] != true {
			t.Fatalf("shutdown result %v", r)
		}
		select {
		case <-p.done:
		case <-time.After(hangGuard):
			t.Fatal("runtime did not exit after shutdown")
		}
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("runtime exit: %v", err)
		}
	})
}

func TestL1HeartbeatShape(t *testing.T) {
	m := minimal()
	m["metadata"].(map[string]any)["annotations"] = map[string]any{"heartbeat_interval_ms": 150}
	p := start(t, t.TempDir())
	p.mustInitialize(m)
	select {
	case f := <-p.notes:
		if f.Method != "claw.heartbeat" {
			t.Fatalf("notification %s", f.Raw)
		}
		var hb struct {
			State     string  `json:"state"`
			UptimeMS  float64 `json:"uptime_ms"`
			Timestamp string  `json:"timestamp"`
		}
		if err := json.Unmarshal(f.Params, &hb); err != nil {
			t.Fatal(err)
		}
		if hb.State != "READY" {
			t.Fatalf("heartbeat state %q", hb.State)
		}
		ts, err := time.Parse(time.RFC3339Nano, hb.Timestamp)
		if err != nil || ts.Location() != time.UTC {
			t.Fatalf("heartbeat timestamp %q is not ISO 8601 UTC: %v", hb.Timestamp, err)
		}
		if len(f.ID) != 0 {
			t.Fatalf("heartbeat carries an id: %s", f.Raw)
		}
	case <-time.After(hangGuard):
		t.Fatal("no heartbeat")
	}
}

func TestL2Vectors(t *testing.T) {
	t.Run("L2-01 valid L2 manifest", func(t *testing.T) {
		out, code := clawkeepCmd(t, "validate", conformanceManifest)
		if code != 0 {
			t.Fatalf("validate: exit %d\n%s", code, out)
		}
	})
	dataDir := t.TempDir()
	p := start(t, dataDir, "--manifest", conformanceManifest)
	p.mustInitialize("claw://local/claw/conformance")

	t.Run("L2-02 echo", func(t *testing.T) {
		if got := resultText(t, p.call("claw.tool.call", toolParams("echo", uuid(1), map[string]any{"text": "hello"}))); got != "hello" {
			t.Fatalf("echo returned %q", got)
		}
	})
	t.Run("L2-03 web-fetch invalid args", func(t *testing.T) {
		wantError(t, p.call("claw.tool.call", toolParams("web-fetch", uuid(2), map[string]any{})), -32602)
		wantError(t, p.call("claw.tool.call", toolParams("web-fetch", uuid(3), map[string]any{"url": 42})), -32602)
	})
	t.Run("L2-04 destructive tool denied by policy", func(t *testing.T) {
		e := wantError(t, p.call("claw.tool.call", toolParams("destructive-tool", uuid(4), map[string]any{"path": "x"})), -32011)
		if e.Data["rule_id"] != "deny-destructive" || e.Data["tool"] != "destructive-tool" || e.Data["layer"] != "policy" {
			t.Fatalf("error data %v", e.Data)
		}
	})
	t.Run("L2-05 slow tool times out", func(t *testing.T) {
		wantError(t, p.call("claw.tool.call", toolParams("slow-tool", uuid(5), map[string]any{})), -32014)
	})
	t.Run("L2-06 approve then success", func(t *testing.T) {
		call := p.async("claw.tool.call", toolParams("approval-tool", uuid(6), map[string]any{"text": "ok"}))
		ack := wantResult(t, p.call("claw.tool.approve", map[string]any{"request_id": uuid(6), "reason": "looks fine"}))
		if ack["acknowledged"] != true {
			t.Fatalf("approve reply %v", ack)
		}
		if got := resultText(t, p.wait(call)); got != "ok" {
			t.Fatalf("approved call returned %q", got)
		}
	})
	t.Run("L2-07 approval timeout", func(t *testing.T) {
		wantError(t, p.call("claw.tool.call", toolParams("approval-tool", uuid(7), map[string]any{})), -32012)
	})
	t.Run("L2-08 deny", func(t *testing.T) {
		call := p.async("claw.tool.call", toolParams("approval-tool", uuid(8), map[string]any{}))
		wantResult(t, p.call("claw.tool.deny", map[string]any{"request_id": uuid(8), "reason": "not today"}))
		wantError(t, p.wait(call), -32013)
	})
	t.Run("L2-09 network tool to metadata address", func(t *testing.T) {
		e := wantError(t, p.call("claw.tool.call", toolParams("network-tool", uuid(9), map[string]any{"url": "http://169.254.169.254/metadata"})), -32010)
		if e.Data["layer"] != "sandbox" {
			t.Fatalf("error data %v", e.Data)
		}
	})
	t.Run("L2-10 expensive tool over budget", func(t *testing.T) {
		wantError(t, p.call("claw.tool.call", toolParams("expensive-tool", uuid(10), map[string]any{})), -32021)
	})
	t.Run("unknown tool", func(t *testing.T) {
		wantError(t, p.call("claw.tool.call", toolParams("no-such-tool", uuid(11), map[string]any{})), -32602)
	})

	wantResult(t, p.call("claw.shutdown", map[string]any{}))
	<-p.done
	p.cmd.Wait()
	out, code := clawkeepCmd(t, "audit", "verify", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("audit verify after the L2 vectors: exit %d\n%s", code, out)
	}
	tail, code := clawkeepCmd(t, "audit", "tail", "--data-dir", dataDir, "-n", "200")
	if code != 0 {
		t.Fatalf("audit tail: exit %d\n%s", code, tail)
	}
	for _, want := range []string{
		"tool=destructive-tool request_id=" + uuid(4) + " decision=deny rule=deny-destructive",
		"event=approval tool=approval-tool request_id=" + uuid(6) + " decision=allow",
		"event=approval tool=approval-tool request_id=" + uuid(8) + " decision=deny",
		"tool=slow-tool request_id=" + uuid(5),
		"outcome=timeout",
	} {
		if !strings.Contains(tail, want) {
			t.Errorf("audit tail lacks %q:\n%s", want, tail)
		}
	}
}

// TestManifestWithRefCycleIsRefusedCleanly: a tool file whose policy_ref
// points back at itself. validate reports the cycle; run refuses to start
// with the same message instead of looping or crashing.
func TestManifestWithRefCycleIsRefusedCleanly(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tools"), 0o700)
	os.WriteFile(filepath.Join(dir, "tools", "loop.yaml"), []byte(`claw: "0.3.0"
kind: Tool
metadata: {name: loop}
spec:
  description: d
  input_schema: {type: object}
  policy_ref: ./loop.yaml
`), 0o600)
	m := minimal()
	m["spec"].(map[string]any)["tools"] = []any{"./tools/loop.yaml"}
	body, _ := json.Marshal(m)
	file := filepath.Join(dir, "claw.yaml")
	os.WriteFile(file, body, 0o600)
	for _, args := range [][]string{{"validate", file}, {"run", "--manifest", file, "--data-dir", t.TempDir()}} {
		out, code := clawkeepCmd(t, args...)
		if code != 1 || !strings.Contains(out, "ref cycle") {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
}
