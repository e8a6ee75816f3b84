package audit

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	if opts.Tenant == "" {
		opts.Tenant = "t1"
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testRecord(i int) Record {
	return Record{
		Tenant: "t1", Agent: "assistant", Event: "decision", Tool: "file.read",
		RequestID: fmt.Sprintf("req-%d", i), Decision: "allow", Rule: "allow-reads",
		Outcome: "", CostTokens: int64(i),
		Detail: map[string]string{"layer": "policy", "n": fmt.Sprint(i)},
	}
}

// writeLog appends n records with a checkpoint every `every` records (if
// not 0) and closes the log, leaving a final checkpoint at n. It queues
// asynchronously so that a test costs a few fsyncs, not n.
func writeLog(t *testing.T, dir string, n, every int) {
	t.Helper()
	l, err := Open(dir, Options{Tenant: "t1", CheckpointEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		l.AppendAsync(testRecord(i))
		if every > 0 && i%every == 0 {
			if err := l.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, dir string) *Report {
	t.Helper()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func wantOK(t *testing.T, dir string, records int) *Report {
	t.Helper()
	rep := mustVerify(t, dir)
	if !rep.OK || rep.Records != records || rep.LastSeq != uint64(records) || rep.FirstBad != 0 {
		t.Fatalf("Verify = %+v, want OK with %d records", rep, records)
	}
	return rep
}

// rawDB opens audit.db the way an attacker with file access would.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	// The attacker needs no durability: skipping fsync keeps tests fast.
	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db")+"?_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestAppendAssignsDenseSeqAndUTCTime(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("X", 3600))
	l := openLog(t, t.TempDir(), Options{Now: func() time.Time { return clock }})
	for i := 1; i <= 5; i++ {
		seq, err := l.Append(context.Background(), testRecord(i))
		if err != nil || seq != uint64(i) {
			t.Fatalf("Append %d = %d, %v", i, seq, err)
		}
	}
	got, err := l.Tail(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Tail(3) gave %d records", len(got))
	}
	for i, r := range got {
		want := testRecord(3 + i)
		want.Seq, want.Time = uint64(3+i), clock.UTC()
		if fmt.Sprint(r) != fmt.Sprint(want) || r.Time.Location() != time.UTC {
			t.Errorf("Tail[%d] = %+v, want %+v", i, r, want)
		}
	}
	if all, _ := l.Tail(100); len(all) != 5 {
		t.Errorf("Tail(100) gave %d records, want 5", len(all))
	}
	if none, err := l.Tail(0); none != nil || err != nil {
		t.Errorf("Tail(0) = %v, %v", none, err)
	}
}

func TestAppendRejectsInvalidRecord(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), Options{})
	for name, r := range map[string]Record{
		"seq set by caller":  {Seq: 7, Event: "decision"},
		"time set by caller": {Time: time.Now(), Event: "decision"},
		"no event":           {Tool: "echo"},
		"invalid UTF-8 text": {Event: "decision", Tool: "echo\xff"},
		// JSON would store U+FFFD, and the log would no longer say what was written.
		"invalid UTF-8 detail": {Event: "decision", Detail: map[string]string{"k": "\xc3"}},
		"oversized":            {Event: "decision", Detail: map[string]string{"reason": strings.Repeat("x", maxRecordBytes)}},
	} {
		if _, err := l.Append(context.Background(), r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: Append error = %v, want ErrInvalidRecord", name, err)
		}
	}
	if err := l.Err(); err != nil {
		t.Errorf("a refused Append made the log fail: %v", err)
	}
}

func TestAppendAsyncIsDurableAfterFlush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	for i := 1; i <= 10; i++ {
		l.AppendAsync(testRecord(i))
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second reader sees them: they are committed, not just queued.
	recs, err := ReadTail(dir, 100)
	if err != nil || len(recs) != 10 {
		t.Fatalf("ReadTail = %d records, %v", len(recs), err)
	}
}

func TestAppendAsyncCommitsWithoutFlush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	l.AppendAsync(testRecord(1))
	for {
		recs, err := l.Tail(1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAppendAsyncInvalidRecordFailsTheLog(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), Options{})
	l.AppendAsync(Record{Tool: "no event"})
	if err := l.Err(); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Err = %v, want ErrInvalidRecord", err)
	}
	if _, err := l.Append(context.Background(), testRecord(1)); err == nil {
		t.Fatal("Append succeeded on a failed log")
	}
}

func TestCommitFailureIsStickyAndFailsClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if _, err := l.Append(context.Background(), testRecord(1)); err != nil {
		t.Fatal(err)
	}
	// A real write failure from SQLite: every insert is aborted.
	exec(t, rawDB(t, dir), `CREATE TRIGGER refuse BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`)
	if _, err := l.Append(context.Background(), testRecord(2)); err == nil {
		t.Fatal("Append succeeded although the commit failed")
	}
	if l.Err() == nil {
		t.Fatal("Err = nil after a failed commit")
	}
	exec(t, rawDB(t, dir), `DROP TRIGGER refuse`)
	if _, err := l.Append(context.Background(), testRecord(3)); err == nil {
		t.Fatal("Append succeeded after a failed commit: the log must stay failed")
	}
	if err := l.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded on a failed log")
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the commit failure")
	}
	wantOK(t, dir, 1)
}

func TestCloseTwiceReturnsErrClosed(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if _, err := l.Append(context.Background(), testRecord(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Tail(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Tail after Close = %v, want ErrClosed", err)
	}
}

func TestAppendWithCancelledContextQueuesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, testRecord(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v, want context.Canceled", err)
	}
	l.Close()
	if rep := mustVerify(t, dir); rep.Records != 0 {
		t.Fatalf("a cancelled Append was written: %+v", rep)
	}
}

func TestConcurrentAppendsFrom64GoroutinesVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{CheckpointEvery: 100})
	const writers, each = 64, 20
	seqs := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if w%8 == 0 && i%2 == 0 {
					l.AppendAsync(testRecord(i))
					continue
				}
				seq, err := l.Append(context.Background(), testRecord(i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] || s == 0 || s > writers*each {
			t.Fatalf("seq %d duplicated or out of range", s)
		}
		seen[s] = true
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := wantOK(t, dir, writers*each)
	// A batch that crosses a boundary checkpoints at its end, so batches
	// of up to 64 records give at least one checkpoint per 164 records.
	if rep.Checkpoints < writers*each/164 {
		t.Errorf("%d checkpoints for %d records every 100", rep.Checkpoints, writers*each)
	}
	// Reopening continues the same chain.
	l2 := openLog(t, dir, Options{CheckpointEvery: 100})
	if seq, err := l2.Append(context.Background(), testRecord(0)); err != nil || seq != writers*each+1 {
		t.Fatalf("Append after reopen = %d, %v", seq, err)
	}
	l2.Close()
	wantOK(t, dir, writers*each+1)
}

func TestVerifyWhileLogIsOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{CheckpointEvery: 3})
	for i := 1; i <= 10; i++ {
		if _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	wantOK(t, dir, 10)
}

func TestCheckpointsAreWrittenEveryNAndAtClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{CheckpointEvery: 10})
	for i := 1; i <= 25; i++ {
		if _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(context.Background()); err != nil { // nothing new to sign
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), testRecord(26)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var got []int
	rows, err := rawDB(t, dir).Query("SELECT seq FROM checkpoints ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int
		rows.Scan(&s)
		got = append(got, s)
	}
	rows.Close()
	if fmt.Sprint(got) != "[10 20 25 26]" {
		t.Fatalf("checkpoints at %v, want [10 20 25 26]", got)
	}
	wantOK(t, dir, 26)
}

func TestUsageSinceSumsAllowedDecisionsOfTheAgent(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC)
	l := openLog(t, t.TempDir(), Options{Now: func() time.Time { return clock }})
	add := func(r Record) {
		t.Helper()
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	allow := Record{Agent: "a", Event: "decision", Decision: "allow", CostTokens: 1000}
	add(allow) // yesterday
	clock = clock.Add(2 * time.Second)
	day := clock.Truncate(24 * time.Hour)
	allow.CostTokens = 7
	add(allow)
	allow.CostTokens = 5
	add(allow)
	add(Record{Agent: "a", Event: "decision", Decision: "deny", CostTokens: 100})
	add(Record{Agent: "a", Event: "approval", Decision: "allow", CostTokens: 20}) // an approved call
	add(Record{Agent: "a", Event: "decision", Decision: "audit-only", CostTokens: 3})
	add(Record{Agent: "a", Event: "approval", Decision: "deny", CostTokens: 100})
	add(Record{Agent: "b", Event: "decision", Decision: "allow", CostTokens: 100})
	tokens, n, err := l.UsageSince(day, "a")
	if err != nil || tokens != 35 || n != 4 {
		t.Fatalf("UsageSince = %d tokens, %d records, %v; want 35, 4", tokens, n, err)
	}
	// Fixed-width times compare as text across fractional seconds.
	clock = clock.Add(500 * time.Millisecond)
	add(allow)
	if tokens, _, _ := l.UsageSince(clock.Add(-time.Nanosecond), "a"); tokens != 5 {
		t.Fatalf("UsageSince just before a fractional second = %d, want 5", tokens)
	}
}

func TestExportWritesTheChainAsJSONLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 5, 0)
	var buf bytes.Buffer
	if err := Export(dir, &buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	prev := strings.Repeat("00", 32)
	n := 0
	for sc.Scan() {
		n++
		var line Exported
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		if line.Seq != uint64(n) || line.PrevHash != prev || line.RequestID != fmt.Sprintf("req-%d", n) || line.Detail["n"] != fmt.Sprint(n) {
			t.Fatalf("line %d = %+v", n, line)
		}
		if h, err := hex.DecodeString(line.Hash); err != nil || len(h) != 32 {
			t.Fatalf("line %d hash %q", n, line.Hash)
		}
		prev = line.Hash
	}
	if n != 5 {
		t.Fatalf("exported %d lines, want 5", n)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("Open accepted an empty Tenant")
	}
	if _, err := Open(t.TempDir(), Options{Tenant: "t1", CheckpointEvery: -1}); err == nil {
		t.Error("Open accepted a negative CheckpointEvery")
	}
}

func TestVerifyFailsOnMissingLog(t *testing.T) {
	t.Parallel()
	if _, err := Verify(t.TempDir()); err == nil {
		t.Fatal("Verify of an empty directory returned no error")
	}
}
