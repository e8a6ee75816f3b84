package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAPI throws arbitrary methods, paths, bodies and credentials at the
// whole API (real workers behind it): nothing may answer 5xx, every error
// is a problem document, and no answer carries a token or the stored
// credential's value.
func FuzzAPI(f *testing.F) {
	fx := newFixture(f, fixtureOpts{})
	fx.org("a")
	agentTok := fx.agent("a", "helper")
	const secret = "sk-fuzz-SECRET-value-000"
	fx.mustDo("PUT", "/v1/orgs/a/credentials/c", fx.owner, map[string]any{"type": "api-key", "value": secret}, 204)
	api := fx.srv.Config.Handler
	tokens := []string{"", fx.owner, agentTok, "cks_" + strings.Repeat("A", 43), "garbage"}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

	f.Add(uint8(0), "/v1/orgs/a/agents/helper", []byte(""), uint8(1))
	f.Add(uint8(2), "/v1/orgs/a/agents/x", []byte("claw: 1"), uint8(1))
	f.Add(uint8(1), "/v1/ckp", []byte(`{"jsonrpc":"2.0","id":1,"method":"claw.tool.call","params":{"name":"echo","arguments":{},"context":{"request_id":"f"}}}`), uint8(2))
	f.Add(uint8(1), "/v1/orgs/a/approvals/x/reject", []byte(`{"reason":"other","details":"\u0000"}`), uint8(1))
	f.Add(uint8(2), "/v1/orgs/a/agents/helper/abilities/gmail", []byte(`{"actions":{"send":"approval"},"credential":{"name":"c","hosts":["x"],"header":"A"}}`), uint8(1))
	f.Add(uint8(0), "/v1/orgs/a/audit?since=x&limit=-1", []byte(nil), uint8(1))
	f.Fuzz(func(t *testing.T, m uint8, path string, body []byte, tok uint8) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") || len(path) > 2048 {
			return
		}
		method := methods[int(m)%len(methods)]
		if method == "DELETE" && strings.Contains(path, "/agents/helper") && !strings.Contains(path, "abilities") {
			return // keep the agent the other inputs need
		}
		req, err := http.NewRequest(method, "http://clawkeep"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "127.0.0.9:1234"
		if t := tokens[int(tok)%len(tokens)]; t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
		if len(body) > 0 {
			if bytes.HasPrefix(body, []byte("claw")) {
				req.Header.Set("Content-Type", "application/yaml")
			} else {
				req.Header.Set("Content-Type", "application/json")
			}
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s (%q): %d %s", method, path, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 && method != "HEAD" && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%s %s: %d without a problem document: %q", method, path, rec.Code, rec.Body.String())
		}
		out := rec.Body.String()
		if strings.Contains(out, secret) || strings.Contains(out, fx.owner) || strings.Contains(out, agentTok) {
			t.Fatalf("%s %s: a secret in the answer: %s", method, path, out)
		}
	})
}
