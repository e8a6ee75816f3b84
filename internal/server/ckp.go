package server

import (
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/identity"
	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/ratelimit"
	"github.com/clawkeep/clawkeep/internal/tenant"
)

// agentCall authenticates an agent token and finds its organisation.
func (s *Server) agentCall(r *http.Request, c *call) bool {
	c.token = bearer(r)
	p, err := s.cfg.Identity.Authenticate(c.token)
	if err != nil || p.Kind != identity.AgentToken {
		return false
	}
	o, err := s.orgByID(p.Org)
	if err != nil {
		return false
	}
	c.p, c.org = p, o
	return true
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// ckpWebSocket opens a CKP session for an agent: authenticated here, then
// relayed to the organisation's worker, where the kernel runs. A bad token
// is told in the transport's own terms: the socket opens and closes with
// 4002.
func (s *Server) ckpWebSocket(w http.ResponseWriter, r *http.Request, c *call) {
	if !isWebSocket(r) {
		problem.Write(w, http.StatusBadRequest, problem.BadRequest, "CKP over GET needs a WebSocket upgrade (Sec-WebSocket-Protocol: claw); or POST JSON-RPC", 0)
		return
	}
	if !s.agentCall(r, c) {
		if !s.allow(w, c, ratelimit.Write) {
			return
		}
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{tenant.Subprotocol}, InsecureSkipVerify: true})
		if err != nil {
			return
		}
		conn.Close(tenant.CloseAuthFailure, "authentication failed")
		return
	}
	if !s.allow(w, c, ratelimit.Write) {
		return
	}
	s.cfg.Tenants.Forward(w, r, c.tenantOrg(), "/ckp", tenant.Caller{Actor: c.actor(), Agent: c.p.Agent})
}

// ckpPost serves one JSON-RPC message or batch for an agent.
func (s *Server) ckpPost(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.agentCall(r, c) {
		if s.allow(w, c, ratelimit.Write) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clawkeep"`)
			problem.Write(w, http.StatusUnauthorized, problem.Unauthenticated, "CKP needs an agent token", 0)
		}
		return
	}
	if !s.allow(w, c, ratelimit.Expensive) {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem.Write(w, http.StatusUnsupportedMediaType, problem.UnsupportedMedia, "send JSON-RPC as application/json", 0)
		return
	}
	s.cfg.Tenants.Forward(w, r, c.tenantOrg(), "/ckp", tenant.Caller{Actor: c.actor(), Agent: c.p.Agent})
}
