package server

import (
	"fmt"
	"strings"
	"testing"
)

// TestEveryRoleAgainstEveryEndpoint walks the route table, the one place
// access is decided, and calls every route as every kind of caller:
// anonymous, each role of organisation "a", an API token, an agent token,
// the owner of another organisation, and the instance owner. Whoever the
// table admits must get past authorization; everyone else must get 401
// (no credentials), 403 (too low a role, or the wrong kind of token) or
// 404 (an organisation they do not belong to, indistinguishable from one
// that does not exist).
func TestEveryRoleAgainstEveryEndpoint(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.org("a")
	f.org("b")
	agentTok := f.agent("a", "helper")
	password := map[string]string{}
	sessions := map[string]string{"root": f.owner}
	for _, role := range []string{"viewer", "member", "admin", "owner"} {
		email := role + "@example.com"
		sessions[role] = f.member("a", email, role)
		password[role] = "password of " + email
	}
	sessions["b-owner"] = f.member("b", "bowner@example.com", "owner")
	password["b-owner"] = "password of bowner@example.com"
	apiTok := f.mustDo("POST", "/v1/orgs/a/tokens", f.owner, map[string]any{"name": "ci", "role": "viewer"}, 201).json["token"].(string)

	type caller struct {
		name  string
		token func() string
		kind  string // anonymous, session, api, agent
		role  int    // in org a: 0 none, 1 viewer .. 4 owner
		other bool   // belongs only to org b
		root  bool
	}
	fresh := func(who string) func() string {
		// logout ends the session it is called with: give it its own.
		return func() string {
			if who == "root" {
				return f.login("root@example.com", "root password 123")
			}
			if who == "b-owner" {
				return f.login("bowner@example.com", password[who])
			}
			return f.login(who+"@example.com", password[who])
		}
	}
	fixed := func(s string) func() string { return func() string { return s } }
	callers := []caller{
		{name: "anonymous", token: fixed(""), kind: "anonymous"},
		{name: "viewer", token: fixed(sessions["viewer"]), kind: "session", role: 1},
		{name: "member", token: fixed(sessions["member"]), kind: "session", role: 2},
		{name: "admin", token: fixed(sessions["admin"]), kind: "session", role: 3},
		{name: "owner", token: fixed(sessions["owner"]), kind: "session", role: 4},
		{name: "api-viewer", token: fixed(apiTok), kind: "api", role: 1},
		{name: "agent", token: fixed(agentTok), kind: "agent"},
		{name: "b-owner", token: fixed(sessions["b-owner"]), kind: "session", other: true},
		{name: "root", token: fixed(sessions["root"]), kind: "session", role: 4, root: true},
	}
	minRole := map[access]int{orgViewer: 1, orgMember: 2, orgAdmin: 3, orgOwner: 4}

	for _, rt := range routes() {
		if rt.method == "GET" && rt.pattern == "/v1/ckp" {
			continue // a WebSocket upgrade: TestCKPWebSocketRefusesBadTokensWith4002
		}
		destructive := rt.method == "DELETE"
		path := expand(rt.pattern, destructive)
		for _, c := range callers {
			tok := c.token()
			if rt.pattern == "/v1/logout" && c.kind == "session" {
				if c.root {
					tok = fresh("root")()
				} else if c.other {
					tok = fresh("b-owner")()
				} else {
					tok = fresh(c.name)()
				}
			}
			r := f.do(rt.method, path, tok, bodyFor(rt))
			denied := r.status == 401 || r.status == 403 || (r.status == 404 && strings.HasPrefix(detail(r), "no organisation"))
			var want string // "" = must pass authorization
			switch rt.who {
			case anyone:
			case sessionOnly:
				switch c.kind {
				case "anonymous":
					want = "401"
				case "api", "agent":
					want = "403"
				}
			case person:
				switch c.kind {
				case "anonymous":
					want = "401"
				case "agent":
					want = "403"
				}
			case instanceOwner:
				switch {
				case c.kind == "anonymous":
					want = "401"
				case !c.root:
					want = "403"
				}
			case agentToken:
				if c.kind != "agent" {
					want = "401"
				}
			default:
				switch {
				case c.kind == "anonymous":
					want = "401"
				case c.other:
					want = "404"
				case c.kind == "agent":
					want = "403"
				case c.role < minRole[rt.who]:
					want = "403"
				}
			}
			name := fmt.Sprintf("%s %s as %s", rt.method, rt.pattern, c.name)
			switch {
			case want == "" && rt.who == anyone:
				if r.status == 403 {
					t.Errorf("%s: refused (%d %s) though anyone may call it", name, r.status, r.raw)
				}
			case want == "" && denied:
				t.Errorf("%s: refused (%d %s); the table admits this caller", name, r.status, r.raw)
			case want != "" && fmt.Sprint(r.status) != want:
				t.Errorf("%s: got %d %s, want %s", name, r.status, r.raw, want)
			}
		}
	}
}

func detail(r response) string {
	d, _ := r.json["detail"].(string)
	return d
}

// expand fills a route pattern with values that exist in the fixture, or,
// for deletions, ones that do not (so an admitted caller deletes nothing
// the rest of the walk needs).
func expand(pattern string, destructive bool) string {
	vals := map[string]string{"{org}": "a", "{agent}": "helper", "{service}": "gmail", "{name}": "cred1", "{id}": "none", "{user_id}": "99999"}
	if destructive {
		vals["{agent}"], vals["{service}"], vals["{name}"] = "ghost", "nosvc", "nocred"
	}
	for k, v := range vals {
		pattern = strings.ReplaceAll(pattern, k, v)
	}
	return pattern
}

// bodyFor is a plausible body for a route, so admitted callers reach the
// handler's own checks.
func bodyFor(rt route) any {
	switch {
	case rt.method == "PUT" && strings.HasSuffix(rt.pattern, "/agents/{agent}"):
		return agentYAML("helper")
	case strings.HasSuffix(rt.pattern, "/abilities/{service}") && rt.method == "PUT":
		return map[string]any{"actions": map[string]string{"send": "approval"}}
	case strings.HasSuffix(rt.pattern, "/credentials/{name}") && rt.method == "PUT":
		return map[string]any{"type": "api-key", "value": "sk-test-000000000000"}
	case rt.pattern == "/v1/orgs/{org}/members" && rt.method == "POST":
		return map[string]any{"email": "new@example.com", "role": "viewer", "password": "new user password"}
	case strings.HasSuffix(rt.pattern, "/members/{user_id}") && rt.method == "PATCH":
		return map[string]any{"role": "viewer"}
	case rt.pattern == "/v1/orgs/{org}/tokens" && rt.method == "POST":
		return map[string]any{"name": "t", "role": "viewer"}
	case strings.HasSuffix(rt.pattern, "/reject"):
		return map[string]any{"reason": "too_risky"}
	case rt.pattern == "/v1/orgs" && rt.method == "POST":
		return map[string]any{"name": "c"}
	case rt.pattern == "/v1/login":
		return map[string]any{"email": "nobody@example.com", "password": "wrong password!"}
	case rt.pattern == "/v1/bootstrap":
		return map[string]any{"token": "ckb_x", "email": "x@example.com", "password": "some password 1"}
	case rt.pattern == "/v1/ckp":
		return map[string]any{"jsonrpc": "2.0", "id": 1, "method": "claw.status"}
	}
	return nil
}

// TestRouteTableGrantsWhatTheRolesPromise pins the table to the roles as
// the product states them, written out here independently of routes(): a
// change to who may do what must change this test too. Viewer: read-only.
// Member: also decides approvals. Admin: also agents, abilities,
// credentials. Owner: also members and tokens.
func TestRouteTableGrantsWhatTheRolesPromise(t *testing.T) {
	promise := map[string]access{
		"GET /v1/health": anyone, "GET /metrics": anyone, "GET /v1/openapi.yaml": anyone,
		"POST /v1/bootstrap": anyone, "POST /v1/login": anyone,
		"POST /v1/logout": sessionOnly, "GET /v1/me": person, "GET /v1/orgs": person,
		"POST /v1/orgs":                                            instanceOwner,
		"GET /v1/orgs/{org}":                                       orgViewer,
		"GET /v1/orgs/{org}/members":                               orgViewer,
		"POST /v1/orgs/{org}/members":                              orgOwner,
		"PATCH /v1/orgs/{org}/members/{user_id}":                   orgOwner,
		"DELETE /v1/orgs/{org}/members/{user_id}":                  orgOwner,
		"GET /v1/orgs/{org}/tokens":                                orgOwner,
		"POST /v1/orgs/{org}/tokens":                               orgOwner,
		"DELETE /v1/orgs/{org}/tokens/{id}":                        orgOwner,
		"GET /v1/orgs/{org}/agents":                                orgViewer,
		"PUT /v1/orgs/{org}/agents/{agent}":                        orgAdmin,
		"GET /v1/orgs/{org}/agents/{agent}":                        orgViewer,
		"DELETE /v1/orgs/{org}/agents/{agent}":                     orgAdmin,
		"POST /v1/orgs/{org}/agents/{agent}/tokens":                orgAdmin,
		"GET /v1/orgs/{org}/agents/{agent}/abilities":              orgViewer,
		"PUT /v1/orgs/{org}/agents/{agent}/abilities/{service}":    orgAdmin,
		"DELETE /v1/orgs/{org}/agents/{agent}/abilities/{service}": orgAdmin,
		"GET /v1/orgs/{org}/credentials":                           orgViewer,
		"PUT /v1/orgs/{org}/credentials/{name}":                    orgAdmin,
		"DELETE /v1/orgs/{org}/credentials/{name}":                 orgAdmin,
		"GET /v1/orgs/{org}/approvals":                             orgViewer,
		"POST /v1/orgs/{org}/approvals/{id}/approve":               orgMember,
		"POST /v1/orgs/{org}/approvals/{id}/reject":                orgMember,
		"GET /v1/orgs/{org}/audit":                                 orgViewer,
		"GET /v1/orgs/{org}/audit/verify":                          orgViewer,
		"GET /v1/orgs/{org}/audit/export":                          orgViewer,
		"GET /v1/ckp":                                              agentToken,
		"POST /v1/ckp":                                             agentToken,
	}
	seen := map[string]bool{}
	for _, rt := range routes() {
		key := rt.method + " " + rt.pattern
		seen[key] = true
		want, ok := promise[key]
		if !ok {
			t.Errorf("%s: in the route table but not in the promise; decide who may call it", key)
			continue
		}
		if rt.who != want {
			t.Errorf("%s: the table admits %s, the roles promise %s", key, rt.who, want)
		}
	}
	for key := range promise {
		if !seen[key] {
			t.Errorf("%s: promised but not served", key)
		}
	}
}
