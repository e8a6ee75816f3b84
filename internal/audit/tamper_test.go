package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The attacker in these tests edits audit.db with plain SQL after the log is
// closed. Each test names what it forges; Verify must point at the first
// record it can no longer vouch for.

func wantBad(t *testing.T, dir string, firstBad uint64, problem string) {
	t.Helper()
	rep := mustVerify(t, dir)
	if rep.OK || rep.FirstBad != firstBad || !strings.Contains(rep.Problem, problem) {
		t.Fatalf("Verify = %+v, want FirstBad %d with %q", rep, firstBad, problem)
	}
}

// rowHash reads a record's stored hash.
func rowHash(t *testing.T, db *sql.DB, seq int) []byte {
	t.Helper()
	var h []byte
	if err := db.QueryRow("SELECT hash FROM records WHERE seq = ?", seq).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// forge inserts record seq chained to prev, with a correct hash and a MAC
// under macSeed (nil for a random MAC).
func forge(t *testing.T, db *sql.DB, seq int, prev []byte, macSeed []byte) {
	t.Helper()
	r := testRecord(seq)
	r.Decision = "allow-everything"
	e, err := newEntry(r)
	if err != nil {
		t.Fatal(err)
	}
	ts := "2026-01-01T00:00:00.000000000Z"
	var p [32]byte
	copy(p[:], prev)
	sum := chainHash(sha256.New(), &p, uint64(seq), ts, e.body)
	mac := sha256.Sum256([]byte("a guess"))
	if macSeed != nil {
		mac = recordMAC(newMAC(macSeed), &sum)
	}
	exec(t, db, "INSERT INTO records ("+recordColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		seq, ts, r.Tenant, r.Agent, r.Event, r.Tool, r.RequestID, r.Decision, r.Rule, r.Outcome,
		r.CostTokens, e.detail, prev, sum[:], mac[:])
}

func keySeed(t *testing.T, dir string) []byte {
	t.Helper()
	_, seed, err := readKey(filepath.Join(dir, "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

func TestVerifyAcceptsIntactLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	l.Close()
	wantOK(t, dir, 0)
	writeLog(t, dir, 25, 10)
	if rep := wantOK(t, dir, 25); rep.Checkpoints != 3 {
		t.Fatalf("Verify = %+v, want checkpoints at 10, 20, 25", rep)
	}
}

func TestVerifyDetectsModifiedRecord(t *testing.T) {
	t.Parallel()
	for col, value := range map[string]any{
		"time":        "2030-01-01T00:00:00.000000000Z",
		"tenant":      "t2",
		"agent":       "root",
		"event":       "outcome",
		"tool":        "file.delete",
		"request_id":  "req-x",
		"decision":    "deny",
		"rule":        "allow-all",
		"outcome":     "ok",
		"cost_tokens": 0,
		"detail":      `{"layer":"sandbox","n":"5"}`,
		"prev_hash":   make([]byte, 32),
		"hash":        make([]byte, 32),
		"mac":         make([]byte, 32),
	} {
		t.Run(col, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeLog(t, dir, 9, 0)
			exec(t, rawDB(t, dir), "UPDATE records SET "+col+" = ? WHERE seq = 5", value)
			wantBad(t, dir, 5, "record 5")
		})
	}
}

func TestVerifyDetectsRetypedColumn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	// STRICT refuses a wrong type, so the attacker rebuilds the table first.
	exec(t, db, "CREATE TABLE r2 AS SELECT * FROM records")
	exec(t, db, "DROP TABLE records")
	exec(t, db, "ALTER TABLE r2 RENAME TO records")
	exec(t, db, "UPDATE records SET cost_tokens = '5 tokens' WHERE seq = 6")
	wantBad(t, dir, 6, "cost_tokens has type string")
	// A deletion before it is still the first problem.
	exec(t, db, "DELETE FROM records WHERE seq = 5")
	wantBad(t, dir, 5, "record 5 is missing")
}

func TestVerifyDetectsDeletedRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	exec(t, rawDB(t, dir), "DELETE FROM records WHERE seq = 4")
	wantBad(t, dir, 4, "record 4 is missing")
}

func TestVerifyDetectsInsertedRecordWithoutRecomputedHash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	exec(t, db, "INSERT INTO records ("+recordColumns+") SELECT 10, time, tenant, agent, event, tool, request_id, 'allow', rule, outcome, cost_tokens, detail, hash, hash, mac FROM records WHERE seq = 9")
	wantBad(t, dir, 10, "contents do not match its hash")
}

func TestVerifyDetectsInsertedRecordWithRecomputedHash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	// After the final checkpoint, chain-correct: only the MAC gives it away.
	forge(t, db, 10, rowHash(t, db, 9), nil)
	wantBad(t, dir, 10, "MAC does not match")
}

func TestVerifyDetectsRecordInsertedPastTheEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	forge(t, db, 15, rowHash(t, db, 9), nil)
	wantBad(t, dir, 10, "records 10..14 are missing")
}

func TestVerifyDetectsDuplicateChainPosition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	// A second successor of record 3, appended at the end.
	forge(t, db, 10, rowHash(t, db, 3), keySeed(t, dir))
	wantBad(t, dir, 10, "prev_hash does not match record 9")
}

func TestVerifyDetectsRowBeforeChainStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 3, 0)
	forge(t, rawDB(t, dir), 0, make([]byte, 32), nil)
	wantBad(t, dir, 1, "precedes the chain")
}

func TestVerifyDetectsSwappedRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 0)
	db := rawDB(t, dir)
	cols := "time, tenant, agent, event, tool, request_id, decision, rule, outcome, cost_tokens, detail, prev_hash, hash, mac"
	exec(t, db, "CREATE TABLE tmp AS SELECT seq, "+cols+" FROM records WHERE seq IN (4, 7)")
	set := []string{}
	for _, c := range strings.Split(cols, ", ") {
		set = append(set, c+" = (SELECT "+c+" FROM tmp WHERE tmp.seq = 11 - records.seq)")
	}
	exec(t, db, "UPDATE records SET "+strings.Join(set, ", ")+" WHERE seq IN (4, 7)")
	wantBad(t, dir, 4, "prev_hash does not match record 3")
}

func TestVerifyDetectsTruncationPastCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 30, 10) // checkpoints at 10, 20, 30
	exec(t, rawDB(t, dir), "DELETE FROM records WHERE seq > 15")
	wantBad(t, dir, 16, "records 16..20 are gone but checkpoint 20 signed them")
}

func TestVerifyDetectsAlteredCheckpoint(t *testing.T) {
	t.Parallel()
	for name, update := range map[string]string{
		"hash":      "UPDATE checkpoints SET hash = (SELECT hash FROM records WHERE seq = 9) WHERE seq = 20",
		"time":      "UPDATE checkpoints SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 20",
		"signature": "UPDATE checkpoints SET signature = zeroblob(64) WHERE seq = 20",
		"seq":       "UPDATE checkpoints SET seq = 19, hash = (SELECT hash FROM records WHERE seq = 19) WHERE seq = 20",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeLog(t, dir, 30, 10)
			exec(t, rawDB(t, dir), update)
			want := uint64(20)
			if name == "seq" {
				want = 19
			}
			wantBad(t, dir, want, "signature does not verify")
		})
	}
}

func TestVerifyDetectsMalformedCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 30, 10)
	exec(t, rawDB(t, dir), "UPDATE checkpoints SET signature = x'00' WHERE seq = 10")
	wantBad(t, dir, 10, "malformed")
}

func TestVerifyDetectsForgedCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 30, 10)
	db := rawDB(t, dir)
	_, other, _ := ed25519.GenerateKey(nil)
	h := rowHash(t, db, 15)
	ts := "2026-01-01T00:00:00.000000000Z"
	exec(t, db, "INSERT INTO checkpoints (seq, hash, time, signature) VALUES (15, ?, ?, ?)",
		h, ts, ed25519.Sign(other, checkpointMessage(15, h, ts)))
	wantBad(t, dir, 15, "signature does not verify")
}

// Even an attacker with the key who rewrites records, but cannot re-sign
// the checkpoint above them (it was copied elsewhere, or they lack the
// time), leaves that checkpoint disagreeing.
func TestVerifyDetectsRewriteBelowCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 20, 10)
	db := rawDB(t, dir)
	seed := keySeed(t, dir)
	exec(t, db, "DELETE FROM records WHERE seq > 11")
	for seq := 12; seq <= 20; seq++ {
		forge(t, db, seq, rowHash(t, db, seq-1), seed)
	}
	wantBad(t, dir, 11, "records 11..20 do not match checkpoint 20")
}

func TestVerifyDetectsReplacedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 9, 5)
	key := filepath.Join(dir, "audit.key")
	other := make([]byte, 32)
	other[0] = 1
	if err := os.WriteFile(key, marshalKey("t1", other), 0o600); err != nil {
		t.Fatal(err)
	}
	wantBad(t, dir, 1, "MAC does not match audit.key")
	if _, err := Open(dir, Options{Tenant: "t1"}); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open with a replaced key = %v, want ErrTampered", err)
	}
}

func TestVerifyDetectsMissingKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 3, 0)
	os.Remove(filepath.Join(dir, "audit.key"))
	wantBad(t, dir, 1, "cannot authenticate")
}

func TestOpenRefusesToExtendTamperedTail(t *testing.T) {
	t.Parallel()
	for name, update := range map[string]string{
		"last record modified":                "UPDATE records SET decision = 'deny' WHERE seq = 9",
		"truncated below the last checkpoint": "DELETE FROM records WHERE seq = 9",
		"last checkpoint altered":             "UPDATE checkpoints SET time = '2020-01-01T00:00:00.000000000Z' WHERE seq = 9",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeLog(t, dir, 9, 0)
			exec(t, rawDB(t, dir), update)
			if _, err := Open(dir, Options{Tenant: "t1"}); !errors.Is(err, ErrTampered) {
				t.Fatalf("Open = %v, want ErrTampered", err)
			}
		})
	}
}

func TestVerifyAcceptsReopenedLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 7, 3)
	l := openLog(t, dir, Options{CheckpointEvery: 3})
	if _, err := l.Append(context.Background(), testRecord(8)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	wantOK(t, dir, 8)
}
