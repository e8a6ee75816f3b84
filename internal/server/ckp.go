package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/ckp"
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
	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{tenant.Subprotocol}, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer client.CloseNow()
	if client.Subprotocol() != tenant.Subprotocol {
		client.Close(tenant.CloseProtocolError, "subprotocol claw required")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	worker, done, err := s.cfg.Tenants.DialCKP(ctx, c.tenantOrg(), tenant.Caller{Actor: c.actor(), Agent: c.p.Agent})
	if err != nil {
		s.cfg.Logf("ckp: org %s: %v", c.org.Name, err)
		client.Close(websocket.StatusTryAgainLater, "the organisation's worker is unavailable; retry")
		return
	}
	defer done()
	defer worker.CloseNow()
	s.relay(ctx, c, client, worker)
}

// relay carries CKP messages between an agent and its worker. Every
// message the agent sends is charged to its address and organisation like
// a request (a tool call as an expensive one), so a socket is no way
// around the rate limits; one over budget is answered with a JSON-RPC
// error and not passed on. Close codes travel both ways.
func (s *Server) relay(ctx context.Context, c *call, client, worker *websocket.Conn) {
	client.SetReadLimit(maxCKPFrame)
	worker.SetReadLimit(maxCKPFrame + 64<<10)
	type end struct {
		fromWorker bool
		err        error
	}
	ends := make(chan end, 3)
	go func() {
		for {
			typ, msg, err := worker.Read(ctx)
			if err == nil {
				err = client.Write(ctx, typ, msg)
			}
			if err != nil {
				ends <- end{true, err}
				return
			}
		}
	}()
	go func() {
		for {
			typ, msg, err := client.Read(ctx)
			if err != nil {
				ends <- end{false, err}
				return
			}
			if typ != websocket.MessageText {
				ends <- end{false, errBinaryFrame}
				return
			}
			cost := ratelimit.Read
			if bytes.Contains(msg, []byte("claw.tool.call")) {
				cost = ratelimit.Expensive
			}
			if ok, retry := s.cfg.Limiter.Allow(c.ip, c.org.Name, cost); !ok {
				s.metrics.limited.Inc()
				if reply := rateLimitedReply(msg, retry); reply != nil {
					if err := client.Write(ctx, websocket.MessageText, reply); err != nil {
						ends <- end{false, err}
						return
					}
				}
				continue
			}
			if err := worker.Write(ctx, websocket.MessageText, msg); err != nil {
				ends <- end{true, err}
				return
			}
		}
	}()
	go func() {
		// The profile's keep-alive: a peer that stops answering pings is
		// gone, and its worker session ends with it.
		t := time.NewTicker(s.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, s.cfg.PingInterval)
			err := client.Ping(pctx)
			cancel()
			if err != nil {
				ends <- end{false, errNoPong}
				return
			}
		}
	}()
	e := <-ends
	switch {
	case errors.Is(e.err, errNoPong):
		client.Close(websocket.StatusPolicyViolation, "no pong")
		worker.Close(websocket.StatusGoingAway, "")
	case errors.Is(e.err, errBinaryFrame):
		client.Close(tenant.CloseProtocolError, "binary frames are not CKP")
		worker.Close(websocket.StatusNormalClosure, "")
	case e.fromWorker:
		code, reason := websocket.StatusInternalError, ""
		var ce websocket.CloseError
		if errors.As(e.err, &ce) {
			code, reason = ce.Code, ce.Reason
		}
		client.Close(code, reason)
	default:
		code := websocket.CloseStatus(e.err)
		if code == -1 {
			code = websocket.StatusGoingAway
		}
		worker.Close(code, "")
	}
}

// maxCKPFrame bounds one CKP message, as the stdio transport does.
const maxCKPFrame = 1 << 20

var (
	errBinaryFrame = errors.New("binary frame")
	errNoPong      = errors.New("no pong")
)

// rateLimitedReply answers a message refused for its rate: a request
// gets a JSON-RPC error with its id; a notification gets nothing.
func rateLimitedReply(msg []byte, retry time.Duration) []byte {
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	id := json.RawMessage("null")
	if json.Unmarshal(msg, &head) == nil {
		if head.ID == nil {
			return nil
		}
		id = head.ID
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{
		"code": ckp.CodePolicyDenied, "message": "rate limit exceeded; retry later",
		"data": map[string]any{"layer": "rate_limit", "retry_after_ms": retry.Milliseconds()}}})
	return b
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
