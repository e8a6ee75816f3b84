package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxShards bounds lock striping. 64 shards keep uncontended Allow on one
// cache line per shard while making contention between unrelated clients
// rare on machines with dozens of cores.
const maxShards = 64

// minPerShard keeps small tables in one shard, so that a small MaxClients
// behaves as an exact LRU rather than as many tiny ones.
const minPerShard = 256

// secondChances is how many entries under login lockout an eviction may
// pass over before it evicts one anyway. It makes churning the table a poor
// way to lift one's own lockout while keeping the size bound absolute.
const secondChances = 4

// table is a bounded map from K to buckets, split into shards that each
// hold their own lock and their own least-recently-used list.
//
// The shard of a key is chosen by a hash seeded per table, so a client that
// picks its source addresses cannot aim a flood at one shard to evict its
// neighbours with 1/64 of the effort.
type table[K comparable] struct {
	seed   maphash.Seed
	hash   func(maphash.Seed, K) uint64 // never nil
	shards []shard[K]                   // len is a power of two; constant
	mask   uint64                       // len(shards)-1
	newB   func() *rate.Limiter         // never nil; a full bucket
}

// shard is one lock's worth of a table.
type shard[K comparable] struct {
	max int // constant; >= 1

	mu sync.Mutex
	m  map[K]*entry[K] // guarded by mu; len(m) <= max
	// lru is the list sentinel: lru.next is the most recently used entry,
	// lru.prev the least. Guarded by mu.
	lru entry[K]

	_ [64]byte // keeps neighbouring shards' locks off one cache line
}

// entry is one tracked client or organisation.
type entry[K comparable] struct {
	key    K
	bucket *rate.Limiter // never nil
	login  *loginState   // or nil: no failed login remembered
	prev   *entry[K]     // guarded by the shard's mu
	next   *entry[K]     // guarded by the shard's mu
}

// loginState counts failed logins of one client key.
type loginState struct {
	failures    int       // since lastFailure's window began; < Config.LockoutAfter
	lastFailure time.Time // zero before the first failure
	lockedUntil time.Time // zero, or the end of the current lockout
}

func (s *loginState) lockedAt(now time.Time) bool {
	return s != nil && now.Before(s.lockedUntil)
}

// newTable returns a table holding at most max entries in total.
func newTable[K comparable](max int, hash func(maphash.Seed, K) uint64, newB func() *rate.Limiter) *table[K] {
	n := 1
	for n*2 <= maxShards && n*2*minPerShard <= max {
		n *= 2
	}
	t := &table[K]{
		seed:   maphash.MakeSeed(),
		hash:   hash,
		shards: make([]shard[K], n),
		mask:   uint64(n - 1),
		newB:   newB,
	}
	for i := range t.shards {
		s := &t.shards[i]
		// Spread the remainder so that the shard bounds add up to max
		// exactly: the total bound is what the caller sized memory for.
		s.max = max / n
		if i < max%n {
			s.max++
		}
		s.m = make(map[K]*entry[K])
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return t
}

func (t *table[K]) shardFor(k K) *shard[K] {
	return &t.shards[t.hash(t.seed, k)&t.mask]
}

// len counts entries; it locks each shard in turn, so under concurrent use
// the answer is only approximate. For tests and metrics.
func (t *table[K]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// getLocked returns k's entry, creating it with a full bucket if it is not
// tracked, and marks it most recently used. s.mu must be held.
func (t *table[K]) getLocked(s *shard[K], k K, now time.Time) *entry[K] {
	if e := s.m[k]; e != nil {
		s.touchLocked(e)
		return e
	}
	if len(s.m) >= s.max {
		s.evictLocked(now)
	}
	e := &entry[K]{key: k, bucket: t.newB()}
	s.m[k] = e
	s.pushFrontLocked(e)
	return e
}

// peekLocked returns k's entry or nil, marking it most recently used.
// Unlike getLocked it never creates one, so read-only questions about
// unknown clients cost no memory. s.mu must be held.
func (s *shard[K]) peekLocked(k K) *entry[K] {
	e := s.m[k]
	if e != nil {
		s.touchLocked(e)
	}
	return e
}

func (s *shard[K]) touchLocked(e *entry[K]) {
	if s.lru.next == e {
		return
	}
	s.unlinkLocked(e)
	s.pushFrontLocked(e)
}

func (s *shard[K]) pushFrontLocked(e *entry[K]) {
	e.prev = &s.lru
	e.next = s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

func (s *shard[K]) unlinkLocked(e *entry[K]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

// evictLocked removes the least recently used entry, passing over up to
// secondChances entries that are under login lockout (they move to the
// front instead). An evicted client is forgotten entirely: it comes back
// with a full bucket and no failed logins. s.mu must be held.
func (s *shard[K]) evictLocked(now time.Time) {
	for range secondChances {
		e := s.lru.prev
		if e == &s.lru || !e.login.lockedAt(now) {
			break
		}
		s.touchLocked(e)
	}
	e := s.lru.prev
	if e == &s.lru {
		panic("ratelimit: internal error: evicting from an empty shard")
	}
	s.unlinkLocked(e)
	delete(s.m, e.key)
}

func hashClientKey(seed maphash.Seed, k clientKey) uint64 {
	return maphash.Bytes(seed, k[:])
}

func hashString(seed maphash.Seed, s string) uint64 {
	return maphash.String(seed, s)
}
