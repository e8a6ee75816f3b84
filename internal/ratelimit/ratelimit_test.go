package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is the test knob behind Config.Now: time moves only when a
// test says so, so no test depends on how fast the machine is.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLimiter(t *testing.T, c Config) (*Limiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	c.Now = clk.Now
	return New(c), clk
}

var (
	ipA = netip.MustParseAddr("198.51.100.7")
	ipB = netip.MustParseAddr("203.0.113.9")
)

// drain spends cost from ip until refused and returns how many were allowed
// and the refusal's retryAfter.
func drain(t *testing.T, l *Limiter, ip netip.Addr, org string, cost Cost) (int, time.Duration) {
	t.Helper()
	for n := 0; n < 1_000_000; n++ {
		if ok, wait := l.Allow(ip, org, cost); !ok {
			return n, wait
		}
	}
	t.Fatalf("%v never refused", ip)
	return 0, 0
}

func TestFloodingIPGetsRefusedWhileOtherIPServed(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 10, IPBurst: 100})
	n, wait := drain(t, l, ipA, "", Read)
	if n != 100 {
		t.Errorf("flooder got %d reads from a burst of 100", n)
	}
	if wait < time.Second {
		t.Errorf("retryAfter = %v, want >= 1s", wait)
	}
	for range 50 {
		if ok, _ := l.Allow(ipA, "", Read); ok {
			t.Fatal("flooder allowed again without time passing")
		}
	}
	if ok, wait := l.Allow(ipB, "", Read); !ok {
		t.Fatalf("bystander refused (retryAfter %v) because another IP flooded", wait)
	}
}

func TestExpensiveOperationsDrainFasterThanReadsAndRefill(t *testing.T) {
	l, clk := newTestLimiter(t, Config{PerIP: 10, IPBurst: 100})
	reads, _ := drain(t, l, ipA, "", Read)
	expensive, wait := drain(t, l, ipB, "", Expensive)
	if reads != 100 || expensive != 100/int(Expensive) {
		t.Fatalf("a burst of 100 gave %d reads and %d expensive ops, want 100 and %d", reads, expensive, 100/int(Expensive))
	}
	if wait != 2*time.Second { // 20 tokens at 10/s
		t.Errorf("expensive retryAfter = %v, want 2s", wait)
	}
	clk.Advance(wait)
	if ok, _ := l.Allow(ipB, "", Expensive); !ok {
		t.Error("expensive op refused after waiting retryAfter")
	}
	clk.Advance(time.Hour)
	if n, _ := drain(t, l, ipA, "", Write); n != 100/int(Write) {
		t.Errorf("after a long refill a full bucket gave %d writes, want %d", n, 100/int(Write))
	}
}

// Retry-After must be honest: waiting it out gets the request through, and
// it is whole seconds, never zero.
func TestRetryAfterIsEnoughAndWholeSeconds(t *testing.T) {
	l, clk := newTestLimiter(t, Config{PerIP: 3, IPBurst: 60, PerOrg: 7, OrgBurst: 40})
	for _, tc := range []struct {
		org  string
		cost Cost
	}{{"", Read}, {"", Write}, {"", Expensive}, {"o", Read}, {"o", Expensive}} {
		ip := netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 10+int(tc.cost)+len(tc.org)))
		_, wait := drain(t, l, ip, tc.org, tc.cost)
		if wait < time.Second || wait%time.Second != 0 {
			t.Fatalf("%+v: retryAfter = %v, want whole seconds >= 1s", tc, wait)
		}
		if wait > time.Second {
			clk.Advance(wait - time.Second)
			if ok, _ := l.Allow(ip, tc.org, tc.cost); ok && tc.org == "" {
				// With an org the other bucket may have refilled enough;
				// a lone bucket must not be early by a whole second.
				t.Errorf("%+v: allowed a second before retryAfter %v", tc, wait)
			}
			clk.Advance(time.Second)
		} else {
			clk.Advance(wait)
		}
		if ok, again := l.Allow(ip, tc.org, tc.cost); !ok {
			t.Errorf("%+v: still refused after waiting retryAfter %v (now %v)", tc, wait, again)
		}
		clk.Advance(time.Hour) // start the next case from full buckets
	}
}

func TestOrgQuotaStopsOneTenantStarvingOthers(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 10, IPBurst: 100, PerOrg: 10, OrgBurst: 500})
	allowed := 0
	var wait time.Duration
	for i := range 100 { // 100 clients, each well within its own budget
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})
		for range 10 {
			ok, w := l.Allow(ip, "a", Write)
			if ok {
				allowed++
			} else {
				wait = w
			}
		}
	}
	if allowed != 500/int(Write) {
		t.Errorf("org a got %d writes from an org burst of 500, want %d", allowed, 500/int(Write))
	}
	if wait < time.Second {
		t.Errorf("org refusal retryAfter = %v, want >= 1s", wait)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("10.9.9.9"), "b", Write); !ok {
		t.Error("tenant b refused because tenant a exhausted its own quota")
	}
}

// No partial spend: when the org refuses, the client's tokens stay.
func TestOrgRefusalDoesNotSpendClientTokens(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100, PerOrg: 1, OrgBurst: 20})
	other := netip.MustParseAddr("192.0.2.200")
	if n, _ := drain(t, l, other, "a", Read); n != 20 {
		t.Fatalf("org burst gave %d, want 20", n)
	}
	for range 500 {
		if ok, _ := l.Allow(ipA, "a", Read); ok {
			t.Fatal("allowed past an empty org bucket")
		}
	}
	if n, _ := drain(t, l, ipA, "", Read); n != 100 {
		t.Errorf("after 500 org refusals the client has %d tokens, want all 100", n)
	}
}

// No partial spend the other way: a flooding client of org a does not use
// up org a's quota with requests it is refused anyway.
func TestClientRefusalDoesNotSpendOrgQuota(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 50, PerOrg: 1, OrgBurst: 200})
	if n, _ := drain(t, l, ipA, "a", Read); n != 50 {
		t.Fatalf("client burst gave %d, want 50", n)
	}
	for range 1000 {
		l.Allow(ipA, "a", Read)
	}
	if n, _ := drain(t, l, ipB, "a", Read); n != 50 {
		t.Errorf("another client of org a got %d, want its own 50 (org had 150 left)", n)
	}
	rest := 0
	for i := range 3 {
		n, _ := drain(t, l, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), "a", Read)
		rest += n
	}
	if rest != 100 {
		t.Errorf("more clients got %d together, want the org's remaining 100", rest)
	}
}

func TestPasswordGuessingLocksOutThenUnlocks(t *testing.T) {
	l, clk := newTestLimiter(t, Config{LockoutAfter: 5, LockoutFor: 10 * time.Minute})
	for i := range 4 {
		l.LoginFailed(ipA)
		if ok, _ := l.LoginAllowed(ipA); !ok {
			t.Fatalf("locked out after %d failures, want 5", i+1)
		}
	}
	l.LoginFailed(ipA)
	ok, wait := l.LoginAllowed(ipA)
	if ok || wait != 10*time.Minute {
		t.Fatalf("after 5 failures LoginAllowed = %v, %v; want false, 10m", ok, wait)
	}
	if ok, _ := l.LoginAllowed(ipB); !ok {
		t.Error("another IP locked out by ipA's guessing")
	}
	clk.Advance(10*time.Minute - 1500*time.Millisecond)
	if ok, wait := l.LoginAllowed(ipA); ok || wait != 2*time.Second {
		t.Errorf("1.5s before the end LoginAllowed = %v, %v; want false, 2s (rounded up)", ok, wait)
	}
	clk.Advance(1500 * time.Millisecond)
	if ok, _ := l.LoginAllowed(ipA); !ok {
		t.Fatal("still locked out after LockoutFor")
	}
	// The count started again: one more failure does not relock.
	l.LoginFailed(ipA)
	if ok, _ := l.LoginAllowed(ipA); !ok {
		t.Error("one failure after a lockout relocked at once")
	}
}

func TestLoginSuccessResetsFailureCount(t *testing.T) {
	l, _ := newTestLimiter(t, Config{LockoutAfter: 3})
	for range 10 {
		l.LoginFailed(ipA)
		l.LoginFailed(ipA)
		l.LoginSucceeded(ipA)
	}
	if ok, _ := l.LoginAllowed(ipA); !ok {
		t.Error("locked out although every third attempt succeeded")
	}
}

// A guesser who keeps failing while locked out (a caller that forgot to
// check LoginAllowed) does not extend the lockout for everyone behind its
// NAT, and a success does not lift it early.
func TestFailuresDuringLockoutDoNotExtendIt(t *testing.T) {
	l, clk := newTestLimiter(t, Config{LockoutAfter: 2, LockoutFor: time.Minute})
	l.LoginFailed(ipA)
	l.LoginFailed(ipA)
	clk.Advance(30 * time.Second)
	for range 100 {
		l.LoginFailed(ipA)
	}
	l.LoginSucceeded(ipA)
	if ok, wait := l.LoginAllowed(ipA); ok || wait != 30*time.Second {
		t.Errorf("LoginAllowed = %v, %v; want false, 30s", ok, wait)
	}
	clk.Advance(30 * time.Second)
	if ok, _ := l.LoginAllowed(ipA); !ok {
		t.Error("lockout outlasted LockoutFor")
	}
}

// Occasional typos from a shared address, further apart than LockoutFor,
// never add up to a lockout.
func TestOldLoginFailuresAreForgotten(t *testing.T) {
	l, clk := newTestLimiter(t, Config{LockoutAfter: 3, LockoutFor: time.Minute})
	for range 20 {
		l.LoginFailed(ipA)
		clk.Advance(time.Minute)
	}
	if ok, _ := l.LoginAllowed(ipA); !ok {
		t.Error("locked out by failures a LockoutFor apart")
	}
}

func TestLoginFailureChargesTheClientBucket(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	l.LoginFailed(ipA)
	if n, _ := drain(t, l, ipA, "", Read); n != 100-int(LoginFailure) {
		t.Errorf("after one failed login %d reads left, want %d", n, 100-int(LoginFailure))
	}
	// Failures go into debt, so a guesser cannot fail for free on an empty
	// bucket, but the debt is bounded by one burst.
	for range 50 {
		l.LoginFailed(ipA)
	}
	_, wait := drain(t, l, ipA, "", Read)
	if wait < 100*time.Second || wait > 201*time.Second {
		t.Errorf("retryAfter after many failures = %v, want between 100s and 201s", wait)
	}
}

func TestLoginAllowedForUnknownClientTakesNoMemory(t *testing.T) {
	l, _ := newTestLimiter(t, Config{})
	for i := range 1000 {
		l.LoginAllowed(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
		l.LoginSucceeded(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	if n := l.ips.len(); n != 0 {
		t.Errorf("read-only login checks created %d entries", n)
	}
}

func TestIPv6RotationWithinSlash64SharesBucket(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	allowed := 0
	for i := range 1000 { // a new address from the same /64 for every request
		ip := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2:%x:%x::%x", (i*7919)&0xffff, i, i+1))
		if ok, _ := l.Allow(ip, "", Read); ok {
			allowed++
		}
	}
	if allowed != 100 {
		t.Errorf("rotating within one /64 got %d reads, want the one bucket's 100", allowed)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:3::1"), "", Read); !ok {
		t.Error("the neighbouring /64 was charged too")
	}
}

func TestIPv4MappedSameAsIPv4(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	mapped := netip.MustParseAddr("::ffff:198.51.100.7")
	for i := range 100 {
		ip := ipA
		if i%2 == 1 {
			ip = mapped
		}
		if ok, _ := l.Allow(ip, "", Read); !ok {
			t.Fatalf("refused after %d", i)
		}
	}
	if ok, _ := l.Allow(mapped, "", Read); ok {
		t.Error("the IPv4-mapped form has a bucket of its own")
	}
	if ok, _ := l.Allow(ipA, "", Read); ok {
		t.Error("the IPv4 form has a bucket of its own")
	}
}

// A zone names the server's interface, not the client: it must not give a
// link-local client a fresh bucket.
func TestIPv6ZoneDoesNotGiveFreshBucket(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	drain(t, l, netip.MustParseAddr("fe80::1%eth0"), "", Read)
	if ok, _ := l.Allow(netip.MustParseAddr("fe80::1%eth1"), "", Read); ok {
		t.Error("changing the zone gave a fresh bucket")
	}
}

// Not knowing the client must not mean not limiting it.
func TestUnknownClientSharesOneLimitedBucket(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	if n, _ := drain(t, l, netip.Addr{}, "", Read); n != 100 {
		t.Errorf("unknown clients got %d, want one bucket's 100", n)
	}
	if ok, _ := l.Allow(netip.IPv6Unspecified(), "", Read); !ok {
		t.Error(":: shares the unknown bucket")
	}
}

func TestCostBelowOneIsStillCharged(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100})
	for _, c := range []Cost{0, -1, -1 << 40} {
		if n, _ := drain(t, l, netip.AddrFrom4([4]byte{192, 0, 2, byte(100 - c%7)}), "", c); n != 100 {
			t.Errorf("cost %d: got %d requests from a burst of 100, want 100", c, n)
		}
	}
}

func TestCostAboveBurstNeedsFullBucket(t *testing.T) {
	l, clk := newTestLimiter(t, Config{PerIP: 10, IPBurst: 100})
	if ok, _ := l.Allow(ipA, "", 1000); !ok {
		t.Fatal("cost above burst refused on a full bucket")
	}
	ok, wait := l.Allow(ipA, "", 1000)
	if ok || wait != 10*time.Second {
		t.Fatalf("second huge op = %v, %v; want false, 10s", ok, wait)
	}
	clk.Advance(wait)
	if ok, _ := l.Allow(ipA, "", 1000); !ok {
		t.Error("refused after retryAfter")
	}
}

// A flood of spoofed or rotating sources must not grow memory without
// bound.
func TestSpoofedSourceFloodBoundsMemory(t *testing.T) {
	for _, max := range []int{1, 10, 1000, 20000} {
		l, _ := newTestLimiter(t, Config{MaxClients: max})
		total := 0
		for i := range l.ips.shards {
			total += l.ips.shards[i].max
		}
		if total != max {
			t.Fatalf("MaxClients %d: shard bounds add up to %d", max, total)
		}
		for i := range 3 * max {
			l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "", Read)
			if i%97 == 0 {
				if n := l.ips.len(); n > max {
					t.Fatalf("MaxClients %d: %d entries after %d clients", max, n, i+1)
				}
			}
		}
		for i := range l.ips.shards {
			s := &l.ips.shards[i]
			if len(s.m) > s.max {
				t.Fatalf("MaxClients %d: shard %d holds %d > %d", max, i, len(s.m), s.max)
			}
			if n := listLen(s); n != len(s.m) {
				t.Fatalf("MaxClients %d: shard %d list has %d entries, map %d", max, i, n, len(s.m))
			}
		}
	}
}

func listLen[K comparable](s *shard[K]) int {
	n := 0
	for e := s.lru.next; e != &s.lru; e = e.next {
		n++
	}
	return n
}

func TestOrgTableIsBounded(t *testing.T) {
	l, _ := newTestLimiter(t, Config{MaxOrgs: 50})
	for i := range 1000 {
		l.Allow(ipA, fmt.Sprintf("org-%d", i), Read)
	}
	if n := l.orgs.len(); n > 50 {
		t.Errorf("%d orgs tracked, bound 50", n)
	}
}

// The documented price of the memory bound: a client pushed out of the
// table comes back with a full bucket.
func TestEvictedClientStartsWithFullBucket(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100, MaxClients: 10})
	drain(t, l, ipA, "", Read)
	for i := range 10 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), "", Read)
	}
	if n, _ := drain(t, l, ipA, "", Read); n != 100 {
		t.Errorf("evicted client came back with %d tokens, documented as a full 100", n)
	}
}

// Recently used clients survive a flood of one-off sources better than
// idle ones: eviction is least recently used.
func TestEvictionIsLeastRecentlyUsed(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 100, MaxClients: 10})
	drain(t, l, ipA, "", Read)
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), "", Read)
		if ok, _ := l.Allow(ipA, "", Read); ok {
			t.Fatalf("active flooder evicted and refilled after %d newcomers", i+1)
		}
	}
}

// Churning the table from many addresses must not lift one's own lockout.
func TestTableChurnDoesNotLiftLockout(t *testing.T) {
	l, _ := newTestLimiter(t, Config{LockoutAfter: 3, MaxClients: 10})
	for range 3 {
		l.LoginFailed(ipA)
	}
	for i := range 1000 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "", Read)
	}
	if ok, _ := l.LoginAllowed(ipA); ok {
		t.Error("1000 fresh sources evicted the lockout")
	}
}

// Lockouts get a second chance, but the bound is absolute: a table full of
// locked-out clients still evicts.
func TestLockedOutClientsCannotOverfillTable(t *testing.T) {
	l, _ := newTestLimiter(t, Config{LockoutAfter: 1, MaxClients: 10})
	for i := range 200 {
		l.LoginFailed(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		if n := l.ips.len(); n > 10 {
			t.Fatalf("%d entries, bound 10", n)
		}
	}
}

// Many goroutines on one client and one org with time stopped: exactly the
// burst is granted, never more (no lost update, no double spend).
func TestConcurrentFloodNeverOverspends(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 400, PerOrg: 1, OrgBurst: 1000})
	var ipAllowed, orgAllowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			own := netip.AddrFrom4([4]byte{10, 2, 0, byte(g)})
			guesser := netip.AddrFrom4([4]byte{10, 2, 1, byte(g)})
			for i := range 300 {
				if ok, _ := l.Allow(ipA, "", Read); ok {
					ipAllowed.Add(1)
				}
				if ok, _ := l.Allow(own, "org", Read); ok {
					orgAllowed.Add(1)
				}
				switch i % 3 {
				case 0:
					l.LoginFailed(guesser)
				case 1:
					l.LoginAllowed(guesser)
				case 2:
					l.LoginSucceeded(guesser)
				}
			}
		})
	}
	wg.Wait()
	if n := ipAllowed.Load(); n != 400 {
		t.Errorf("one client got %d from a burst of 400", n)
	}
	// Each goroutine's own bucket allows 300, far more than its share of
	// the org's 1000.
	if n := orgAllowed.Load(); n != 1000 {
		t.Errorf("org got %d from a burst of 1000", n)
	}
}

// With the real clock: the race detector's view of the hot path.
func TestConcurrentUseWithRealClockIsRaceFree(t *testing.T) {
	l := New(Config{MaxClients: 300, MaxOrgs: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{10, 3, byte(g), byte(i)})
				l.Allow(ip, fmt.Sprint("org", i%5), Cost(i%25))
				if i%50 == 0 {
					l.LoginFailed(ip)
					l.LoginAllowed(ip)
				}
			}
		})
	}
	wg.Wait()
	if n := l.ips.len(); n > 300 {
		t.Errorf("%d clients tracked, bound 300", n)
	}
}

func TestInvalidConfigIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"negative rate", Config{PerIP: -1}},
		{"infinite rate would never refuse", Config{PerOrg: rate.Inf}},
		{"burst below LoginFailure could never charge it", Config{IPBurst: 49}},
		{"org burst below Expensive could never allow it", Config{OrgBurst: 19}},
		{"negative bound", Config{MaxClients: -1}},
		{"negative lockout count", Config{LockoutAfter: -1}},
		{"lockout shorter than Retry-After resolution", Config{LockoutFor: time.Millisecond}},
	} {
		err := tc.c.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tc.name, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic", tc.name)
				}
			}()
			New(tc.c)
		}()
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
