package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustToken(t testing.TB, s *Store, org int64, r Role) (string, Token) {
	t.Helper()
	plain, tok, err := s.CreateToken(org, "ci", r, "alice@example.com", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return plain, tok
}

func TestTokens(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, clk)
	o := mustOrg(t, s, "acme")
	api, tok := mustToken(t, s, o.ID, Admin)
	if !strings.HasPrefix(api, "ckt_") || len(api) != 47 || len(tok.ID) != 12 || tok.Role != Admin || tok.Agent != "" {
		t.Errorf("CreateToken = %q, %+v", api, tok)
	}
	agent, atok, err := s.CreateAgentToken(o.ID, "scout", "alice@example.com")
	if err != nil || !strings.HasPrefix(agent, "cka_") || atok.Agent != "scout" || atok.Role != 0 {
		t.Fatalf("CreateAgentToken = %q, %+v, %v", agent, atok, err)
	}
	if p, err := s.Authenticate(api); err != nil || p != (Principal{Kind: APIToken, Org: o.ID, Role: Admin, TokenID: tok.ID}) {
		t.Errorf("Authenticate(api) = %+v, %v", p, err)
	}
	if p, err := s.Authenticate(agent); err != nil || p != (Principal{Kind: AgentToken, Org: o.ID, Agent: "scout", TokenID: atok.ID}) {
		t.Errorf("Authenticate(agent) = %+v, %v", p, err)
	}
	list, err := s.Tokens(o.ID)
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != atok.ID || !list[0].LastUsed.Equal(clk.Now()) {
		t.Errorf("Tokens = %+v, %v", list, err)
	}
	for _, c := range []struct {
		name, by string
		r        Role
		exp      time.Time
	}{
		{"", "x", Viewer, time.Time{}},         // empty name
		{"ci\u202e", "x", Viewer, time.Time{}}, // bidi override in the token list
		{"ci\n", "x", Viewer, time.Time{}},     // newline
		{"ci", "", Viewer, time.Time{}},        // no creator
		{"ci", "x", 0, time.Time{}},            // zero role
		{"ci", "x", 9, time.Time{}},            // out-of-range role
		{"ci", "x", Viewer, clk.Now()},         // already expired
		{"ci", "x", Viewer, clk.Now().Add(-time.Hour)},
	} {
		if _, _, err := s.CreateToken(o.ID, c.name, c.r, c.by, c.exp); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateToken(%q, %v, %q, %v) = %v; want ErrInvalid", c.name, c.r, c.by, c.exp, err)
		}
	}
	for _, a := range []string{"", "-x", "a b", "../x", strings.Repeat("a", 64)} {
		if _, _, err := s.CreateAgentToken(o.ID, a, "x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAgentToken(%q) = %v; want ErrInvalid", a, err)
		}
	}
	if _, _, err := s.CreateToken(9999, "ci", Viewer, "x", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateToken(unknown org) = %v", err)
	}
}

// LastUsed is written at most once a minute, not on every request.
func TestLastUsedWrittenAtMostOnceAMinute(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, clk)
	o := mustOrg(t, s, "acme")
	api, _ := mustToken(t, s, o.ID, Viewer)
	t0 := clk.Now()
	lastUsed := func() time.Time {
		list, err := s.Tokens(o.ID)
		if err != nil {
			t.Fatal(err)
		}
		return list[0].LastUsed
	}
	s.Authenticate(api)
	clk.Add(30 * time.Second) // past the cache, inside the minute
	s.Authenticate(api)
	if got := lastUsed(); !got.Equal(t0) {
		t.Errorf("LastUsed = %v after 30 s; want %v", got, t0)
	}
	clk.Add(31 * time.Second)
	s.Authenticate(api)
	if got := lastUsed(); !got.Equal(clk.Now()) {
		t.Errorf("LastUsed = %v after 61 s; want %v", got, clk.Now())
	}
}

// Malformed tokens must be refused before any database work: the store's
// database is closed, so any query would fail with a different error.
func TestMalformedTokensRejectedWithoutDB(t *testing.T) {
	s, _ := openTest(t, newClock())
	valid := "cks_" + strings.Repeat("A", 43)
	if _, ok := parseSecret(valid, prefixSession); !ok {
		t.Fatal("test token not well formed")
	}
	s.db.Close()
	for _, tok := range []string{
		"",
		"cks_",                                    // prefix only
		"Bearer " + valid,                         // header not stripped
		"CKS_" + strings.Repeat("A", 43),          // prefixes are case-sensitive
		"ckx_" + strings.Repeat("A", 43),          // unknown kind
		"ckb_" + strings.Repeat("A", 43),          // a bootstrap token is not a bearer token
		valid[:46],                                // truncated
		valid + "A",                               // extended
		"cks_" + strings.Repeat("A", 42) + "=",    // padding
		"cks_" + strings.Repeat("A", 41) + "+/",   // standard, not URL, alphabet
		"cks_" + strings.Repeat("A", 42) + "B",    // non-zero trailing bits: a second spelling of a secret
		"cks_" + strings.Repeat("A", 42) + "\x00", // NUL
		"cks_" + strings.Repeat("A", 41) + "é",    // non-ASCII, right byte length
		" " + valid[:46],                          // leading space
		strings.Repeat("cks_", 12),                // prefix repeated
	} {
		if p, err := s.Authenticate(tok); err != ErrUnauthenticated || p != (Principal{}) {
			t.Errorf("Authenticate(%q) = %+v, %v; want bare ErrUnauthenticated", tok, p, err)
		}
	}
	// The well-formed token does reach the (closed) database.
	if _, err := s.Authenticate(valid); err == ErrUnauthenticated {
		t.Error("well-formed token did not reach the database")
	}
}

// Relabelling: an API token's secret presented as an agent token (or a
// session) must match nothing, since the prefix is part of the hash.
func TestTokenPrefixSwapRejected(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	api, _ := mustToken(t, s, o.ID, Owner)
	for _, p := range []string{"cka_", "cks_"} {
		if _, err := s.Authenticate(p + api[4:]); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("API token relabelled %s: %v", p, err)
		}
	}
}

func TestUnknownTokenRejected(t *testing.T) {
	s, _ := openTest(t, newClock())
	for _, p := range []string{prefixSession, prefixAPI, prefixAgent} {
		plain, _, err := newSecret(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(plain); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("unknown %s token: %v", p, err)
		}
	}
}

// A revoked token must stop working at once, although the previous
// request put it in the cache.
func TestRevokedTokenRejectedDespiteCache(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	api, tok := mustToken(t, s, o.ID, Admin)
	a1, _, _ := s.CreateAgentToken(o.ID, "scout", "x")
	a2, _, _ := s.CreateAgentToken(o.ID, "scout", "x")
	other, _, _ := s.CreateAgentToken(o.ID, "ranger", "x")
	for _, p := range []string{api, a1, a2, other} {
		if _, err := s.Authenticate(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeToken(o.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(api); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked API token: %v", err)
	}
	if err := s.RevokeToken(o.ID, tok.ID); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if err := s.RevokeAgentTokens(o.ID, "scout"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a1, a2} {
		if _, err := s.Authenticate(p); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("revoked agent token: %v", err)
		}
	}
	if _, err := s.Authenticate(other); err != nil {
		t.Errorf("another agent's token was revoked too: %v", err)
	}
	list, _ := s.Tokens(o.ID)
	for _, tk := range list {
		if tk.Revoked != (tk.Agent != "ranger") {
			t.Errorf("token %+v: Revoked = %v", tk, tk.Revoked)
		}
	}
}

func TestExpiredAPITokenRejected(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, clk)
	o := mustOrg(t, s, "acme")
	api, tok, err := s.CreateToken(o.ID, "ci", Viewer, "x", clk.Now().Add(time.Hour))
	if err != nil || !tok.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("CreateToken = %+v, %v", tok, err)
	}
	clk.Add(time.Hour - time.Second)
	if _, err := s.Authenticate(api); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second) // the cached entry must not outlive the token
	if _, err := s.Authenticate(api); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
}

func TestOrgACannotRevokeOrgBToken(t *testing.T) {
	s, _ := openTest(t, newClock())
	a, b := mustOrg(t, s, "org-a"), mustOrg(t, s, "org-b")
	plainB, tokB := mustToken(t, s, b.ID, Admin)
	if err := s.RevokeToken(a.ID, tokB.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("org A revoking org B's token: %v; want ErrNotFound", err)
	}
	if err := s.RevokeAgentTokens(a.ID, "scout"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(plainB); err != nil {
		t.Errorf("org B's token stopped working: %v", err)
	}
	if list, _ := s.Tokens(a.ID); len(list) != 0 {
		t.Errorf("org A lists org B's tokens: %+v", list)
	}
}

func TestAPITokenRoleInOtherOrgRefused(t *testing.T) {
	s, _ := openTest(t, newClock())
	a, b := mustOrg(t, s, "org-a"), mustOrg(t, s, "org-b")
	plain, _ := mustToken(t, s, a.ID, Owner)
	p, err := s.Authenticate(plain)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.RoleIn(p, a.ID); err != nil || r != Owner {
		t.Errorf("RoleIn(own org) = %v, %v", r, err)
	}
	if r, err := s.RoleIn(p, b.ID); !errors.Is(err, ErrForbidden) || r != 0 {
		t.Errorf("RoleIn(other org) = %v, %v; want ErrForbidden", r, err)
	}
}

func TestAgentTokenHasNoPersonRole(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	plain, _, _ := s.CreateAgentToken(o.ID, "scout", "x")
	p, err := s.Authenticate(plain)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.RoleIn(p, o.ID); !errors.Is(err, ErrForbidden) || r != 0 {
		t.Errorf("RoleIn(agent) = %v, %v", r, err)
	}
	if _, err := s.RoleIn(Principal{}, o.ID); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("RoleIn(zero principal) = %v", err)
	}
}

func TestSessionRoleFollowsMembership(t *testing.T) {
	s, _ := openTest(t, newClock())
	a, b := mustOrg(t, s, "org-a"), mustOrg(t, s, "org-b")
	u := mustUser(t, s, "alice@example.com")
	owner := mustUser(t, s, "owner@example.com")
	s.AddMember(a.ID, owner.ID, Owner)
	s.AddMember(a.ID, u.ID, Admin)
	tok, _, _ := s.Login("alice@example.com", goodPassword)
	p, err := s.Authenticate(tok)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.RoleIn(p, a.ID); r != Admin || err != nil {
		t.Errorf("RoleIn = %v, %v", r, err)
	}
	if _, err := s.RoleIn(p, b.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("RoleIn(non-member org) = %v", err)
	}
	s.SetRole(a.ID, u.ID, Viewer)
	if r, _ := s.RoleIn(p, a.ID); r != Viewer {
		t.Errorf("RoleIn after demotion = %v", r)
	}
	s.RemoveMember(a.ID, u.ID)
	if _, err := s.RoleIn(p, a.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("RoleIn after removal = %v", err)
	}
}

// Theft of the database file: no password or token plaintext may appear in
// the database or its WAL.
func TestSecretsNotInDatabaseFiles(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "identity.db"), Options{Now: newClock().Now})
	boot, err := s.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RedeemBootstrap(boot, "root@example.com", []byte("first owner password")); err != nil {
		t.Fatal(err)
	}
	boot2 := "ckb_" + strings.Repeat("Q", 43) // never issued; just not stored either
	secondPW := []byte("second user's password")
	u := mustUser(t, s, "alice@example.com")
	if err := s.SetPassword(u.ID, secondPW); err != nil {
		t.Fatal(err)
	}
	session, _, err := s.Login("alice@example.com", secondPW)
	if err != nil {
		t.Fatal(err)
	}
	o := mustOrg(t, s, "acme")
	api, _ := mustToken(t, s, o.ID, Admin)
	agent, _, _ := s.CreateAgentToken(o.ID, "scout", "x")
	secrets := map[string][]byte{
		"bootstrap token": []byte(boot), "bootstrap password": []byte("first owner password"),
		"old password": goodPassword, "new password": secondPW,
		"session": []byte(session), "api token": []byte(api), "agent token": []byte(agent),
		// The random part alone must not be there either (say, stored without its prefix).
		"api token body": []byte(api[4:]), "session body": []byte(session[4:]),
		"unused": []byte(boot2),
	}
	check := func() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for what, sec := range secrets {
				if bytes.Contains(data, sec) {
					t.Errorf("%s found in %s", what, e.Name())
				}
			}
		}
	}
	check() // WAL still holds the recent pages
	s.Close()
	check()
}

func TestBootstrapSingleUse(t *testing.T) {
	s, _ := openTest(t, newClock())
	tok, err := s.Bootstrap()
	if err != nil || !strings.HasPrefix(tok, "ckb_") || len(tok) != 47 {
		t.Fatalf("Bootstrap = %q, %v", tok, err)
	}
	// Bad input does not burn the token.
	if _, err := s.RedeemBootstrap(tok, "root@example.com", []byte("short")); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("weak password: %v", err)
	}
	if _, err := s.RedeemBootstrap(tok, "not-an-email", goodPassword); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad email: %v", err)
	}
	u, err := s.RedeemBootstrap(tok, "root@example.com", goodPassword)
	if err != nil || !u.InstanceOwner || u.Email != "root@example.com" {
		t.Fatalf("RedeemBootstrap = %+v, %v", u, err)
	}
	if _, err := s.RedeemBootstrap(tok, "eve@example.com", goodPassword); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("second redeem: %v", err)
	}
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("bootstrap token as bearer: %v", err)
	}
	// Users exist now: no more bootstrap tokens.
	if tok2, err := s.Bootstrap(); tok2 != "" || err != nil {
		t.Errorf("Bootstrap with users = %q, %v", tok2, err)
	}
	if _, _, err := s.Login("root@example.com", goodPassword); err != nil {
		t.Errorf("first owner cannot log in: %v", err)
	}
}

func TestBootstrapRefusedOnceUsersExist(t *testing.T) {
	s, _ := openTest(t, newClock())
	tok, err := s.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	mustUser(t, s, "alice@example.com") // created by other means meanwhile
	if _, err := s.RedeemBootstrap(tok, "eve@example.com", goodPassword); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("redeem with users present: %v", err)
	}
	if _, err := s.UserByEmail("eve@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("eve was created: %v", err)
	}
}

func TestBootstrapReplacesEarlierTokenAndExpires(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, clk)
	first, _ := s.Bootstrap()
	second, _ := s.Bootstrap()
	if first == second {
		t.Fatal("same token twice")
	}
	if _, err := s.RedeemBootstrap(first, "eve@example.com", goodPassword); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("replaced token redeemed: %v", err)
	}
	clk.Add(24 * time.Hour)
	if _, err := s.RedeemBootstrap(second, "root@example.com", goodPassword); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token redeemed: %v", err)
	}
	third, _ := s.Bootstrap()
	if _, err := s.RedeemBootstrap(third, "root@example.com", goodPassword); err != nil {
		t.Errorf("fresh token: %v", err)
	}
}

// Racing the first owner: of many concurrent redeems of one bootstrap token
// exactly one creates a user.
func TestBootstrapConcurrentRedeemOneWins(t *testing.T) {
	s, _ := openTest(t, newClock())
	tok, err := s.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := "user" + string(rune('a'+i)) + "@example.com"
			_, err := s.RedeemBootstrap(tok, email, goodPassword)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrUnauthenticated):
				t.Errorf("redeem: %v", err)
			}
		}()
	}
	wg.Wait()
	var users int
	s.db.QueryRow(`SELECT count(*) FROM users`).Scan(&users)
	if wins.Load() != 1 || users != 1 {
		t.Errorf("%d redeems won, %d users; want 1 and 1", wins.Load(), users)
	}
}

// Revocation racing authentication: once RevokeToken has returned, no
// Authenticate that starts afterwards may accept the token, whatever the
// cache held.
func TestConcurrentAuthenticateAndRevoke(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	type pair struct {
		plain string
		id    string
	}
	var toks []pair
	for i := 0; i < 8; i++ {
		p, tk := mustToken(t, s, o.ID, Member)
		toks = append(toks, pair{p, tk.ID})
	}
	revoked := make([]atomic.Bool, len(toks))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (n + g) % len(toks)
				wasRevoked := revoked[i].Load()
				_, err := s.Authenticate(toks[i].plain)
				if wasRevoked && err == nil {
					t.Errorf("token %d accepted after its revocation returned", i)
					return
				}
				if !wasRevoked && err != nil && !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("Authenticate: %v", err)
					return
				}
			}
		}()
	}
	for i, tk := range toks {
		if err := s.RevokeToken(o.ID, tk.id); err != nil {
			t.Fatal(err)
		}
		revoked[i].Store(true)
		time.Sleep(time.Millisecond) // let the readers cycle; not a correctness threshold
	}
	close(stop)
	wg.Wait()
}

func BenchmarkAuthenticate(b *testing.B) {
	s, _ := openTest(b, newClock())
	o := mustOrg(b, s, "acme")
	plain, _ := mustToken(b, s, o.ID, Member)
	if _, err := s.Authenticate(plain); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Authenticate(plain); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func FuzzParseBearer(f *testing.F) {
	for _, p := range []string{prefixSession, prefixAPI, prefixAgent, prefixBootstrap} {
		plain, _, _ := newSecret(p)
		f.Add(plain)
	}
	f.Add("cks_" + strings.Repeat("A", 42) + "B")
	f.Add("cks_" + strings.Repeat("A", 42) + "\n") // the decoder skips LF
	f.Fuzz(func(t *testing.T, s string) {
		kind, h, ok := parseBearer(s)
		if !ok {
			return
		}
		// Accepted means: one of three prefixes, canonical encoding of 32
		// bytes (re-encoding gives the same string), hash of the whole.
		raw, err := b64.DecodeString(s[4:])
		if err != nil || len(raw) != 32 || s[:4]+b64.EncodeToString(raw) != s || !kind.IsValid() {
			t.Fatalf("accepted %q (kind %v)", s, kind)
		}
		if h2, _ := parseSecret(s, s[:4]); h2 != h {
			t.Fatal("hash differs")
		}
	})
}

func FuzzParsePHC(f *testing.F) {
	h := newHasher(tinyArgon2(), 1)
	stored, _ := h.hash(goodPassword)
	f.Add(stored)
	f.Add("$argon2id$v=19$m=10,t=1,p=1$00000000000$0000000000000000000000\r0") // the decoder skips CR
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("parsePHC(%q) round trips to %q", s, p.String())
		}
		if p.params.MemoryKiB > maxArgonMemoryKiB || p.params.Time > maxArgonTime {
			t.Fatalf("accepted unbounded parameters %+v", p.params)
		}
	})
}
