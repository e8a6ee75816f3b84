// Package ratelimit decides whether a request to `clawkeep serve` may be
// served now: cost-weighted token buckets per client address and per
// organisation, and a lockout for clients that keep failing to log in.
//
// The HTTP layer finds the client with [ClientIP], asks [Limiter.Allow]
// before doing any work and answers a refusal with [Refuse]:
//
//	ip, err := ratelimit.ClientIP(r, proxy)
//	if err != nil { http.Error(w, "bad client address", 400); return }
//	if ok, wait := lim.Allow(ip, org, ratelimit.Write); !ok { ratelimit.Refuse(w, wait); return }
//
// # Threat model
//
// Clients are hostile and numerous. One client floods to deny service to
// others; one tenant's clients together try to starve other tenants of the
// shared workers; a password guesser tries many logins; a client forges
// X-Forwarded-For to be counted as someone else, or as nobody; a flood of
// spoofed or rotating source addresses tries to exhaust the limiter's
// memory or to push its own entry out so that it starts afresh.
//
// Out of scope: an attacker controlling many networks (a botnet, or a large
// IPv6 allocation beyond /64) gets one budget per /32 or /64 it controls;
// only the per-organisation quota bounds what they can make one tenant's
// workers do. Clients behind one NAT share a budget and a lockout, so one of
// them can lock the others out of login; that is the price of not locking
// accounts, which would let anyone lock any account.
//
// # Guarantees
//
//   - Every request is charged; there is no unlimited client. Addresses
//     that cannot be known (the zero [netip.Addr]) share one bucket.
//   - IPv4-mapped IPv6 addresses are the IPv4 address; IPv6 addresses are
//     limited per /64, since one subscriber is routinely given a /64.
//   - A request is charged to its client and to its organisation together
//     or not at all.
//   - Memory is bounded by [Config.MaxClients] and [Config.MaxOrgs]. The
//     price is that an evicted client or organisation is forgotten: it
//     starts again with a full bucket and no failed logins.
//   - Forwarding headers are believed only from a configured trusted proxy.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Cost is what an operation spends from a bucket. It is at least 1; a
// smaller Cost is charged as 1, so no operation is free.
//
// With the default 200 tokens per second per client, the table reads as
// requests per second one client can sustain:
//
//	Read          1  a GET of stored state              200/s
//	Write         5  a change that touches a worker      40/s
//	Expensive    20  runs an agent, a tool or a hash     10/s
//	LoginFailure 50  a wrong password, charged on top   ~3/s, then lockout
//	                 of the attempt's own Expensive
//
// LoginFailure is high because a failed login is the guesser's signal:
// with the attempt's own Expensive charge a guess costs 70 tokens, and
// [Config.LockoutAfter] caps the number of guesses per LockoutFor.
type Cost int

// The operation classes; the HTTP layer picks one per route.
const (
	Read         Cost = 1
	Write        Cost = 5
	Expensive    Cost = 20
	LoginFailure Cost = 50
)

// Config tunes a [Limiter]. Zero fields take the defaults given; negative
// fields are invalid.
type Config struct {
	PerIP   rate.Limit // tokens per second refilled per client; zero = 200
	IPBurst int        // bucket size per client; zero = 400; at least LoginFailure
	// PerOrg is the quota shared by all clients of one organisation, so
	// that one tenant cannot occupy the workers every tenant shares.
	PerOrg   rate.Limit // zero = 2000
	OrgBurst int        // zero = 4000; at least Expensive

	// MaxClients bounds the number of client keys tracked, against floods
	// of spoofed or rotating sources. Beyond it the least recently used
	// client is forgotten, and if it comes back it starts with a full
	// bucket: set it well above the number of clients active within one
	// bucket refill time (IPBurst/PerIP). Zero = 100000 (about 15 MB).
	MaxClients int
	// MaxOrgs bounds the organisations tracked, in the same way. The org
	// passed to Allow must be an authenticated organisation id, never a
	// raw request value, or a client could cycle names to evict a busy
	// tenant's quota. Zero = 10000.
	MaxOrgs int

	LockoutAfter int           // failed logins from one client before lockout; zero = 20
	LockoutFor   time.Duration // lockout length, and how long failures are remembered; zero = 15 min

	// Now is the clock every decision uses; nil = time.Now. Test knob.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.PerIP == 0 {
		c.PerIP = 200
	}
	if c.IPBurst == 0 {
		c.IPBurst = 400
	}
	if c.PerOrg == 0 {
		c.PerOrg = 2000
	}
	if c.OrgBurst == 0 {
		c.OrgBurst = 4000
	}
	if c.MaxClients == 0 {
		c.MaxClients = 100000
	}
	if c.MaxOrgs == 0 {
		c.MaxOrgs = 10000
	}
	if c.LockoutAfter == 0 {
		c.LockoutAfter = 20
	}
	if c.LockoutFor == 0 {
		c.LockoutFor = 15 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrInvalidConfig is wrapped by [Config.Validate]'s errors.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// Validate reports whether c, with its defaults filled in, can build a
// Limiter. Configuration loaders call it so that [New] cannot panic.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	// An infinite rate would make a bucket that never refuses: exactly
	// what this package exists to prevent, so it is not a way to turn
	// limiting off.
	for _, f := range []struct {
		name string
		v    rate.Limit
	}{{"PerIP", c.PerIP}, {"PerOrg", c.PerOrg}} {
		if f.v < 0 || f.v == rate.Inf || math.IsInf(float64(f.v), 0) || math.IsNaN(float64(f.v)) {
			return bad("%s = %v, want a finite positive rate", f.name, f.v)
		}
	}
	// A burst below the largest cost would refuse that operation forever.
	if c.IPBurst < int(LoginFailure) {
		return bad("IPBurst = %d, want >= %d (LoginFailure)", c.IPBurst, LoginFailure)
	}
	if c.OrgBurst < int(Expensive) {
		return bad("OrgBurst = %d, want >= %d (Expensive)", c.OrgBurst, Expensive)
	}
	if c.MaxClients < 1 || c.MaxOrgs < 1 || c.LockoutAfter < 1 {
		return bad("MaxClients, MaxOrgs and LockoutAfter must be positive")
	}
	if c.LockoutFor < time.Second {
		return bad("LockoutFor = %v, want >= 1s", c.LockoutFor)
	}
	return nil
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg  Config            // defaults filled in; constant
	ips  *table[clientKey] // never nil
	orgs *table[string]    // never nil
	now  func() time.Time  // never nil
}

// New returns a Limiter for c. It panics if c.Validate fails: a limiter
// that silently fell back to defaults would hide the operator's mistake.
func New(c Config) *Limiter {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	c = c.withDefaults()
	l := &Limiter{cfg: c, now: c.Now}
	l.ips = newTable(c.MaxClients, hashClientKey, func() *rate.Limiter { return rate.NewLimiter(c.PerIP, c.IPBurst) })
	l.orgs = newTable(c.MaxOrgs, hashString, func() *rate.Limiter { return rate.NewLimiter(c.PerOrg, c.OrgBurst) })
	return l
}

// clientKey names the bucket an address is charged to: an IPv4 address
// in its 16-byte mapped form, an IPv6 /64 with the host half zero, or the
// one key for unknown clients (see keyOf). It is a plain array rather than
// a netip.Addr because hashing and comparing 16 bytes is cheaper on the
// hot path than an Addr with its zone handle.
type clientKey [16]byte

func keyOf(a netip.Addr) clientKey {
	if !a.IsValid() {
		// One key shared by every request whose client is unknown, so
		// that not knowing the client fails closed rather than open. No
		// address has this key: IPv6 keys end in eight zero bytes, IPv4
		// keys in ff ff and the address.
		return clientKey{15: 1}
	}
	a = a.Unmap()
	k := clientKey(a.As16()) // As16 drops any zone: it names an interface, not a host
	if !a.Is4() {
		// One subscriber holds a whole /64 and can rotate through it freely.
		clear(k[8:])
	}
	return k
}

// tokens is the number of tokens c takes from a bucket of size burst. A
// cost above the burst is charged as the whole burst: the operation then
// needs a full bucket, rather than being refused forever.
func (c Cost) tokens(burst int) int {
	return min(max(int(c), 1), burst)
}

// Allow spends cost from ip's bucket and, when org is not "", from org's
// bucket too. Both must have the tokens, and either both are charged or
// neither is. A refused request is not charged.
//
// When ok is false, retryAfter is how long until the same request would be
// allowed if nothing else spent meanwhile, rounded up to whole seconds and
// at least one second, ready for a Retry-After header.
func (l *Limiter) Allow(ip netip.Addr, org string, cost Cost) (ok bool, retryAfter time.Duration) {
	k := keyOf(ip)
	is := l.ips.shardFor(k)
	is.mu.Lock()
	defer is.mu.Unlock()
	// The clock is read under the lock so that one bucket sees its
	// instants in order, as rate.Limiter assumes.
	now := l.now()
	ie := l.ips.getLocked(is, k, now)
	in := cost.tokens(l.cfg.IPBurst)
	if org == "" {
		if ie.bucket.AllowN(now, in) {
			return true, 0
		}
		return false, roundUp(shortfall(ie.bucket, l.cfg.PerIP, now, in))
	}

	// Lock order: a client shard, then an organisation shard; never the
	// other way round.
	os := l.orgs.shardFor(org)
	os.mu.Lock()
	defer os.mu.Unlock()
	oe := l.orgs.getLocked(os, org, now)
	on := cost.tokens(l.cfg.OrgBurst)
	// Look before spending: rate.Limiter can only give tokens back through
	// reservations, which allocate, and both locks are held, so what is
	// seen here is what AllowN will find.
	wait := max(shortfall(ie.bucket, l.cfg.PerIP, now, in), shortfall(oe.bucket, l.cfg.PerOrg, now, on))
	if wait > 0 {
		return false, roundUp(wait)
	}
	if !ie.bucket.AllowN(now, in) || !oe.bucket.AllowN(now, on) {
		panic("ratelimit: internal error: bucket refused after its tokens were checked")
	}
	return true, 0
}

// shortfall is how long until b, refilled at limit, holds n tokens; 0 if
// it does now. limit is passed in because b.Limit() would take b's lock.
func shortfall(b *rate.Limiter, limit rate.Limit, now time.Time, n int) time.Duration {
	missing := float64(n) - b.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	secs := missing / float64(limit)
	if secs >= maxRetryAfter.Seconds() { // also keeps the conversion in range
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

// maxRetryAfter caps Retry-After so that the arithmetic cannot overflow;
// no real wait comes near it.
const maxRetryAfter = 24 * time.Hour

// roundUp rounds d up to whole seconds, at least one: clients that retry
// early are refused again, so rounding down would only invite them.
func roundUp(d time.Duration) time.Duration {
	if d >= maxRetryAfter {
		return maxRetryAfter
	}
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

// LoginFailed charges LoginFailure to ip, even beyond an empty bucket, and
// counts towards ip's lockout. The LockoutAfter-th failure within LockoutFor
// of the previous one locks ip out of logins for LockoutFor. Failures while
// locked out are charged but do not lengthen the lockout, so a guesser
// cannot keep a NAT's other users out indefinitely by failing on purpose.
func (l *Limiter) LoginFailed(ip netip.Addr) {
	k := keyOf(ip)
	s := l.ips.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := l.now()
	e := l.ips.getLocked(s, k, now)

	// The charge may go into debt, so that a guesser on an empty bucket
	// still pays, but the debt stays under IPBurst+LoginFailure, which
	// bounds the wait that follows.
	if e.bucket.TokensAt(now) > -float64(l.cfg.IPBurst) {
		e.bucket.ReserveN(now, LoginFailure.tokens(l.cfg.IPBurst))
	}

	st := e.login
	if st == nil {
		st = &loginState{}
		e.login = st
	}
	if st.lockedAt(now) {
		return
	}
	if !st.lastFailure.IsZero() && now.Sub(st.lastFailure) >= l.cfg.LockoutFor {
		st.failures = 0 // a shared address's occasional typos do not add up
	}
	st.failures++
	st.lastFailure = now
	if st.failures >= l.cfg.LockoutAfter {
		st.failures = 0
		st.lockedUntil = now.Add(l.cfg.LockoutFor)
	}
}

// LoginSucceeded forgets ip's failed logins. It does not lift a lockout in
// force: the caller should not have tried the password during one.
func (l *Limiter) LoginSucceeded(ip netip.Addr) {
	k := keyOf(ip)
	s := l.ips.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.peekLocked(k)
	if e == nil || e.login == nil {
		return
	}
	if e.login.lockedAt(l.now()) {
		e.login.failures = 0
		return
	}
	e.login = nil
}

// LoginAllowed reports whether ip may attempt a login now, that is whether
// it is not locked out; if not, retryAfter is the rest of the lockout,
// rounded up to whole seconds. It does not charge: the attempt itself goes
// through Allow (typically at Expensive) like any request.
func (l *Limiter) LoginAllowed(ip netip.Addr) (ok bool, retryAfter time.Duration) {
	k := keyOf(ip)
	s := l.ips.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.peekLocked(k)
	if e == nil {
		return true, 0
	}
	now := l.now()
	if !e.login.lockedAt(now) {
		return true, 0
	}
	return false, roundUp(e.login.lockedUntil.Sub(now))
}
