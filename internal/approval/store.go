// Package approval keeps the human approvals that gated tool calls wait
// for in a SQLite file, so that a restart neither loses nor grants them.
//
// # Threat model
//
// The agent asking for a gated call may be steered by hostile content. It
// wants the call to run without a human saying yes: by retrying the
// request_id of a call someone approved, or of another tenant's call; by
// retrying to get a fresh deadline; by crashing or restarting the runtime so
// the request is forgotten; by a late approval racing the timeout; or by a
// Summary that makes the reviewer see something other than the call (extra
// lines, bidi reordering). Other local users must not read the file.
//
// # Guarantees
//
// Every request is decided at most once. A human decision and the timeout
// each try the same conditional UPDATE (WHERE outcome = pending, and the
// deadline not passed or passed respectively), so exactly one wins, even
// between Store values or processes sharing the file, and every reader
// sees the winner. A decision arriving at or after the deadline never
// counts: the timeout decides, as the request's OnTimeout.
//
// A submitted request is on disk (WAL, synchronous=FULL) before Submit
// returns. After a restart it is either expired by Recover or still
// pending and decidable; it is never dropped. Submitting the same request_id
// again resumes the original only if tenant, agent, tool and fingerprint all
// match, and keeps its deadline.
//
// Summary, Why, By and Reason are stored as one line without control or
// format characters. The file and its journal are mode 0600.
//
// A Wait learns of a decision made through another Store on the same file
// within a poll interval (2 s), not at once.
package approval

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var (
	ErrNotFound = errors.New("approval: no such request")
	ErrDecided  = errors.New("approval: request already decided or expired")
	ErrConflict = errors.New("approval: request_id already used for a different call")
	ErrConsumed = errors.New("approval: approval already used by its call")

	errClosed = fmt.Errorf("approval: %w", net.ErrClosed)
)

// Options configures Open.
type Options struct {
	// Now is a test knob; nil means time.Now. Deadlines are compared with
	// it, but Wait's timer still runs on real time.
	Now func() time.Time
}

// Store holds pending and decided approval requests.
type Store struct {
	db   *sql.DB          // never nil
	now  func() time.Time // never nil
	poll time.Duration    // how often a Wait re-reads its row to see other processes' decisions; a test knob
	done chan struct{}    // closed by Close

	closeOnce sync.Once

	mu      sync.Mutex
	waiters map[string]*watch // guarded by mu; an entry goes when woken or when its last waiter leaves
}

// watch wakes the in-process waiters of one request.
type watch struct {
	ch chan struct{} // closed when the request is decided through this Store
	n  int           // waiters holding it; guarded by Store.mu
}

const schemaVersion = 2 // 2 added consumed

const schema = `
CREATE TABLE IF NOT EXISTS approvals (
	id          TEXT    PRIMARY KEY,
	tenant      TEXT    NOT NULL,
	agent       TEXT    NOT NULL,
	tool        TEXT    NOT NULL,
	summary     TEXT    NOT NULL,
	risk        INTEGER NOT NULL CHECK (risk BETWEEN 1 AND 4),
	why         TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	created     INTEGER NOT NULL,
	deadline    INTEGER NOT NULL,
	on_timeout  INTEGER NOT NULL CHECK (on_timeout IN (2, 3)),
	outcome     INTEGER NOT NULL CHECK (outcome BETWEEN 1 AND 4),
	decided_by  TEXT    NOT NULL DEFAULT '',
	reason      TEXT    NOT NULL DEFAULT '',
	decided_at  INTEGER NOT NULL DEFAULT 0,
	timed_out   INTEGER NOT NULL DEFAULT 0,
	consumed    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (outcome, risk DESC, deadline);
`

const columns = `id, tenant, agent, tool, summary, risk, why, fingerprint, created, deadline,
	on_timeout, outcome, decided_by, reason, decided_at, timed_out`

// Open opens the store at path, creating the file with mode 0600 (and
// tightening an existing one to it).
func Open(path string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	// Create the file ourselves: SQLite would use 0644, and it gives its
	// journal files the mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}
	// A file: URI with an escaped path, so '?' or '#' in a directory name
	// cannot inject parameters.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	if err := initSchema(db); err != nil {
		db.Close()
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		db:      db,
		now:     now,
		poll:    2 * time.Second,
		done:    make(chan struct{}),
		waiters: make(map[string]*watch),
	}, nil
}

func initSchema(db *sql.DB) error {
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("approval: opening store: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("approval: store format %d is newer than this program (%d)", v, schemaVersion)
	}
	if _, err := db.Exec(schema); err != nil {
		return fmt.Errorf("approval: creating schema: %w", err)
	}
	if v == 1 {
		if _, err := db.Exec(`ALTER TABLE approvals ADD COLUMN consumed INTEGER NOT NULL DEFAULT 0`); err != nil {
			return fmt.Errorf("approval: upgrading store: %w", err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("approval: creating schema: %w", err)
	}
	return nil
}

// Close closes the store; blocked Waits return an error. A second Close
// returns an error wrapping net.ErrClosed.
func (s *Store) Close() error {
	err := errClosed
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.db.Close()
	})
	return err
}

// Submit persists r as pending. If a request with the same ID exists and
// has the same Tenant, Agent, Tool and Fingerprint, Submit returns it as it
// is (pending or decided, with its original deadline): the retried call
// resumes it. Otherwise it returns an error wrapping ErrConflict.
func (s *Store) Submit(ctx context.Context, r Request) (Request, error) {
	r, err := normalize(r, s.now())
	if err != nil {
		return Request{}, err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO approvals (`+columns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', 0, 0)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.Tenant, r.Agent, r.Tool, r.Summary, int64(r.Risk), r.Why, r.Fingerprint,
		r.Created.UnixNano(), r.Deadline.UnixNano(), int64(r.OnTimeout), int64(Pending))
	if err != nil {
		return Request{}, fmt.Errorf("approval: submitting: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Request{}, fmt.Errorf("approval: submitting: %w", err)
	} else if n == 1 {
		return r, nil
	}
	old, _, err := s.get(ctx, r.ID)
	if err != nil {
		return Request{}, err
	}
	if old.Fingerprint != r.Fingerprint || old.Tenant != r.Tenant || old.Agent != r.Agent || old.Tool != r.Tool {
		return Request{}, fmt.Errorf("%w: %q", ErrConflict, r.ID)
	}
	return old, nil
}

// Wait blocks until request id is decided and returns the decision. When
// the deadline passes first, Wait decides it as OnTimeout (TimedOut, By
// "timeout"). If ctx ends first Wait returns ctx.Err() and the request
// stays pending. A request already decided returns at once.
func (s *Store) Wait(ctx context.Context, id string) (Decision, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Decision{}, err
		}
		// Watch before reading, so a decision made between the read and
		// the select still wakes us.
		w := s.watch(id)
		d, wait, err := s.waitStep(ctx, id)
		if err != nil || d.Outcome != Pending {
			s.unwatch(id, w)
			if err != nil && ctx.Err() != nil {
				return Decision{}, ctx.Err()
			}
			return d, err
		}
		t := time.NewTimer(wait)
		select {
		case <-w.ch:
		case <-t.C:
		case <-ctx.Done():
		case <-s.done:
			t.Stop()
			s.unwatch(id, w)
			return Decision{}, errClosed
		}
		t.Stop()
		s.unwatch(id, w)
	}
}

// waitStep reads the request, expiring it if its deadline has passed, and
// says how long to sleep before looking again if it is still pending.
func (s *Store) waitStep(ctx context.Context, id string) (Decision, time.Duration, error) {
	r, d, err := s.get(ctx, id)
	if err != nil || d.Outcome != Pending {
		return d, 0, err
	}
	now := s.now()
	if now.Before(r.Deadline) {
		return d, min(r.Deadline.Sub(now), s.poll), nil
	}
	if err := s.expire(ctx, id, now); err != nil {
		return Decision{}, 0, err
	}
	// Whoever won, the timeout or a decision just before it, is in the row.
	_, d, err = s.get(ctx, id)
	if err == nil && d.Outcome == Pending {
		return Decision{}, 0, errors.New("approval: internal error: request still pending after its deadline")
	}
	return d, 0, err
}

// Decide records a human decision on request id. It returns an error
// wrapping ErrNotFound for an unknown id, and one wrapping ErrDecided if
// the request was already decided or its deadline has passed (the timeout
// then decides it). by and reason are stored as one line, reason cut to 500
// runes.
func (s *Store) Decide(id string, approve bool, by, reason string) (Decision, error) {
	ctx := context.Background()
	at, ok := storable(s.now())
	if !ok {
		return Decision{}, errors.New("approval: clock out of range")
	}
	d := Decision{Outcome: Denied, By: oneLine(by, maxBy), Reason: oneLine(reason, maxReason), At: at}
	if approve {
		d.Outcome = Approved
	}
	// A request submitted between the UPDATE and the read below is seen as
	// pending with its deadline ahead: then the UPDATE is simply retried.
	for attempt := 0; ; attempt++ {
		res, err := s.db.ExecContext(ctx, `UPDATE approvals
		SET outcome = ?, decided_by = ?, reason = ?, decided_at = ?, timed_out = 0
		WHERE id = ? AND outcome = ? AND deadline > ?`,
			int64(d.Outcome), d.By, d.Reason, at.UnixNano(), id, int64(Pending), at.UnixNano())
		if err != nil {
			return Decision{}, fmt.Errorf("approval: deciding: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Decision{}, fmt.Errorf("approval: deciding: %w", err)
		} else if n == 1 {
			s.wake(id)
			return d, nil
		}
		req, cur, err := s.get(ctx, id)
		if err != nil {
			return Decision{}, err
		}
		if cur.Outcome == Pending {
			if req.Deadline.After(at) && attempt < 3 {
				continue
			}
			// Too late: the deadline has passed, so the timeout decides it
			// now and waiters and the audit log see the same answer as
			// this caller.
			if err := s.expire(ctx, id, at); err != nil {
				return Decision{}, err
			}
		}
		return Decision{}, fmt.Errorf("%w: %q", ErrDecided, id)
	}
}

// Consume marks an approved request as used by the call it approved, and
// returns an error wrapping ErrConsumed if it was used already: one approval
// authorizes one execution, also when the call is retried after a restart
// (when no in-memory replay cache remembers it).
func (s *Store) Consume(id string) error {
	res, err := s.db.Exec(`UPDATE approvals SET consumed = 1 WHERE id = ? AND outcome = ? AND consumed = 0`, id, int64(Approved))
	if err != nil {
		return fmt.Errorf("approval: consuming: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("approval: consuming: %w", err)
	} else if n != 1 {
		return fmt.Errorf("%w: %q", ErrConsumed, id)
	}
	return nil
}

// expire decides request id as its OnTimeout if it is pending and its
// deadline is not after now. Losing to a decision is not an error.
func (s *Store) expire(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE approvals
		SET outcome = on_timeout, decided_by = 'timeout', reason = '', decided_at = ?, timed_out = 1
		WHERE id = ? AND outcome = ? AND deadline <= ?`,
		now.UnixNano(), id, int64(Pending), now.UnixNano())
	if err != nil {
		return fmt.Errorf("approval: expiring: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("approval: expiring: %w", err)
	} else if n == 1 {
		s.wake(id)
	}
	return nil
}

// Get returns request id and where it stands (Outcome Pending if it is
// undecided), or an error wrapping ErrNotFound.
func (s *Store) Get(id string) (Request, Decision, error) {
	return s.get(context.Background(), id)
}

func (s *Store) get(ctx context.Context, id string) (Request, Decision, error) {
	r, d, err := scan(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, Decision{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return r, d, err
}

// Pending lists the requests a human can still decide, most urgent first
// (risk descending, then deadline ascending, then id). Requests whose
// deadline has passed are left out: no decision on them would count.
func (s *Store) Pending() ([]Request, error) {
	rows, err := s.db.Query(`SELECT `+columns+` FROM approvals
		WHERE outcome = ? AND deadline > ?
		ORDER BY risk DESC, deadline ASC, id ASC`,
		int64(Pending), s.now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("approval: listing: %w", err)
	}
	return collect(rows)
}

// Recover is meant for start-up: it decides every pending request whose
// deadline has passed as its OnTimeout (TimedOut) and returns them, so the
// caller can audit each; the others stay pending and decidable. Requests
// another Store expired first are not returned twice.
func (s *Store) Recover() ([]Request, error) {
	now := s.now().UnixNano()
	// One statement, so each row returned is one this call decided.
	rows, err := s.db.Query(`UPDATE approvals
		SET outcome = on_timeout, decided_by = 'timeout', reason = '', decided_at = ?, timed_out = 1
		WHERE outcome = ? AND deadline <= ?
		RETURNING `+columns,
		now, int64(Pending), now)
	if err != nil {
		return nil, fmt.Errorf("approval: recovering: %w", err)
	}
	expired, err := collect(rows)
	if err != nil {
		return nil, err
	}
	for _, r := range expired {
		s.wake(r.ID)
	}
	return expired, nil
}

func collect(rows *sql.Rows) ([]Request, error) {
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, _, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("approval: reading: %w", err)
	}
	return out, nil
}

// scan reads one row in columns order. A row holding values no Store
// writes (an edited or corrupted file) is an error, never a decision.
func scan(row interface{ Scan(...any) error }) (Request, Decision, error) {
	var (
		r                                  Request
		d                                  Decision
		risk, onTimeout, outcome, timedOut int64
		created, deadline, decidedAt       int64
	)
	err := row.Scan(&r.ID, &r.Tenant, &r.Agent, &r.Tool, &r.Summary, &risk, &r.Why, &r.Fingerprint,
		&created, &deadline, &onTimeout, &outcome, &d.By, &d.Reason, &decidedAt, &timedOut)
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, Decision{}, err
	}
	if err != nil {
		return Request{}, Decision{}, fmt.Errorf("approval: reading: %w", err)
	}
	r.Risk, r.OnTimeout, d.Outcome = Risk(risk), Outcome(onTimeout), Outcome(outcome)
	if int64(r.Risk) != risk || !r.Risk.IsValid() ||
		(r.OnTimeout != Approved && r.OnTimeout != Denied) || int64(r.OnTimeout) != onTimeout ||
		int64(d.Outcome) != outcome || !d.Outcome.IsValid() || (timedOut != 0 && timedOut != 1) {
		return Request{}, Decision{}, fmt.Errorf("approval: internal error: corrupt row for %q", r.ID)
	}
	r.Created, r.Deadline = fromNanos(created), fromNanos(deadline)
	if d.Outcome != Pending {
		d.At, d.TimedOut = fromNanos(decidedAt), timedOut == 1
	}
	return r, d, nil
}

func (s *Store) watch(id string) *watch {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiters[id]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		s.waiters[id] = w
	}
	w.n++
	return w
}

func (s *Store) unwatch(id string, w *watch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.n--
	if w.n == 0 && s.waiters[id] == w {
		delete(s.waiters, id)
	}
}

func (s *Store) wake(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.waiters[id]; w != nil {
		close(w.ch)
		delete(s.waiters, id)
	}
}
