// Package server is clawkeep's HTTP API: it authenticates callers,
// decides in one table what each role may do, limits request rates, and
// forwards organisation work to that organisation's worker process.
//
// # Threat model
//
// Callers are hostile until proven otherwise: anonymous clients flooding
// or probing, members of one organisation reaching for another's data,
// low roles reaching for high ones, agents reaching for people's powers
// (approving their own calls), and stolen or revoked tokens. So:
//
//   - Every route is declared once in routes(), with who may call it and
//     what it costs; nothing is served that is not in the table, and the
//     authorization check reads only the table.
//   - An organisation the caller does not belong to answers 404, exactly
//     like one that does not exist, so names cannot be probed; a role too
//     low answers 403.
//   - Agent tokens open CKP and nothing else; person tokens never open CKP.
//   - Request bodies and headers are bounded, every error is a problem
//     document with a stable code, and panics in a handler answer 500
//     without taking the process down.
//   - Rates are limited per client IP before work is done, and per
//     organisation after authentication (so nobody can spend a tenant's
//     quota by naming it). Failed logins cost more and lock out.
//   - Secrets (passwords, tokens, credential values) are never logged or
//     audited; tokens appear in a response body only when created.
package server

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/identity"
	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/ratelimit"
	"github.com/clawkeep/clawkeep/internal/tenant"
)

//go:embed openapi.yaml
var openAPI []byte

// Config is what a Server serves with; it owns none of it.
type Config struct {
	Identity *identity.Store
	Tenants  *tenant.Supervisor
	Limiter  *ratelimit.Limiter
	Proxy    *ratelimit.Proxy // trusted reverse proxies, or nil: the peer address is the client
	Audit    *audit.Log       // the supervisor's own chain: logins, organisations, members, tokens
	Version  string
	Logf     func(format string, args ...any)
	// PingInterval is how often an agent's WebSocket is pinged; a peer
	// that does not answer within the same time is closed. 0 = 30 s.
	PingInterval time.Duration
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *metrics
	orgs    orgCache
}

// orgCache remembers organisations once read. Organisations are never
// renamed or deleted, so an entry never goes stale; only names that exist
// are kept, so probing names cannot grow it.
type orgCache struct {
	byName sync.Map // string -> identity.Org
	byID   sync.Map // int64 -> identity.Org
}

func (s *Server) orgByName(name string) (identity.Org, error) {
	if o, ok := s.orgs.byName.Load(name); ok {
		return o.(identity.Org), nil
	}
	o, err := s.cfg.Identity.Org(name)
	if err != nil {
		return identity.Org{}, err
	}
	s.orgs.byName.Store(o.Name, o)
	s.orgs.byID.Store(o.ID, o)
	return o, nil
}

func (s *Server) orgByID(id int64) (identity.Org, error) {
	if o, ok := s.orgs.byID.Load(id); ok {
		return o.(identity.Org), nil
	}
	orgs, err := s.cfg.Identity.Orgs()
	if err != nil {
		return identity.Org{}, err
	}
	for _, o := range orgs {
		if o.ID == id {
			s.orgs.byName.Store(o.Name, o)
			s.orgs.byID.Store(o.ID, o)
			return o, nil
		}
	}
	return identity.Org{}, identity.ErrNotFound
}

// MaxBodyBytes bounds every request body; routes bound theirs further.
const MaxBodyBytes = 1 << 20

// MaxHeaderBytes bounds a request's headers; cmd/clawkeep sets it on the
// http.Server.
const MaxHeaderBytes = 32 << 10

// access is who may call a route.
type access uint8

const (
	anyone        access = iota + 1
	sessionOnly          // a person's login session
	person               // a session or an API token
	instanceOwner        // the bootstrapped user's session
	agentToken           // an agent's token (CKP)
	orgViewer            // at least this role in the route's {org}
	orgMember
	orgAdmin
	orgOwner
)

func (a access) String() string {
	return [...]string{anyone: "anyone", sessionOnly: "session", person: "person", instanceOwner: "instance-owner",
		agentToken: "agent", orgViewer: "viewer", orgMember: "member", orgAdmin: "admin", orgOwner: "owner"}[a]
}

// minRole is the organisation role an org-scoped access needs.
func (a access) minRole() identity.Role {
	switch a {
	case orgViewer:
		return identity.Viewer
	case orgMember:
		return identity.Member
	case orgAdmin:
		return identity.Admin
	case orgOwner:
		return identity.Owner
	}
	return 0
}

// route is one API operation.
type route struct {
	method, pattern string
	who             access
	cost            ratelimit.Cost
	handle          func(s *Server, w http.ResponseWriter, r *http.Request, c *call)
}

// call is what the checks established about a request.
type call struct {
	ip    netip.Addr
	p     identity.Principal // zero for anyone routes
	org   identity.Org       // set for org-scoped routes
	role  identity.Role      // the caller's role in org
	token string             // the presented bearer token; never logged
}

// actor names the caller in audit records: never a token.
func (c *call) actor() string {
	switch c.p.Kind {
	case identity.Session:
		return "user:" + c.p.User.Email
	case identity.APIToken:
		return "token:" + c.p.TokenID
	case identity.AgentToken:
		return "agent:" + c.p.Agent
	}
	return "anonymous"
}

// routes is the whole API and who may call each operation: the one place
// authorization is decided (the worker adds only the rule that depends on
// an approval's own risk).
func routes() []route {
	fwd := (*Server).forward
	return []route{
		{"GET", "/v1/health", anyone, ratelimit.Read, (*Server).health},
		{"GET", "/metrics", anyone, ratelimit.Read, (*Server).serveMetrics},
		{"GET", "/v1/openapi.yaml", anyone, ratelimit.Read, (*Server).openapi},
		{"POST", "/v1/bootstrap", anyone, ratelimit.Expensive, (*Server).bootstrap},
		{"POST", "/v1/login", anyone, ratelimit.Write, (*Server).login},
		{"POST", "/v1/logout", sessionOnly, ratelimit.Read, (*Server).logout},
		{"GET", "/v1/me", person, ratelimit.Read, (*Server).me},
		{"POST", "/v1/orgs", instanceOwner, ratelimit.Expensive, (*Server).createOrg},
		{"GET", "/v1/orgs", person, ratelimit.Read, (*Server).listOrgs},
		{"GET", "/v1/orgs/{org}", orgViewer, ratelimit.Read, (*Server).getOrg},
		{"GET", "/v1/orgs/{org}/members", orgViewer, ratelimit.Read, (*Server).listMembers},
		{"POST", "/v1/orgs/{org}/members", orgOwner, ratelimit.Expensive, (*Server).addMember},
		{"PATCH", "/v1/orgs/{org}/members/{user_id}", orgOwner, ratelimit.Write, (*Server).setMember},
		{"DELETE", "/v1/orgs/{org}/members/{user_id}", orgOwner, ratelimit.Write, (*Server).removeMember},
		{"GET", "/v1/orgs/{org}/tokens", orgOwner, ratelimit.Read, (*Server).listTokens},
		{"POST", "/v1/orgs/{org}/tokens", orgOwner, ratelimit.Write, (*Server).createToken},
		{"DELETE", "/v1/orgs/{org}/tokens/{id}", orgOwner, ratelimit.Write, (*Server).revokeToken},
		{"GET", "/v1/orgs/{org}/agents", orgViewer, ratelimit.Read, fwd},
		{"PUT", "/v1/orgs/{org}/agents/{agent}", orgAdmin, ratelimit.Expensive, fwd},
		{"GET", "/v1/orgs/{org}/agents/{agent}", orgViewer, ratelimit.Read, fwd},
		{"DELETE", "/v1/orgs/{org}/agents/{agent}", orgAdmin, ratelimit.Write, (*Server).deleteAgent},
		{"POST", "/v1/orgs/{org}/agents/{agent}/tokens", orgAdmin, ratelimit.Write, (*Server).createAgentToken},
		{"GET", "/v1/orgs/{org}/agents/{agent}/abilities", orgViewer, ratelimit.Read, fwd},
		{"PUT", "/v1/orgs/{org}/agents/{agent}/abilities/{service}", orgAdmin, ratelimit.Write, fwd},
		{"DELETE", "/v1/orgs/{org}/agents/{agent}/abilities/{service}", orgAdmin, ratelimit.Write, fwd},
		{"GET", "/v1/orgs/{org}/credentials", orgViewer, ratelimit.Read, fwd},
		{"PUT", "/v1/orgs/{org}/credentials/{name}", orgAdmin, ratelimit.Write, fwd},
		{"DELETE", "/v1/orgs/{org}/credentials/{name}", orgAdmin, ratelimit.Write, fwd},
		{"GET", "/v1/orgs/{org}/approvals", orgViewer, ratelimit.Read, fwd},
		{"POST", "/v1/orgs/{org}/approvals/{id}/approve", orgMember, ratelimit.Write, fwd},
		{"POST", "/v1/orgs/{org}/approvals/{id}/reject", orgMember, ratelimit.Write, fwd},
		{"GET", "/v1/orgs/{org}/audit", orgViewer, ratelimit.Write, fwd},
		{"GET", "/v1/orgs/{org}/audit/verify", orgViewer, ratelimit.Expensive, fwd},
		{"GET", "/v1/orgs/{org}/audit/export", orgViewer, ratelimit.Expensive, fwd},
		{"GET", "/v1/ckp", agentToken, ratelimit.Write, (*Server).ckpWebSocket},
		{"POST", "/v1/ckp", agentToken, ratelimit.Expensive, (*Server).ckpPost},
	}
}

// New builds the API over cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Identity == nil || cfg.Tenants == nil || cfg.Limiter == nil || cfg.Audit == nil {
		return nil, fmt.Errorf("server: incomplete config")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: newMetrics(cfg.Tenants)}
	methods := map[string][]string{}
	for _, rt := range routes() {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
		methods[rt.pattern] = append(methods[rt.pattern], rt.method)
	}
	// Any other method on a known path: 405 as a problem, with Allow.
	for pattern, ms := range methods {
		allow := strings.Join(ms, ", ")
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			problem.Write(w, http.StatusMethodNotAllowed, problem.MethodNotAllowed, r.Method+" is not allowed here; allowed: "+allow, 0)
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, problem.NotFound, "no such endpoint", 0)
	})
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Logf("panic serving %s %s: %v", r.Method, r.URL.Path, v)
			problem.Write(w, http.StatusInternalServerError, problem.Internal, "internal error", 0)
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	s.mux.ServeHTTP(w, r)
}

var orgName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// wrap applies the route's checks in order: client address, credentials,
// rate, role; then runs it.
func (s *Server) wrap(rt route) http.Handler {
	label := rt.method + " " + rt.pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() { s.metrics.observe(label, sw.status, time.Since(start)) }()
		w = sw
		ip, err := ratelimit.ClientIP(r, s.cfg.Proxy)
		if err != nil {
			problem.Write(w, http.StatusBadRequest, problem.BadRequest, "client address: "+err.Error(), 0)
			return
		}
		c := &call{ip: ip}
		if rt.who == agentToken {
			// CKP answers a bad token in its own transport (close 4002).
			rt.handle(s, w, r, c)
			return
		}
		if rt.who != anyone {
			if !s.authenticate(w, r, c, rt) {
				return
			}
		}
		if !s.allow(w, c, rt.cost) {
			return
		}
		rt.handle(s, w, r, c)
	})
}

// allow charges the caller's IP and, once the caller is known to belong
// to it, their organisation.
func (s *Server) allow(w http.ResponseWriter, c *call, cost ratelimit.Cost) bool {
	ok, retry := s.cfg.Limiter.Allow(c.ip, c.org.Name, cost)
	if !ok {
		s.metrics.limited.Inc()
		problem.Write(w, http.StatusTooManyRequests, problem.RateLimited, "rate limit exceeded; retry later", retry)
	}
	return ok
}

// bearer is the token in Authorization, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate establishes who is calling and checks the route's access.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, c *call, rt route) bool {
	c.token = bearer(r)
	p, err := s.cfg.Identity.Authenticate(c.token)
	if err != nil {
		// Guessing tokens is hopeless (256 bits), but each miss costs a
		// lookup: charge it like a write.
		if s.allow(w, c, ratelimit.Write) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clawkeep"`)
			problem.Write(w, http.StatusUnauthorized, problem.Unauthenticated, "a valid bearer token is required", 0)
		}
		return false
	}
	c.p = p
	forbid := func(why string) bool {
		problem.Write(w, http.StatusForbidden, problem.Forbidden, why, 0)
		return false
	}
	switch rt.who {
	case sessionOnly:
		if p.Kind != identity.Session {
			return forbid("this needs a person's login session")
		}
		return true
	case person:
		if p.Kind != identity.Session && p.Kind != identity.APIToken {
			return forbid("agent tokens only open CKP")
		}
		return true
	case instanceOwner:
		if p.Kind != identity.Session || !p.User.InstanceOwner {
			return forbid("only the instance owner may do this")
		}
		return true
	}
	min := rt.who.minRole()
	if !min.IsValid() {
		return forbid("no access")
	}
	name := r.PathValue("org")
	notFound := func() bool {
		problem.Write(w, http.StatusNotFound, problem.NotFound, "no organisation "+name, 0)
		return false
	}
	if !orgName.MatchString(name) {
		return notFound()
	}
	org, err := s.orgByName(name)
	if err != nil {
		return notFound()
	}
	if p.Kind == identity.AgentToken {
		if p.Org != org.ID {
			return notFound()
		}
		return forbid("agent tokens only open CKP")
	}
	role, err := s.cfg.Identity.RoleIn(p, org.ID)
	if err != nil || !role.IsValid() {
		return notFound()
	}
	c.org, c.role = org, role
	if !role.AtLeast(min) {
		return forbid(fmt.Sprintf("this needs the %s role; you are %s", min, role))
	}
	return true
}

// statusWriter remembers the status for metrics. It passes Flush and
// Hijack through, so streaming and WebSocket upgrades still work.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: connection cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}
