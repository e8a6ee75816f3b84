package kernel

import (
	"context"
	"sync"
	"time"

	"github.com/clawkeep/clawkeep/internal/ckp"
)

// idempotency remembers the outcome of each request_id for ttl, so that a
// retried call returns the first outcome without running the tool again.
// A retry that arrives while the first call still runs waits for it.
type idempotency struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*idemEntry // guarded by mu
	order   []string              // guarded by mu; insertion order, for expiry
}

type idemEntry struct {
	fingerprint [32]byte
	done        chan struct{} // closed when res/err are set
	expires     time.Time     // set when done
	res         *ckp.ToolCallResult
	err         error
}

// begin returns the entry for id and whether the caller owns it (must run the
// call and then finish or forget it). ok is false when id was used for a
// different call.
func (c *idempotency) begin(now time.Time, id string, fp [32]byte) (e *idemEntry, owner, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if e := c.entries[id]; e != nil {
		return e, false, e.fingerprint == fp
	}
	e = &idemEntry{fingerprint: fp, done: make(chan struct{})}
	c.entries[id] = e
	c.order = append(c.order, id)
	return e, true, true
}

// finish publishes the outcome to waiters and keeps it for ttl.
func (c *idempotency) finish(now time.Time, id string, e *idemEntry, res *ckp.ToolCallResult, err error) {
	c.mu.Lock()
	e.res, e.err, e.expires = res, err, now.Add(c.ttl)
	c.mu.Unlock()
	close(e.done)
}

// forget drops an outcome that must not be replayed (the call was cancelled
// before it was decided), waking waiters so they run the call themselves.
func (c *idempotency) forget(id string, e *idemEntry, err error) {
	c.mu.Lock()
	if c.entries[id] == e {
		delete(c.entries, id)
	}
	e.err = err
	c.mu.Unlock()
	close(e.done)
}

// wait blocks until e is done.
func (e *idemEntry) wait(ctx context.Context) (*ckp.ToolCallResult, error) {
	select {
	case <-e.done:
		return e.res, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// expireLocked drops finished entries past their ttl, and the oldest
// finished ones beyond max, from the front of the insertion order (so the
// hot path does constant work). c.mu must be held.
func (c *idempotency) expireLocked(now time.Time) {
	for len(c.order) > 0 {
		id := c.order[0]
		e := c.entries[id]
		if e != nil {
			finished := !e.expires.IsZero()
			if !finished || (!now.After(e.expires) && len(c.order) <= c.max) {
				return
			}
			delete(c.entries, id)
		}
		c.order = c.order[1:]
	}
}
