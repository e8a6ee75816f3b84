// Package audit keeps a tenant's tamper-evident audit log: a SHA-256 hash
// chain of records in SQLite, written by group commit and sealed by
// Ed25519-signed checkpoints.
//
// A directory holds one log: audit.db (the records and checkpoints) and
// audit.key (the Ed25519 seed, mode 0600, labelled with the tenant). Each
// record stores hash = SHA-256(prev_hash || canonical record), where the
// canonical record is a domain tag, the sequence number, then every field
// length-prefixed in a fixed order; the first prev_hash is 32 zero bytes.
// Each record also carries an HMAC of its hash under a key derived from the
// seed, and every CheckpointEvery records (and at Close) a checkpoint signs
// the sequence number and hash of the newest record.
//
// # Threat model
//
// The attacker can read and write audit.db with plain SQL (an operator with
// a database shell, a process that shares the data directory, a restored
// backup) but cannot read audit.key. Verify then reports the first record
// that was modified (any column), deleted, inserted (anywhere, including
// after the last checkpoint, with or without a recomputed hash), reordered,
// or truncated away below a signed checkpoint, and any checkpoint that was
// altered or forged, or that no longer matches the records.
//
// Verify cannot detect:
//   - an attacker who can also read or replace audit.key: with the key they
//     can rewrite every record, MAC and checkpoint consistently;
//   - truncation of the records after the last checkpoint together with any
//     checkpoints after it, or the deletion of the whole database: what is
//     gone leaves nothing behind to compare against;
//   - a record that a caller appended with false content: the log proves
//     what was written, not that it was true.
//
// An operator narrows the first two by keeping evidence elsewhere: copy the
// checkpoints table (or the newest line of Export) and the public key off
// the host on a schedule; a later log must extend those hashes. Records
// written after the last copied checkpoint remain unprotected against
// truncation.
//
// # Guarantees
//
//   - Append returns only after the record is in the database and fsync'd
//     (SQLite WAL, synchronous=FULL); concurrent Appends share one commit.
//   - Sequence numbers are dense, start at 1, and follow commit order; times
//     never decrease along them while the clock does not go back.
//   - A failed commit fails its waiters and every later operation (Err
//     reports it): the kernel must then refuse to act. The log never
//     continues a chain it could not write.
//   - Open refuses a key file readable by group or others, labelled for
//     another tenant, or missing while records exist, and a log whose newest
//     record or checkpoint does not verify.
//   - Records never hold secrets: callers store names, decisions and short
//     reasons; the package never logs or returns key material.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrClosed is wrapped by operations on a closed Log.
var ErrClosed = errors.New("audit: log closed")

// ErrTampered is wrapped when stored records or checkpoints fail their
// checks while being opened or read.
var ErrTampered = errors.New("audit: log tampered or corrupt")

const (
	defaultCheckpointEvery = 1000
	// asyncDelay is how long an AppendAsync record may wait for a
	// synchronous Append to share its commit. A kernel call appends its
	// decision durably and its outcome asynchronously; the next call's
	// decision then carries the previous outcome in the same fsync.
	asyncDelay = 20 * time.Millisecond
	// maxBatch commits a queue of asynchronous records without waiting.
	maxBatch = 4096
)

// Record is one audit event. Fields hold names, decisions and short reasons,
// never secret values.
type Record struct {
	Seq  uint64    // set by Append; callers leave it zero
	Time time.Time // set by Append (UTC); callers leave it zero

	Tenant, Agent, Event, Tool, RequestID, Decision, Rule, Outcome string

	CostTokens int64             // tokens an allowed decision spends; summed by UsageSince
	Detail     map[string]string // or nil; small; keys sorted in the canonical form
}

// Options configures Open.
type Options struct {
	Tenant          string           // required; labels the key file, written into no record by itself
	CheckpointEvery int              // records between signed checkpoints; 0 = 1000
	Now             func() time.Time // test knob; nil = time.Now
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	now func() time.Time // never nil
	db  *sql.DB          // never nil; readers share it with the committer's conn

	// commitMu is held by the leader: the caller that found nobody
	// committing and now commits batch after batch while someone waits for
	// the queue (group commit without a committer goroutine, so a lone
	// caller commits its own record with no handoff). The fields below are
	// guarded by commitMu. Lock order: commitMu, then mu.
	commitMu sync.Mutex
	every    uint64
	key      *keys // behind a pointer so that printing a Log never prints key bytes
	conn     *sql.Conn
	insRec   *sql.Stmt
	insCP    *sql.Stmt
	sha      hash.Hash
	lastSeq  uint64
	lastHash [32]byte
	lastCP   uint64

	mu         sync.Mutex
	cur        *batch // guarded by mu; never nil; the queue the next commit takes
	err        error  // guarded by mu; sticky: the first commit failure
	closing    bool   // guarded by mu; set once by Close
	committing bool   // guarded by mu; a leader holds or is taking commitMu
	timerArmed bool   // guarded by mu; an asyncDue timer is pending
}

// keys is the log's secret material, derived from audit.key.
type keys struct {
	priv ed25519.PrivateKey
	mac  hash.Hash // HMAC-SHA256 under macKey(seed)
}

// batch is one group commit and the callers waiting for it.
type batch struct {
	entries []entry
	sync    bool // a caller waits for this batch: commit it now
	due     bool // asynchronous entries have waited long enough
	cp      bool // Checkpoint asked for a signed checkpoint
	done    chan struct{}
	first   uint64 // Seq of entries[0]; set before done is closed
	err     error  // set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Open opens the log in dir, creating dir (0700), audit.db and audit.key
// (0600) on first use.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Tenant == "" {
		return nil, errors.New("audit: Options.Tenant is empty")
	}
	if opts.CheckpointEvery < 0 {
		return nil, fmt.Errorf("audit: Options.CheckpointEvery is %d", opts.CheckpointEvery)
	}
	l := &Log{
		now:   opts.Now,
		every: uint64(opts.CheckpointEvery),
		sha:   sha256.New(),
		cur:   newBatch(),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.every == 0 {
		l.every = defaultCheckpointEvery
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	dbPath := filepath.Join(dir, "audit.db")
	// SQLite would create the file 0644; the -wal and -shm files copy
	// the database's mode.
	f, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f.Close()
	if l.db, err = openDB(dbPath, false); err != nil {
		return nil, err
	}
	if err := l.load(filepath.Join(dir, "audit.key"), opts.Tenant); err != nil {
		l.closeDB()
		return nil, err
	}
	return l, nil
}

// load prepares the schema, the key and the chain head for the committer.
func (l *Log) load(keyPath, tenant string) error {
	ctx := context.Background()
	var err error
	if l.conn, err = l.db.Conn(ctx); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := createSchema(ctx, l.conn); err != nil {
		return err
	}
	head, err := readHead(ctx, l.conn)
	if err != nil {
		return err
	}
	keyTenant, seed, err := readKey(keyPath)
	switch {
	case err == nil:
	case keyMissing(err) && head.empty():
		keyTenant = tenant
		if seed, err = createKey(keyPath, tenant); err != nil {
			return err
		}
	case keyMissing(err):
		return fmt.Errorf("%w: audit.key is missing but the log has records; restore it (a new key would orphan every signature)", ErrKeyFile)
	default:
		return err
	}
	if keyTenant != tenant {
		return fmt.Errorf("%w: audit.key belongs to tenant %q, not %q", ErrKeyFile, keyTenant, tenant)
	}
	l.key = &keys{priv: ed25519.NewKeyFromSeed(seed), mac: newMAC(seed)}
	if err := head.check(l.sha, l.key.mac, l.key.priv.Public().(ed25519.PublicKey)); err != nil {
		return err
	}
	if head.rec != nil {
		l.lastSeq = head.rec.Seq
		copy(l.lastHash[:], head.rec.hash)
	}
	if head.cp != nil {
		l.lastCP = head.cp.seq
	}
	if l.insRec, err = l.conn.PrepareContext(ctx, `INSERT INTO records (`+recordColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if l.insCP, err = l.conn.PrepareContext(ctx, `INSERT INTO checkpoints (seq, hash, time, signature) VALUES (?, ?, ?, ?)`); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Append adds r to the log and returns its sequence number once it is
// durable. ctx is checked before the record is queued; once queued, Append
// waits for the commit (an fsync cannot be interrupted anyway).
func (l *Log) Append(ctx context.Context, r Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e, err := newEntry(r)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	if err := l.stateLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	b, i := l.enqueueLocked(e)
	b.sync = true
	l.mu.Unlock()
	l.commitThrough(b)
	if b.err != nil {
		return 0, b.err
	}
	return b.first + uint64(i), nil
}

// AppendAsync queues r; it becomes durable with the next commit, at most
// about 20ms later. An invalid record or a failed commit makes the log
// sticky-failed, which Err reports: a record the kernel meant to keep must
// never vanish silently.
func (l *Log) AppendAsync(r Record) {
	e, err := newEntry(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stateLocked() != nil {
		return
	}
	if err != nil {
		l.err = err
		return
	}
	b, i := l.enqueueLocked(e)
	switch {
	case i+1 >= maxBatch:
		b.due = true
		go l.commitThrough(b)
	case !l.timerArmed:
		// One timer at a time: at steady load every batch would otherwise
		// arm its own, and their wake-ups cost more than the commits.
		l.timerArmed = true
		time.AfterFunc(asyncDelay, l.asyncDue)
	}
}

// asyncDue commits the queued asynchronous records once the oldest has
// waited about asyncDelay. Records queued after it fires arm a new timer.
func (l *Log) asyncDue() {
	l.mu.Lock()
	l.timerArmed = false
	b := l.cur
	if len(b.entries) == 0 || l.closing {
		l.mu.Unlock()
		return
	}
	b.due = true
	l.mu.Unlock()
	l.commitThrough(b)
}

// enqueueLocked stamps e and adds it to the current batch. Taking the time
// under mu keeps times in sequence order. l.mu must be held.
func (l *Log) enqueueLocked(e entry) (*batch, int) {
	e.rec.Time = l.now().UTC().Round(0)
	b := l.cur
	b.entries = append(b.entries, e)
	return b, len(b.entries) - 1
}

// Flush returns once everything queued before it is durable.
func (l *Log) Flush(ctx context.Context) error { return l.wait(ctx, false) }

// Checkpoint commits everything queued and signs a checkpoint at the newest
// record, unless one already covers it.
func (l *Log) Checkpoint(ctx context.Context) error { return l.wait(ctx, true) }

func (l *Log) wait(ctx context.Context, cp bool) error {
	l.mu.Lock()
	if err := l.stateLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	b := l.cur
	b.sync = true
	b.cp = b.cp || cp
	l.mu.Unlock()
	l.commitThrough(b)
	return b.err
}

// Err returns the sticky error that stops the log, ErrClosed after Close, or
// nil while the log accepts records.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *Log) stateLocked() error {
	if l.err != nil {
		return l.err
	}
	if l.closing {
		return ErrClosed
	}
	return nil
}

// Close commits what is queued, signs a final checkpoint and closes the
// database. A second Close returns an error wrapping ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return fmt.Errorf("audit: Close: %w", ErrClosed)
	}
	l.closing = true
	l.mu.Unlock()
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	l.mu.Lock()
	last, err := l.cur, l.err
	l.mu.Unlock()
	if err == nil {
		err = l.commit(last, true)
	}
	last.err = err
	close(last.done)
	return errors.Join(err, l.closeDB())
}

func (l *Log) closeDB() error {
	var errs []error
	if l.insRec != nil {
		errs = append(errs, l.insRec.Close())
	}
	if l.insCP != nil {
		errs = append(errs, l.insCP.Close())
	}
	if l.conn != nil {
		errs = append(errs, l.conn.Close())
	}
	errs = append(errs, l.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit: closing: %w", err)
	}
	return nil
}

// commitThrough returns once b (marked sync or due by the caller) is
// committed or has failed. If a leader is active it will commit b, so the
// caller just waits; otherwise the caller leads, committing the whole queue
// batch after batch while the queue holds a batch someone waits for. Waiters
// therefore never queue on commitMu one by one.
func (l *Log) commitThrough(b *batch) {
	l.mu.Lock()
	if l.committing {
		l.mu.Unlock()
		<-b.done
		return
	}
	l.committing = true
	l.mu.Unlock()

	l.commitMu.Lock()
	for {
		l.mu.Lock()
		cur, err := l.cur, l.err
		if l.closing || !(cur.sync || cur.due) {
			// Nothing is waited for (b, queued earlier, is done), or Close
			// will commit the final batch itself.
			l.committing = false
			l.mu.Unlock()
			break
		}
		l.cur = newBatch()
		l.mu.Unlock()
		if err == nil {
			if err = l.commit(cur, false); err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
			}
		}
		cur.err = err
		close(cur.done)
	}
	l.commitMu.Unlock()
	<-b.done
}

// commit writes b in one transaction (one fsync), with a signed checkpoint
// when b crosses the CheckpointEvery boundary, when asked, or when final.
func (l *Log) commit(b *batch, final bool) error {
	last := l.lastSeq + uint64(len(b.entries))
	cp := last > l.lastCP && (b.cp || final || last-l.lastCP >= l.every)
	if len(b.entries) == 0 && !cp {
		return nil
	}
	prev := l.lastHash
	for i := range b.entries {
		e := &b.entries[i]
		e.ts = formatTime(e.rec.Time)
		e.hash = chainHash(l.sha, &prev, l.lastSeq+1+uint64(i), e.ts, e.body)
		prev = e.hash
	}
	var sig []byte
	var cpTime string
	if cp {
		cpTime = formatTime(l.now())
		sig = ed25519.Sign(l.key.priv, checkpointMessage(last, prev[:], cpTime))
	}

	ctx := context.Background()
	tx, err := l.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	ins := tx.StmtContext(ctx, l.insRec)
	link := l.lastHash
	for i := range b.entries {
		e := &b.entries[i]
		r := &e.rec
		mac := recordMAC(l.key.mac, &e.hash)
		if _, err := ins.ExecContext(ctx, int64(l.lastSeq+1+uint64(i)), e.ts,
			r.Tenant, r.Agent, r.Event, r.Tool, r.RequestID, r.Decision, r.Rule, r.Outcome,
			r.CostTokens, e.detail, link[:], e.hash[:], mac[:]); err != nil {
			return fmt.Errorf("audit: commit: %w", err)
		}
		link = e.hash
	}
	if cp {
		if _, err := tx.StmtContext(ctx, l.insCP).ExecContext(ctx, int64(last), prev[:], cpTime, sig); err != nil {
			return fmt.Errorf("audit: commit: checkpoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	b.first = l.lastSeq + 1
	l.lastSeq, l.lastHash = last, prev
	if cp {
		l.lastCP = last
	}
	return nil
}
