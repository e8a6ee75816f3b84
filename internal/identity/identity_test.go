package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tinyArgon2 keeps tests fast; production parameters are the zero value.
func tinyArgon2() Argon2Params { return Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1} }

func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = tinyArgon2()
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTest(t testing.TB, clk *clock) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identity.db")
	return openAt(t, path, Options{Now: clk.Now}), path
}

var goodPassword = []byte("correct horse battery staple")

func mustUser(t testing.TB, s *Store, email string) User {
	t.Helper()
	u, err := s.CreateUser(email, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustOrg(t testing.TB, s *Store, name string) Org {
	t.Helper()
	o, err := s.CreateOrg(name)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestParseRole(t *testing.T) {
	for s, want := range map[string]Role{"viewer": Viewer, "member": Member, "admin": Admin, "owner": Owner} {
		got, err := ParseRole(s)
		if err != nil || got != want || got.String() != s || !got.IsValid() {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{
		"",          // empty
		"Owner",     // only lower case is canonical
		"OWNER",     // ditto
		" owner",    // no trimming: the caller must send the exact word
		"owner ",    // ditto
		"owner\x00", // NUL smuggling past a C-string comparison
		"root",      // not a role
		"superuser", // not a role
		"4",         // numeric forms are not accepted
		"0",         // the invalid zero role by number
		"admin,owner",
		"ownеr", // Cyrillic е homoglyph
	} {
		if r, err := ParseRole(s); !errors.Is(err, ErrInvalid) || r != 0 {
			t.Errorf("ParseRole(%q) = %v, %v; want ErrInvalid", s, r, err)
		}
	}
}

func TestRoleOrdering(t *testing.T) {
	roles := []Role{Viewer, Member, Admin, Owner}
	for i, r := range roles {
		for j, min := range roles {
			if got := r.AtLeast(min); got != (i >= j) {
				t.Errorf("%v.AtLeast(%v) = %v", r, min, got)
			}
		}
		// An invalid role on either side never passes.
		for _, bad := range []Role{0, 5, 255} {
			if r.AtLeast(bad) || bad.AtLeast(r) || bad.AtLeast(Viewer) {
				t.Errorf("AtLeast with invalid role %d passed against %v", bad, r)
			}
			if bad.IsValid() {
				t.Errorf("Role(%d).IsValid() = true", bad)
			}
		}
	}
	if Role(0).AtLeast(0) {
		t.Error("zero role passed a zero minimum")
	}
}

func TestOrgNames(t *testing.T) {
	s, _ := openTest(t, newClock())
	a := mustOrg(t, s, "acme")
	b := mustOrg(t, s, "0-b2")
	if a.ID < 1 || b.ID <= a.ID {
		t.Errorf("ids %d, %d", a.ID, b.ID)
	}
	if _, err := s.CreateOrg("acme"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate org: %v", err)
	}
	for _, name := range []string{
		"",                      // empty
		"-acme",                 // leading dash
		"Acme",                  // upper case would give two spellings of one name
		"acme corp",             // space
		"acme/../x",             // path traversal in a directory named after the org
		"acme\n",                // newline: log injection
		"acmé",                  // non-ASCII
		strings.Repeat("a", 64), // too long
	} {
		if _, err := s.CreateOrg(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateOrg(%q) = %v; want ErrInvalid", name, err)
		}
	}
	got, err := s.Org("acme")
	if err != nil || got != a {
		t.Errorf("Org(acme) = %v, %v; want %v", got, err, a)
	}
	if _, err := s.Org("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Org(nope) = %v", err)
	}
	orgs, err := s.Orgs()
	if err != nil || len(orgs) != 2 || orgs[0] != b || orgs[1] != a {
		t.Errorf("Orgs() = %v, %v", orgs, err)
	}
}

func TestUserEmailsAndPasswords(t *testing.T) {
	s, _ := openTest(t, newClock())
	u := mustUser(t, s, "  Alice@Example.COM ")
	if u.Email != "alice@example.com" || u.ID < 1 || u.InstanceOwner {
		t.Errorf("user %+v", u)
	}
	if _, err := s.CreateUser("alice@example.com", goodPassword); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate email differing in case: %v", err)
	}
	if got, err := s.UserByEmail("ALICE@example.com"); err != nil || got != u {
		t.Errorf("UserByEmail = %v, %v", got, err)
	}
	if _, err := s.UserByEmail("bob@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByEmail(unknown) = %v", err)
	}
	for _, e := range []string{
		"",                                 // empty
		"alice",                            // no @
		"@example.com",                     // no local part
		"alice@",                           // no domain
		"a@b@c",                            // two @
		"al ice@example.com",               // inner space
		"alice@exa\nmple.com",              // newline: header/log injection
		"alice\u202e@example.com",          // bidi override makes the address display differently
		strings.Repeat("a", 250) + "@b.co", // over 254 bytes
	} {
		if _, err := s.CreateUser(e, goodPassword); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateUser(%q) = %v; want ErrInvalid", e, err)
		}
	}
	for _, pw := range [][]byte{nil, []byte("short"), []byte("elevenchars"), bytes.Repeat([]byte("x"), 1025)} {
		if _, err := s.CreateUser("bob@example.com", pw); !errors.Is(err, ErrWeakPassword) {
			t.Errorf("CreateUser with %d-byte password = %v; want ErrWeakPassword", len(pw), err)
		}
	}
	if _, err := s.CreateUser("bob@example.com", bytes.Repeat([]byte("x"), 1024)); err != nil {
		t.Errorf("1024-byte password refused: %v", err)
	}
}

func TestPasswordStoredAsArgon2idWithUniqueSalt(t *testing.T) {
	s, _ := openTest(t, newClock())
	mustUser(t, s, "a@example.com")
	mustUser(t, s, "b@example.com")
	rows, err := s.db.Query(`SELECT password FROM users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	var salts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(h) {
			t.Errorf("stored hash %q is not an Argon2id PHC string", h)
		}
		if _, err := parsePHC(h); err != nil {
			t.Errorf("parsePHC(%q): %v", h, err)
		}
		salts = append(salts, strings.Split(h, "$")[4])
	}
	if len(salts) != 2 || salts[0] == salts[1] {
		t.Errorf("same password, salts %v: want two different ones", salts)
	}
}

func TestDefaultArgon2IsProduction(t *testing.T) {
	p, err := Argon2Params{}.withDefaults()
	if err != nil || p != (Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}) {
		t.Errorf("default params %+v, %v", p, err)
	}
	if _, err := (Argon2Params{Time: 0, MemoryKiB: 64, Threads: 1}).withDefaults(); !errors.Is(err, ErrInvalid) {
		t.Errorf("time 0 accepted: %v", err)
	}
}

func TestLogin(t *testing.T) {
	s, _ := openTest(t, newClock())
	u := mustUser(t, s, "alice@example.com")
	tok, got, err := s.Login("Alice@Example.com", goodPassword)
	if err != nil || got != u || !strings.HasPrefix(tok, "cks_") || len(tok) != 47 {
		t.Fatalf("Login = %q, %v, %v", tok, got, err)
	}
	p, err := s.Authenticate(tok)
	if err != nil || p.Kind != Session || p.User != u || p.TokenID == "" {
		t.Errorf("Authenticate(session) = %+v, %v", p, err)
	}
	for _, pw := range [][]byte{[]byte("correct horse battery stapl"), []byte("Correct horse battery staple"), nil,
		append(append([]byte{}, goodPassword...), bytes.Repeat([]byte("x"), 5000)...)} {
		if _, _, err := s.Login("alice@example.com", pw); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Login with wrong %d-byte password = %v", len(pw), err)
		}
	}
	if err := s.Logout(tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("session still valid after Logout: %v", err)
	}
}

// Account enumeration: a login for an email without an account must do the
// same Argon2id work as one with a wrong password. Counted, not timed.
func TestLoginUnknownEmailStillHashes(t *testing.T) {
	s, _ := openTest(t, newClock())
	mustUser(t, s, "alice@example.com")
	for _, email := range []string{"alice@example.com", "nobody@example.com", "not an email"} {
		before := s.hasher.runs.Load()
		_, _, err := s.Login(email, []byte("wrong password!!"))
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Login(%q) = %v; want ErrBadCredentials", email, err)
		}
		if n := s.hasher.runs.Load() - before; n != 1 {
			t.Errorf("Login(%q) ran Argon2id %d times; want 1", email, n)
		}
	}
}

func TestLoginLockout(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "identity.db")
	s := openAt(t, path, Options{Now: clk.Now, LockoutAfter: 3, LockoutFor: 10 * time.Minute})
	mustUser(t, s, "alice@example.com")
	for i := 0; i < 3; i++ {
		if _, _, err := s.Login("alice@example.com", []byte("guess number "+string(rune('0'+i)))); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// The right password is refused while locked, and costs no hash.
	before := s.hasher.runs.Load()
	if _, _, err := s.Login("alice@example.com", goodPassword); !errors.Is(err, ErrLocked) {
		t.Fatalf("right password after 3 failures: %v; want ErrLocked", err)
	}
	clk.Add(9 * time.Minute)
	if _, _, err := s.Login("alice@example.com", goodPassword); !errors.Is(err, ErrLocked) {
		t.Fatalf("right password 9 minutes into the lock: %v; want ErrLocked", err)
	}
	if n := s.hasher.runs.Load() - before; n != 0 {
		t.Errorf("locked logins ran Argon2id %d times", n)
	}
	clk.Add(time.Minute)
	if _, _, err := s.Login("alice@example.com", goodPassword); err != nil {
		t.Fatalf("right password after the lock ran out: %v", err)
	}
	// Success reset the count: two more failures do not lock.
	for i := 0; i < 2; i++ {
		s.Login("alice@example.com", []byte("another wrong guess"))
	}
	if _, _, err := s.Login("alice@example.com", goodPassword); err != nil {
		t.Errorf("count not reset by success: %v", err)
	}
}

// Account enumeration through lockout: an email without an account must
// lock like one with an account, or ErrLocked would reveal which exist.
func TestLockoutDoesNotRevealUnknownEmails(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "identity.db"), Options{Now: newClock().Now, LockoutAfter: 2})
	mustUser(t, s, "alice@example.com")
	for _, email := range []string{"alice@example.com", "nobody@example.com"} {
		var errs []error
		for i := 0; i < 4; i++ {
			_, _, err := s.Login(email, []byte("wrong password!!"))
			errs = append(errs, err)
		}
		want := []error{ErrBadCredentials, ErrBadCredentials, ErrLocked, ErrLocked}
		for i := range want {
			if !errors.Is(errs[i], want[i]) {
				t.Errorf("%s attempt %d: %v; want %v", email, i, errs[i], want[i])
			}
		}
	}
}

// Parallel guessing: firing many guesses at once must not let more than
// LockoutAfter of them reach the password check.
func TestParallelGuessesCannotExceedLockout(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "identity.db"), Options{Now: newClock().Now, LockoutAfter: 5})
	mustUser(t, s, "alice@example.com")
	var bad, locked atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Login("alice@example.com", []byte("parallel wrong guess"))
			switch {
			case errors.Is(err, ErrBadCredentials):
				bad.Add(1)
			case errors.Is(err, ErrLocked):
				locked.Add(1)
			default:
				t.Errorf("Login: %v", err)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 5 || bad.Load()+locked.Load() != 40 {
		t.Errorf("%d guesses checked, %d locked; want at most 5 checked", bad.Load(), locked.Load())
	}
	if _, _, err := s.Login("alice@example.com", goodPassword); !errors.Is(err, ErrLocked) {
		t.Errorf("right password after the burst: %v; want ErrLocked", err)
	}
}

func TestSetPasswordEndsSessions(t *testing.T) {
	s, _ := openTest(t, newClock())
	u := mustUser(t, s, "alice@example.com")
	tok, _, err := s.Login("alice@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(tok); err != nil { // now cached
		t.Fatal(err)
	}
	newPW := []byte("a brand new password")
	if err := s.SetPassword(u.ID, newPW); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("stolen session survives a password change: %v", err)
	}
	if _, _, err := s.Login("alice@example.com", goodPassword); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password still works: %v", err)
	}
	if _, _, err := s.Login("alice@example.com", newPW); err != nil {
		t.Errorf("new password: %v", err)
	}
	if err := s.SetPassword(u.ID, []byte("short")); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("weak new password: %v", err)
	}
	if err := s.SetPassword(9999, newPW); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(unknown user): %v", err)
	}
}

func TestSessionExpires(t *testing.T) {
	clk := newClock()
	s := openAt(t, filepath.Join(t.TempDir(), "identity.db"), Options{Now: clk.Now, SessionTTL: time.Hour})
	mustUser(t, s, "alice@example.com")
	tok, _, err := s.Login("alice@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour - time.Second)
	if _, err := s.Authenticate(tok); err != nil { // cached until the expiry, not past it
		t.Fatalf("session before expiry: %v", err)
	}
	clk.Add(time.Second)
	if _, err := s.Authenticate(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("session at expiry: %v", err)
	}
}

func TestMembersAndRoles(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	a, b := mustUser(t, s, "a@example.com"), mustUser(t, s, "b@example.com")
	if err := s.AddMember(o.ID, a.ID, Owner); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(o.ID, b.ID, Viewer); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(o.ID, b.ID, Admin); !errors.Is(err, ErrExists) {
		t.Errorf("second AddMember: %v", err)
	}
	if err := s.AddMember(o.ID, 9999, Admin); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMember(unknown user): %v", err)
	}
	if err := s.AddMember(9999, a.ID, Admin); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMember(unknown org): %v", err)
	}
	if err := s.AddMember(o.ID, b.ID, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddMember(role 0): %v", err)
	}
	if err := s.SetRole(o.ID, b.ID, Admin); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RoleOf(o.ID, b.ID); r != Admin || err != nil {
		t.Errorf("RoleOf = %v, %v", r, err)
	}
	ms, err := s.Members(o.ID)
	if err != nil || len(ms) != 2 || ms[0].User != a || ms[0].Role != Owner || ms[1].Role != Admin {
		t.Errorf("Members = %+v, %v", ms, err)
	}
	if err := s.RemoveMember(o.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RoleOf(o.ID, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("RoleOf after removal: %v", err)
	}
	if err := s.RemoveMember(o.ID, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second RemoveMember: %v", err)
	}
}

// Orphaning an organisation: the last owner can neither be demoted nor
// removed, also when two owners try to step down at the same moment.
func TestLastOwnerCannotBeDemotedOrRemoved(t *testing.T) {
	s, _ := openTest(t, newClock())
	o := mustOrg(t, s, "acme")
	a, b := mustUser(t, s, "a@example.com"), mustUser(t, s, "b@example.com")
	s.AddMember(o.ID, a.ID, Owner)
	if err := s.SetRole(o.ID, a.ID, Admin); !errors.Is(err, ErrLastOwner) {
		t.Errorf("demoting the last owner: %v", err)
	}
	if err := s.RemoveMember(o.ID, a.ID); !errors.Is(err, ErrLastOwner) {
		t.Errorf("removing the last owner: %v", err)
	}
	if err := s.SetRole(o.ID, a.ID, Owner); err != nil {
		t.Errorf("owner to owner: %v", err)
	}

	for round := 0; round < 10; round++ {
		org := mustOrg(t, s, "race-"+string(rune('a'+round)))
		for _, u := range []User{a, b} {
			if err := s.AddMember(org.ID, u.ID, Owner); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, u := range []User{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if round%2 == 0 {
					errs[i] = s.SetRole(org.ID, u.ID, Member)
				} else {
					errs[i] = s.RemoveMember(org.ID, u.ID)
				}
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, ErrLastOwner) {
				t.Fatal(err)
			}
		}
		ms, _ := s.Members(org.ID)
		owners := 0
		for _, m := range ms {
			if m.Role == Owner {
				owners++
			}
		}
		if ok != 1 || owners != 1 {
			t.Fatalf("round %d: %d of two racing owners stepped down, %d owners left (%v)", round, ok, owners, errs)
		}
	}
}

func TestReopenPersists(t *testing.T) {
	clk := newClock()
	s, path := openTest(t, clk)
	o := mustOrg(t, s, "acme")
	u := mustUser(t, s, "alice@example.com")
	s.AddMember(o.ID, u.ID, Admin)
	session, _, err := s.Login("alice@example.com", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	api, tok, err := s.CreateToken(o.ID, "ci", Viewer, "alice@example.com", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	s2 := openAt(t, path, Options{Now: clk.Now})
	if got, err := s2.Org("acme"); err != nil || got != o {
		t.Errorf("org after reopen: %v, %v", got, err)
	}
	if r, err := s2.RoleOf(o.ID, u.ID); err != nil || r != Admin {
		t.Errorf("role after reopen: %v, %v", r, err)
	}
	if p, err := s2.Authenticate(session); err != nil || p.User != u {
		t.Errorf("session after reopen: %+v, %v", p, err)
	}
	if p, err := s2.Authenticate(api); err != nil || p.TokenID != tok.ID || p.Role != Viewer {
		t.Errorf("API token after reopen: %+v, %v", p, err)
	}
	if _, _, err := s2.Login("alice@example.com", goodPassword); err != nil {
		t.Errorf("login after reopen: %v", err)
	}
	o2 := mustOrg(t, s2, "beta")
	if o2.ID <= o.ID {
		t.Errorf("org id %d reused or decreasing after %d", o2.ID, o.ID)
	}
}

func TestDatabaseFileIsPrivate(t *testing.T) {
	_, path := openTest(t, newClock())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTest(t, newClock())
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, Options{Argon2: tinyArgon2()}); err == nil {
		t.Error("opened a store from a newer program")
	}
}
