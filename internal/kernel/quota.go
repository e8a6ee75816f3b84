package kernel

import (
	"sync"
	"time"
)

// budget is one daily spending limit. Zero limits mean "no limit".
type budget struct {
	tokensPerDay int64
	usdPerDay    float64
}

// quota meters what tool calls cost against daily budgets: the primary
// provider's limits and per-rule rate limits. Reservations are taken before
// a call runs and given back if the call is refused later, so concurrent
// calls cannot overspend together.
type quota struct {
	perRequest int64  // provider tokens_per_request; 0 = none
	provider   budget // provider daily limits

	mu    sync.Mutex
	day   time.Time         // guarded by mu; UTC midnight the counters belong to
	spent map[string]*spend // guarded by mu; "" = provider, else rule id
}

type spend struct {
	tokens int64
	usd    float64
}

// reservation is what one call holds; release gives it back.
type reservation struct {
	q      *quota
	day    time.Time
	keys   []string
	tokens int64
	usd    float64
}

// overLimit describes why a reservation was refused.
type overLimit struct {
	what  string
	limit any
}

// reserve charges tokens and usd against the provider budget and the rule's
// budget (rule may be "" or have no budget). now picks the day.
func (q *quota) reserve(now time.Time, tokens int64, usd float64, rule string, rb budget) (*reservation, *overLimit) {
	if q.perRequest > 0 && tokens > q.perRequest {
		return nil, &overLimit{"tokens_per_request", q.perRequest}
	}
	day := now.UTC().Truncate(24 * time.Hour)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !day.Equal(q.day) {
		q.day, q.spent = day, map[string]*spend{}
	}
	check := func(key string, b budget) *overLimit {
		s := q.spent[key]
		if s == nil {
			s = &spend{}
		}
		if b.tokensPerDay > 0 && s.tokens+tokens > b.tokensPerDay {
			return &overLimit{"tokens_per_day", b.tokensPerDay}
		}
		if b.usdPerDay > 0 && s.usd+usd > b.usdPerDay {
			return &overLimit{"cost_per_day_usd", b.usdPerDay}
		}
		return nil
	}
	keys := []string{""}
	if o := check("", q.provider); o != nil {
		return nil, o
	}
	if rule != "" && (rb.tokensPerDay > 0 || rb.usdPerDay > 0) {
		if o := check(rule, rb); o != nil {
			o.what = "rule " + o.what
			return nil, o
		}
		keys = append(keys, rule)
	}
	for _, k := range keys {
		s := q.spent[k]
		if s == nil {
			s = &spend{}
			q.spent[k] = s
		}
		s.tokens += tokens
		s.usd += usd
	}
	return &reservation{q: q, day: day, keys: keys, tokens: tokens, usd: usd}, nil
}

// restore seeds today's provider spend, e.g. from the audit log after a restart.
func (q *quota) restore(now time.Time, tokens int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.day = now.UTC().Truncate(24 * time.Hour)
	q.spent = map[string]*spend{"": {tokens: tokens}}
}

// release gives a reservation back; safe to call on nil and more than once.
func (r *reservation) release() {
	if r == nil || r.q == nil {
		return
	}
	q := r.q
	r.q = nil
	q.mu.Lock()
	defer q.mu.Unlock()
	if !r.day.Equal(q.day) {
		return
	}
	for _, k := range r.keys {
		if s := q.spent[k]; s != nil {
			s.tokens -= r.tokens
			s.usd -= r.usd
		}
	}
}
