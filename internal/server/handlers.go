package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/identity"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/tenant"
)

const maxSmallBody = 16 << 10

type userView struct {
	ID            int64  `json:"id"`
	Email         string `json:"email"`
	InstanceOwner bool   `json:"instance_owner"`
}

func viewUser(u identity.User) userView { return userView{u.ID, u.Email, u.InstanceOwner} }

// record appends to the supervisor's chain; a failure is logged, and the
// change it records stands (it was committed first).
func (s *Server) record(r *http.Request, c *call, event, decision string, detail map[string]string) {
	if detail == nil {
		detail = map[string]string{}
	}
	detail["by"] = c.actor()
	detail["ip"] = c.ip.String()
	rec := audit.Record{Tenant: "supervisor", Event: event, Decision: decision, Detail: detail}
	if c.org.Name != "" {
		rec.Tenant = c.org.Name
	}
	if _, err := s.cfg.Audit.Append(context.WithoutCancel(r.Context()), rec); err != nil {
		s.cfg.Logf("audit: %v", err)
	}
	if c.org.Name != "" && event != "org" {
		s.recordInTenant(r, c, event, decision, detail)
	}
}

// recordInTenant appends an organisation's identity event (members,
// roles, tokens) to the organisation's own chain too, so that its audit
// export shows every change to who may act in it. The change was
// committed first; a worker that cannot take the record leaves it in the
// supervisor's chain and a line in the log.
func (s *Server) recordInTenant(r *http.Request, c *call, event, decision string, detail map[string]string) {
	body, _ := json.Marshal(map[string]any{"event": event, "decision": decision, "detail": detail})
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	pw := &probeWriter{header: http.Header{}}
	s.cfg.Tenants.Forward(pw, req, c.tenantOrg(), "/audit/events", c.caller())
	if pw.status != http.StatusNoContent {
		s.cfg.Logf("audit: org %s: the worker did not record %s/%s (status %d); it is in the supervisor's chain", c.org.Name, event, decision, pw.status)
	}
}

// identityError maps identity errors to problems.
func (s *Server) identityError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, identity.ErrInvalid), errors.Is(err, identity.ErrWeakPassword):
		problem.Write(w, http.StatusBadRequest, problem.BadRequest, err.Error(), 0)
	case errors.Is(err, identity.ErrExists):
		problem.Write(w, http.StatusConflict, problem.Conflict, err.Error(), 0)
	case errors.Is(err, identity.ErrNotFound):
		problem.Write(w, http.StatusNotFound, problem.NotFound, err.Error(), 0)
	case errors.Is(err, identity.ErrLastOwner):
		problem.Write(w, http.StatusConflict, problem.Conflict, err.Error(), 0)
	default:
		s.cfg.Logf("identity: %v", err)
		problem.Write(w, http.StatusInternalServerError, problem.Internal, "internal error", 0)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, c *call) {
	problem.JSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request, c *call) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI)
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request, c *call) {
	var body struct {
		Token    string `json:"token"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	pw := []byte(body.Password)
	defer clear(pw)
	u, err := s.cfg.Identity.RedeemBootstrap(body.Token, body.Email, pw)
	if errors.Is(err, identity.ErrUnauthenticated) {
		s.cfg.Limiter.LoginFailed(c.ip)
		problem.Write(w, http.StatusUnauthorized, problem.Unauthenticated, "the bootstrap token is not valid (or was used)", 0)
		return
	}
	if err != nil {
		s.identityError(w, err)
		return
	}
	c.p = identity.Principal{Kind: identity.Session, User: u}
	s.record(r, c, "bootstrap", "owner-created", map[string]string{"user": u.Email})
	problem.JSON(w, http.StatusCreated, map[string]any{"user": viewUser(u)})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c *call) {
	if ok, retry := s.cfg.Limiter.LoginAllowed(c.ip); !ok {
		problem.Write(w, http.StatusTooManyRequests, problem.LockedOut, "too many failed logins from this address; retry later", retry)
		return
	}
	var body struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	pw := []byte(body.Password)
	defer clear(pw)
	token, u, err := s.cfg.Identity.Login(body.Email, pw)
	switch {
	case errors.Is(err, identity.ErrLocked):
		s.cfg.Limiter.LoginFailed(c.ip)
		s.record(r, c, "login", "locked", map[string]string{"email": s.knownEmail(body.Email)})
		problem.Write(w, http.StatusTooManyRequests, problem.LockedOut, "this account is locked after repeated failed logins; retry later", 15*time.Minute)
		return
	case err != nil:
		s.cfg.Limiter.LoginFailed(c.ip)
		s.record(r, c, "login", "failed", map[string]string{"email": s.knownEmail(body.Email)})
		problem.Write(w, http.StatusUnauthorized, problem.Unauthenticated, "wrong email or password", 0)
		return
	}
	s.cfg.Limiter.LoginSucceeded(c.ip)
	c.p = identity.Principal{Kind: identity.Session, User: u}
	s.record(r, c, "login", "ok", nil)
	problem.JSON(w, http.StatusOK, map[string]any{"token": token, "user": viewUser(u)})
}

// knownEmail is what the audit records of a failed login's email: the
// account's address if there is one, else a placeholder. People type
// passwords into the email field; what they typed must not be kept.
func (s *Server) knownEmail(email string) string {
	if u, err := s.cfg.Identity.UserByEmail(email); err == nil {
		return u.Email
	}
	return "(no such account)"
}

// clip keeps a caller-chosen value short.
func clip(s string) string {
	if len(s) > 254 {
		return s[:254]
	}
	return s
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *call) {
	if err := s.cfg.Identity.Logout(c.token); err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "logout", "ok", nil)
	w.WriteHeader(http.StatusNoContent)
}

type orgRole struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// orgsOf lists the organisations the caller belongs to, with their role.
func (s *Server) orgsOf(p identity.Principal) ([]orgRole, error) {
	orgs, err := s.cfg.Identity.Orgs()
	if err != nil {
		return nil, err
	}
	out := []orgRole{}
	for _, o := range orgs {
		role, err := s.cfg.Identity.RoleIn(p, o.ID)
		if err == nil && role.IsValid() {
			out = append(out, orgRole{o.Name, role.String()})
		}
	}
	return out, nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, c *call) {
	orgs, err := s.orgsOf(c.p)
	if err != nil {
		s.identityError(w, err)
		return
	}
	var u any
	if c.p.Kind == identity.Session {
		u = viewUser(c.p.User)
	}
	problem.JSON(w, http.StatusOK, map[string]any{"user": u, "orgs": orgs})
}

type orgView struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created_at"`
	Role    string    `json:"role,omitempty"`
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request, c *call) {
	var body struct {
		Name string `json:"name"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	org, err := s.cfg.Identity.CreateOrg(body.Name)
	if err != nil {
		s.identityError(w, err)
		return
	}
	if err := s.cfg.Identity.AddMember(org.ID, c.p.User.ID, identity.Owner); err != nil {
		s.identityError(w, err)
		return
	}
	c.org = org
	s.record(r, c, "org", "created", map[string]string{"org": org.Name, "owner": c.p.User.Email})
	problem.JSON(w, http.StatusCreated, orgView{org.ID, org.Name, org.Created.UTC(), identity.Owner.String()})
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request, c *call) {
	orgs, err := s.orgsOf(c.p)
	if err != nil {
		s.identityError(w, err)
		return
	}
	problem.JSON(w, http.StatusOK, map[string]any{"orgs": orgs})
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, c *call) {
	problem.JSON(w, http.StatusOK, orgView{c.org.ID, c.org.Name, c.org.Created.UTC(), c.role.String()})
}

type memberView struct {
	UserID int64     `json:"user_id"`
	Email  string    `json:"email"`
	Role   string    `json:"role"`
	Added  time.Time `json:"added_at"`
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, c *call) {
	ms, err := s.cfg.Identity.Members(c.org.ID)
	if err != nil {
		s.identityError(w, err)
		return
	}
	out := make([]memberView, 0, len(ms))
	for _, m := range ms {
		out = append(out, memberView{m.User.ID, m.User.Email, m.Role.String(), m.Added.UTC()})
	}
	problem.JSON(w, http.StatusOK, map[string]any{"members": out})
}

// addMember adds a user to the organisation, creating the user if the
// email is new (then a password is required).
func (s *Server) addMember(w http.ResponseWriter, r *http.Request, c *call) {
	var body struct {
		Email    string `json:"email"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	pw := []byte(body.Password)
	defer clear(pw)
	role, err := identity.ParseRole(body.Role)
	if err != nil {
		s.identityError(w, err)
		return
	}
	u, err := s.cfg.Identity.UserByEmail(body.Email)
	if errors.Is(err, identity.ErrNotFound) {
		if len(pw) == 0 {
			problem.Write(w, http.StatusBadRequest, problem.BadRequest, "no user with this email: give a password to create one", 0)
			return
		}
		u, err = s.cfg.Identity.CreateUser(body.Email, pw)
	} else if err == nil && len(pw) > 0 {
		// Owners of one organisation must not set the password of a
		// person who may belong to others.
		problem.Write(w, http.StatusConflict, problem.Conflict, "this user exists; add them without a password", 0)
		return
	}
	if err != nil {
		s.identityError(w, err)
		return
	}
	if err := s.cfg.Identity.AddMember(c.org.ID, u.ID, role); err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "member", "added", map[string]string{"user": u.Email, "role": role.String()})
	problem.JSON(w, http.StatusCreated, memberView{u.ID, u.Email, role.String(), time.Now().UTC()})
}

func userIDParam(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil || id < 1 {
		problem.Write(w, http.StatusBadRequest, problem.BadRequest, "user_id: want a positive integer", 0)
		return 0, false
	}
	return id, true
}

func (s *Server) setMember(w http.ResponseWriter, r *http.Request, c *call) {
	id, ok := userIDParam(w, r)
	if !ok {
		return
	}
	var body struct {
		Role string `json:"role"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	role, err := identity.ParseRole(body.Role)
	if err != nil {
		s.identityError(w, err)
		return
	}
	if err := s.cfg.Identity.SetRole(c.org.ID, id, role); err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "member", "role-changed", map[string]string{"user_id": strconv.FormatInt(id, 10), "role": role.String()})
	problem.JSON(w, http.StatusOK, map[string]any{"user_id": id, "role": role.String()})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c *call) {
	id, ok := userIDParam(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Identity.RemoveMember(c.org.ID, id); err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "member", "removed", map[string]string{"user_id": strconv.FormatInt(id, 10)})
	w.WriteHeader(http.StatusNoContent)
}

type tokenView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role,omitempty"`
	Agent     string     `json:"agent,omitempty"`
	CreatedBy string     `json:"created_by"`
	Created   time.Time  `json:"created_at"`
	Expires   *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	LastUsed  *time.Time `json:"last_used_at,omitempty"`
	Token     string     `json:"token,omitempty"` // only in the response that creates it
}

func viewToken(t identity.Token) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Agent: t.Agent, CreatedBy: t.CreatedBy, Created: t.Created.UTC(), Revoked: t.Revoked}
	if t.Role.IsValid() {
		v.Role = t.Role.String()
	}
	if !t.Expires.IsZero() {
		e := t.Expires.UTC()
		v.Expires = &e
	}
	if !t.LastUsed.IsZero() {
		l := t.LastUsed.UTC()
		v.LastUsed = &l
	}
	return v
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, c *call) {
	ts, err := s.cfg.Identity.Tokens(c.org.ID)
	if err != nil {
		s.identityError(w, err)
		return
	}
	out := make([]tokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewToken(t))
	}
	problem.JSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *call) {
	var body struct {
		Name      string `json:"name"`
		Role      string `json:"role"`
		ExpiresIn string `json:"expires_in"`
	}
	if !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	role, err := identity.ParseRole(body.Role)
	if err != nil {
		s.identityError(w, err)
		return
	}
	if !c.role.AtLeast(role) {
		problem.Write(w, http.StatusForbidden, problem.Forbidden, "a token cannot have a higher role than its creator", 0)
		return
	}
	var expires time.Time
	if body.ExpiresIn != "" {
		d, err := time.ParseDuration(body.ExpiresIn)
		if err != nil || d <= 0 {
			problem.Write(w, http.StatusBadRequest, problem.BadRequest, "expires_in: want a positive Go duration such as 720h", 0)
			return
		}
		expires = time.Now().Add(d)
	}
	plain, t, err := s.cfg.Identity.CreateToken(c.org.ID, body.Name, role, c.actor(), expires)
	if err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "token", "created", map[string]string{"token_id": t.ID, "name": t.Name, "role": role.String()})
	v := viewToken(t)
	v.Token = plain
	problem.JSON(w, http.StatusCreated, v)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *call) {
	id := r.PathValue("id")
	if err := s.cfg.Identity.RevokeToken(c.org.ID, id); err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "token", "revoked", map[string]string{"token_id": clip(id)})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createAgentToken(w http.ResponseWriter, r *http.Request, c *call) {
	name := r.PathValue("agent")
	var body struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 && !problem.Decode(w, r, &body, maxSmallBody) {
		return
	}
	if !manifest.ValidName(name) {
		problem.Write(w, http.StatusBadRequest, problem.BadRequest, "agent name: want 1-63 letters, digits or '-', starting with a letter or digit", 0)
		return
	}
	// A token is only for an agent the organisation has.
	probe := r.Clone(r.Context())
	probe.Method, probe.Body, probe.ContentLength = http.MethodGet, http.NoBody, 0
	pw := &probeWriter{header: http.Header{}}
	s.cfg.Tenants.Forward(pw, probe, c.tenantOrg(), "/agents/"+url.PathEscape(name), c.caller())
	switch pw.status {
	case http.StatusOK:
	case http.StatusNotFound:
		problem.Write(w, http.StatusNotFound, problem.NotFound, "no agent "+name+"; apply its manifest first", 0)
		return
	default:
		problem.Write(w, http.StatusServiceUnavailable, problem.WorkerUnavailable, "the organisation's worker is unavailable; retry", time.Second)
		return
	}
	plain, t, err := s.cfg.Identity.CreateAgentToken(c.org.ID, name, c.actor())
	if err != nil {
		s.identityError(w, err)
		return
	}
	s.record(r, c, "token", "agent-token-created", map[string]string{"token_id": t.ID, "agent": name})
	v := viewToken(t)
	v.Token = plain
	problem.JSON(w, http.StatusCreated, v)
}

// caller is how the worker learns who is asking.
func (c *call) caller() tenant.Caller {
	role := ""
	if c.role.IsValid() {
		role = c.role.String()
	}
	return tenant.Caller{Actor: c.actor(), Role: role}
}

func (c *call) tenantOrg() tenant.Org { return tenant.Org{ID: c.org.ID, Name: c.org.Name} }

// forward hands an organisation route to its worker, as the path below
// /v1/orgs/{org}.
// The path stays escaped, so that a %2F inside one path value reaches the
// worker as part of that value and never as a separator the worker's
// router would clean into another route.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, c *call) {
	path := r.URL.EscapedPath()[len("/v1/orgs/")+len(c.org.Name):]
	s.cfg.Tenants.Forward(w, r, c.tenantOrg(), path, c.caller())
}

// deleteAgent deletes the manifest in the worker and then the agent's
// tokens here, so a deleted agent cannot connect again.
func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request, c *call) {
	sw := &statusWriter{ResponseWriter: w}
	s.forward(sw, r, c)
	if sw.status == http.StatusNoContent {
		if err := s.cfg.Identity.RevokeAgentTokens(c.org.ID, r.PathValue("agent")); err != nil {
			s.cfg.Logf("revoking tokens of deleted agent: %v", err)
		}
	}
}

// probeWriter keeps only the status of a response.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}
