package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/clawkeep/clawkeep/internal/ratelimit"
)

// TestFloodingIPGets429WhileAnotherIPIsServed sends one client address far
// above its budget; it gets 429 with Retry-After, while a second address,
// interleaved with the flood, is never refused.
func TestFloodingIPGets429WhileAnotherIPIsServed(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 0.01, IPBurst: 50, PerOrg: 1e6, OrgBurst: 1e6}})
	flood, calm := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	limited, calmOK := 0, 0
	for i := 0; i < 400; i++ {
		r := doWith(t, flood, f.url, "GET", "/v1/health", "", nil)
		if r.status == http.StatusTooManyRequests {
			limited++
			if r.code() != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Fatalf("429 without its problem code or Retry-After: %v %s", r.header, r.raw)
			}
		}
		if i%20 == 0 {
			if r := doWith(t, calm, f.url, "GET", "/v1/health", "", nil); r.status != 200 {
				t.Fatalf("the calm client was refused during another's flood: %d %s", r.status, r.raw)
			}
			calmOK++
		}
	}
	if limited < 340 {
		t.Fatalf("only %d of 400 flood requests were refused", limited)
	}
	t.Logf("flood: %d of 400 refused; calm client: %d of %d served", limited, calmOK, calmOK)
}

// TestSpoofedForwardedForDoesNotEscapeTheLimit: without a trusted proxy,
// a client cannot pick its address with a header.
func TestSpoofedForwardedForDoesNotEscapeTheLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 0.01, IPBurst: 50, PerOrg: 1e6, OrgBurst: 1e6}})
	c := clientFrom("127.0.0.4")
	refused := 0
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest("GET", f.url+"/v1/health", nil)
		req.Header.Set("X-Forwarded-For", "10.0.0."+strings.Repeat("1", 1+i%2))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 {
			refused++
		}
	}
	if refused < 40 {
		t.Fatalf("rotating X-Forwarded-For escaped the limit: only %d refused", refused)
	}
}

// TestOneOrgCannotStarveAnother: an organisation over its own quota is
// refused while another organisation, same client address, is served.
func TestOneOrgCannotStarveAnother(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 1e6, IPBurst: 1e6, PerOrg: 0.01, OrgBurst: 50}})
	f.org("a")
	f.org("b")
	refusedA := 0
	for i := 0; i < 120; i++ {
		if r := f.do("GET", "/v1/orgs/a", f.owner, nil); r.status == 429 {
			refusedA++
		}
	}
	if refusedA == 0 {
		t.Fatal("org a was never limited")
	}
	if r := f.do("GET", "/v1/orgs/b", f.owner, nil); r.status != 200 {
		t.Fatalf("org b refused while a was over its quota: %d %s", r.status, r.raw)
	}
}

// TestRepeatedFailedLoginsLockOut: wrong passwords from one address lock
// it out, and then even the right password is refused from there.
func TestRepeatedFailedLoginsLockOut(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 1e6, IPBurst: 1e6, PerOrg: 1e6, OrgBurst: 1e6, LockoutAfter: 5}})
	c := clientFrom("127.0.0.5")
	for i := 0; i < 5; i++ {
		r := doWith(t, c, f.url, "POST", "/v1/login", "", map[string]any{"email": "root@example.com", "password": "wrong password!!"})
		if r.status != 401 {
			t.Fatalf("failed login %d: %d %s", i, r.status, r.raw)
		}
	}
	r := doWith(t, c, f.url, "POST", "/v1/login", "", map[string]any{"email": "root@example.com", "password": "root password 123"})
	if r.status != 429 || r.code() != "locked_out" {
		t.Fatalf("right password after lockout: %d %s", r.status, r.raw)
	}
	// Another address is not locked out by this one's failures.
	if r := f.do("POST", "/v1/login", "", map[string]any{"email": "root@example.com", "password": "root password 123"}); r.status != 200 {
		t.Fatalf("another address locked out too: %d %s", r.status, r.raw)
	}
}

// TestOversizedBodyAndHeadersAreRefused: bounds hold, the process keeps
// serving.
func TestOversizedBodyAndHeadersAreRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	big := map[string]any{"email": strings.Repeat("a", 2<<20), "password": "x"}
	r := f.do("POST", "/v1/login", "", big)
	if r.status != http.StatusRequestEntityTooLarge || r.code() != "body_too_large" {
		t.Fatalf("2 MiB login body: %d %s", r.status, r.raw)
	}
	r = f.do("POST", "/v1/login", "", map[string]any{"email": "x@example.com", "password": "p", "extra": true})
	if r.status != 400 || r.code() != "invalid_json" {
		t.Fatalf("unknown field: %d %s", r.status, r.raw)
	}
	r = f.do("DELETE", "/v1/health", "", nil)
	if r.status != 405 || r.code() != "method_not_allowed" {
		t.Fatalf("wrong method: %d %s", r.status, r.raw)
	}
	r = f.do("GET", "/v1/nope", "", nil)
	if r.status != 404 || r.code() != "not_found" {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	req, _ := http.NewRequest("GET", f.url+"/v1/health", nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %d", resp.StatusCode)
	}
	if r := f.do("GET", "/v1/health", "", nil); r.status != 200 {
		t.Fatal("server stopped serving")
	}
}

// TestNamingAnOrgDoesNotSpendItsQuota: requests without valid credentials
// that name an organisation are charged to their own address, never to
// the organisation, so a stranger cannot exhaust a tenant's quota.
func TestNamingAnOrgDoesNotSpendItsQuota(t *testing.T) {
	f := newFixture(t, fixtureOpts{limits: ratelimit.Config{PerIP: 1e6, IPBurst: 1e6, PerOrg: 0.01, OrgBurst: 50}})
	f.org("a")
	stranger := clientFrom("127.0.0.6")
	for i := 0; i < 200; i++ {
		doWith(t, stranger, f.url, "GET", "/v1/orgs/a/agents", "cks_"+strings.Repeat("A", 43), nil)
		doWith(t, stranger, f.url, "GET", "/v1/orgs/a", "", nil)
	}
	if r := f.do("GET", "/v1/orgs/a", f.owner, nil); r.status != 200 {
		t.Fatalf("the org's own owner was refused after a stranger's flood: %d %s", r.status, r.raw)
	}
}
