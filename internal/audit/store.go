package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite"
)

const schemaVersion = 1

// STRICT keeps honest writers from storing a value of the wrong type; the
// readers still check every type, because an attacker can drop the tables.
const schema = `
CREATE TABLE IF NOT EXISTS records (
	seq INTEGER PRIMARY KEY, time TEXT NOT NULL,
	tenant TEXT NOT NULL, agent TEXT NOT NULL, event TEXT NOT NULL, tool TEXT NOT NULL,
	request_id TEXT NOT NULL, decision TEXT NOT NULL, rule TEXT NOT NULL, outcome TEXT NOT NULL,
	cost_tokens INTEGER NOT NULL, detail TEXT NOT NULL,
	prev_hash BLOB NOT NULL, hash BLOB NOT NULL, mac BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
	seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, time TEXT NOT NULL, signature BLOB NOT NULL
) STRICT;
PRAGMA user_version = 1;`

const recordColumns = "seq, time, tenant, agent, event, tool, request_id, decision, rule, outcome, cost_tokens, detail, prev_hash, hash, mac"

// openDB opens audit.db. The writer uses WAL with synchronous=FULL: one
// fsync of the WAL per commit, measured faster here than a rollback journal
// (see bench_test.go).
func openDB(path string, readOnly bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)"}}
	if readOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return db, nil
}

// openExisting opens an existing log read-only, for tools that must not
// change it.
func openExisting(dir string) (*sql.DB, error) {
	path := filepath.Join(dir, "audit.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	db, err := openDB(path, true)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	return db, nil
}

func createSchema(ctx context.Context, conn *sql.Conn) error {
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("audit: audit.db has schema version %d; this build knows %d", v, schemaVersion)
	}
	if _, err := conn.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("audit: creating schema: %w", err)
	}
	return nil
}

// stored is a record row as read, before any check.
type stored struct {
	Record          // Seq is set, Time is not
	ts              string
	detail          string
	prev, hash, mac []byte
}

// rowError is a row whose columns are not what the log writes.
type rowError struct {
	seq int64
	msg string
}

func (e *rowError) Error() string { return fmt.Sprintf("audit: record %d: %s", e.seq, e.msg) }
func (e *rowError) Unwrap() error { return ErrTampered }

type scanner interface{ Scan(...any) error }

// scanStored reads one row selected with recordColumns. Types are checked
// here rather than by Scan, so that a retyped column is reported as
// tampering at its record, not as an I/O error.
func scanStored(sc scanner) (*stored, error) {
	var v [15]any
	var p [15]any
	for i := range v {
		p[i] = &v[i]
	}
	if err := sc.Scan(p[:]...); err != nil {
		return nil, fmt.Errorf("audit: reading records: %w", err)
	}
	seq, ok := v[0].(int64)
	if !ok {
		return nil, &rowError{seq: 0, msg: fmt.Sprintf("seq has type %T", v[0])}
	}
	s := &stored{}
	if seq > 0 {
		s.Seq = uint64(seq)
	}
	text := [...]*string{&s.ts, &s.Tenant, &s.Agent, &s.Event, &s.Tool, &s.RequestID, &s.Decision, &s.Rule, &s.Outcome}
	for i, dst := range text {
		if *dst, ok = v[1+i].(string); !ok {
			return nil, &rowError{seq, fmt.Sprintf("column %d has type %T, want text", 2+i, v[1+i])}
		}
	}
	if s.CostTokens, ok = v[10].(int64); !ok {
		return nil, &rowError{seq, fmt.Sprintf("cost_tokens has type %T", v[10])}
	}
	if s.detail, ok = v[11].(string); !ok {
		return nil, &rowError{seq, fmt.Sprintf("detail has type %T", v[11])}
	}
	blobs := [...]*[]byte{&s.prev, &s.hash, &s.mac}
	for i, dst := range blobs {
		if *dst, ok = v[12+i].([]byte); !ok || len(*dst) != 32 {
			return nil, &rowError{seq, fmt.Sprintf("%s is not a 32-byte blob", [...]string{"prev_hash", "hash", "mac"}[i])}
		}
	}
	return s, nil
}

// check recomputes the row's hash from its own prev_hash and contents, and
// its MAC unless mac is nil.
func (s *stored) check(sha, mac hash.Hash) string {
	var prev [32]byte
	copy(prev[:], s.prev)
	body := appendBody(nil, &s.Record, s.detail)
	sum := chainHash(sha, &prev, s.Seq, s.ts, body)
	if string(sum[:]) != string(s.hash) {
		return fmt.Sprintf("record %d: contents do not match its hash (record modified)", s.Seq)
	}
	if mac == nil {
		return "" // no key: Verify has flagged that already
	}
	if tag := recordMAC(mac, &sum); string(tag[:]) != string(s.mac) {
		return fmt.Sprintf("record %d: MAC does not match audit.key (record forged, or key file replaced)", s.Seq)
	}
	return ""
}

// record parses what Tail and Export show; a row Verify would accept always
// parses.
func (s *stored) record() (Record, error) {
	r := s.Record
	t, err := time.Parse(timeLayout, s.ts)
	if err != nil || formatTime(t) != s.ts {
		return Record{}, &rowError{int64(s.Seq), "malformed time"}
	}
	r.Time = t
	if r.Detail, err = decodeDetail(s.detail); err != nil {
		return Record{}, &rowError{int64(s.Seq), err.Error()}
	}
	return r, nil
}

type checkpoint struct {
	seq        uint64
	hash       []byte
	ts         string
	sig        []byte
	malformed  string // why the row is not a checkpoint, or ""
	recordHash []byte // hash of record seq, filled in by Verify
}

func readCheckpoints(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string) ([]*checkpoint, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("audit: reading checkpoints: %w", err)
	}
	defer rows.Close()
	var cps []*checkpoint
	for rows.Next() {
		var v [4]any
		if err := rows.Scan(&v[0], &v[1], &v[2], &v[3]); err != nil {
			return nil, fmt.Errorf("audit: reading checkpoints: %w", err)
		}
		c := &checkpoint{}
		seq, ok1 := v[0].(int64)
		h, ok2 := v[1].([]byte)
		ts, ok3 := v[2].(string)
		sig, ok4 := v[3].([]byte)
		c.seq, c.hash, c.ts, c.sig = uint64(max(seq, 1)), h, ts, sig
		if !ok1 || !ok2 || !ok3 || !ok4 || seq <= 0 || len(h) != 32 || len(sig) != ed25519.SignatureSize {
			c.malformed = fmt.Sprintf("checkpoint %d: malformed row (checkpoint altered)", seq)
		}
		cps = append(cps, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: reading checkpoints: %w", err)
	}
	return cps, nil
}

func (c *checkpoint) verify(pub ed25519.PublicKey) bool {
	return c.malformed == "" && ed25519.Verify(pub, checkpointMessage(c.seq, c.hash, c.ts), c.sig)
}

// head is the newest record and checkpoint, which Open checks before it
// extends the chain.
type head struct {
	rec    *stored     // or nil for an empty log
	cp     *checkpoint // or nil before the first checkpoint
	cpHash []byte      // hash of the record cp names, or nil if it is gone
}

func (h *head) empty() bool { return h.rec == nil && h.cp == nil }

func readHead(ctx context.Context, conn *sql.Conn) (*head, error) {
	h := &head{}
	rows, err := conn.QueryContext(ctx, "SELECT "+recordColumns+" FROM records ORDER BY seq DESC LIMIT 1")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if rows.Next() {
		h.rec, err = scanStored(rows)
	}
	rows.Close()
	if err != nil {
		return nil, err
	}
	cps, err := readCheckpoints(ctx, conn, "SELECT seq, hash, time, signature FROM checkpoints ORDER BY seq DESC LIMIT 1")
	if err != nil || len(cps) == 0 {
		return h, err
	}
	h.cp = cps[0]
	err = conn.QueryRowContext(ctx, "SELECT hash FROM records WHERE seq = ?", int64(h.cp.seq)).Scan(&h.cpHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return h, nil
}

// check refuses to extend a chain whose newest record or checkpoint is bad:
// writing after it would bury the evidence under valid records.
func (h *head) check(sha, mac hash.Hash, pub ed25519.PublicKey) error {
	if h.rec != nil {
		if h.rec.Seq == 0 {
			return fmt.Errorf("%w: newest record has seq %d", ErrTampered, h.rec.Seq)
		}
		if p := h.rec.check(sha, mac); p != "" {
			return fmt.Errorf("%w: %s; run Verify", ErrTampered, p)
		}
	}
	if h.cp == nil {
		return nil
	}
	if !h.cp.verify(pub) {
		return fmt.Errorf("%w: checkpoint %d does not verify; run Verify", ErrTampered, h.cp.seq)
	}
	if h.cpHash == nil || string(h.cpHash) != string(h.cp.hash) {
		return fmt.Errorf("%w: record %d no longer matches its checkpoint; run Verify", ErrTampered, h.cp.seq)
	}
	return nil
}

// Tail returns the last n committed records, oldest first.
func (l *Log) Tail(n int) ([]Record, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	return tail(l.db, n)
}

// ReadTail is Tail for a log no process has open, read without writing.
func ReadTail(dir string, n int) ([]Record, error) {
	db, err := openExisting(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return tail(db, n)
}

func tail(db *sql.DB, n int) ([]Record, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := db.Query("SELECT "+recordColumns+" FROM records ORDER BY seq DESC LIMIT ?", n)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		s, err := scanStored(rows)
		if err != nil {
			return nil, err
		}
		r, err := s.record()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// UsageSince sums CostTokens over the committed records with Decision
// "allow" or "audit-only" (whatever the event: a direct decision or an
// approval) for agent at or after t, so that a restarted kernel resumes its
// daily quotas where it left them.
func (l *Log) UsageSince(t time.Time, agent string) (tokens int64, records int, err error) {
	if err := l.readable(); err != nil {
		return 0, 0, err
	}
	err = l.db.QueryRow(`SELECT COALESCE(SUM(cost_tokens), 0), COUNT(*) FROM records
		WHERE decision IN ('allow', 'audit-only') AND agent = ? AND time >= ?`,
		agent, formatTime(t)).Scan(&tokens, &records)
	if err != nil {
		return 0, 0, fmt.Errorf("audit: usage: %w", err)
	}
	return tokens, records, nil
}

// readable lets reads go on after a commit failure (the records already
// committed are still evidence) but not after Close.
func (l *Log) readable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return ErrClosed
	}
	return nil
}

// Exported is one line of Export.
type Exported struct {
	Seq        uint64            `json:"seq"`
	Time       string            `json:"time"`
	Tenant     string            `json:"tenant"`
	Agent      string            `json:"agent"`
	Event      string            `json:"event"`
	Tool       string            `json:"tool"`
	RequestID  string            `json:"request_id"`
	Decision   string            `json:"decision"`
	Rule       string            `json:"rule"`
	Outcome    string            `json:"outcome"`
	CostTokens int64             `json:"cost_tokens"`
	Detail     map[string]string `json:"detail,omitempty"`
	PrevHash   string            `json:"prev_hash"`
	Hash       string            `json:"hash"`
}

// Export writes every record as JSON Lines in sequence order, with its hash
// and prev_hash in hex, so the chain can be checked and kept elsewhere. It
// reads without writing and does not verify: run Verify for that.
func Export(dir string, w io.Writer) error {
	db, err := openExisting(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query("SELECT " + recordColumns + " FROM records ORDER BY seq")
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	enc := json.NewEncoder(w)
	for rows.Next() {
		s, err := scanStored(rows)
		if err != nil {
			return err
		}
		r, err := s.record()
		if err != nil {
			return err
		}
		if err := enc.Encode(Exported{
			Seq: r.Seq, Time: s.ts, Tenant: r.Tenant, Agent: r.Agent, Event: r.Event, Tool: r.Tool,
			RequestID: r.RequestID, Decision: r.Decision, Rule: r.Rule, Outcome: r.Outcome,
			CostTokens: r.CostTokens, Detail: r.Detail,
			PrevHash: hex.EncodeToString(s.prev), Hash: hex.EncodeToString(s.hash),
		}); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
