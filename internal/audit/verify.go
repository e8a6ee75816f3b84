package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"path/filepath"
)

// Report is the outcome of Verify.
type Report struct {
	Records     int    // record rows read
	Checkpoints int    // checkpoint rows read
	LastSeq     uint64 // highest seq read
	OK          bool   // every record and checkpoint verified
	// FirstBad is the lowest sequence number Verify cannot vouch for, or 0
	// when OK. For a checkpoint that no longer matches a consistent chain it
	// is the first record after the previous good checkpoint.
	FirstBad uint64
	Problem  string // what is wrong at FirstBad, or ""
}

// verifier accumulates the first problem in sequence order.
type verifier struct {
	rep *Report
	sha hash.Hash
	mac hash.Hash         // or nil when audit.key is unusable
	pub ed25519.PublicKey // or nil when audit.key is unusable
}

// flag keeps the problem at the lowest sequence number; on a tie the one
// found first wins, and record checks run before checkpoint checks.
func (v *verifier) flag(seq uint64, format string, args ...any) {
	if v.rep.FirstBad == 0 || seq < v.rep.FirstBad {
		v.rep.FirstBad, v.rep.Problem = seq, fmt.Sprintf(format, args...)
	}
}

// Verify checks the log in dir without writing to it: the chain from seq 1,
// every record's MAC, and every checkpoint's signature and hash. It reports
// the first record it cannot vouch for, and returns an error only when the
// log cannot be read at all.
func Verify(dir string) (*Report, error) {
	db, err := openExisting(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx := context.Background()
	// One read transaction, so a concurrent writer cannot make the records
	// and checkpoints disagree.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()

	cps, err := readCheckpoints(ctx, tx, "SELECT seq, hash, time, signature FROM checkpoints ORDER BY seq")
	if err != nil {
		return nil, err
	}
	rep := &Report{Checkpoints: len(cps)}
	v := &verifier{rep: rep, sha: sha256.New()}
	if _, seed, err := readKey(filepath.Join(dir, "audit.key")); err == nil {
		v.mac = newMAC(seed)
		v.pub = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	} else {
		v.flag(1, "cannot authenticate the log: %v", err)
	}

	bySeq := make(map[uint64]*checkpoint, len(cps))
	for _, c := range cps {
		bySeq[c.seq] = c
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+recordColumns+" FROM records ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var prev [32]byte // the first record links to zeros
	next := uint64(1)
	broken := false // once the chain breaks, later links mean nothing
	for rows.Next() {
		rep.Records++
		s, err := scanStored(rows)
		var re *rowError
		switch {
		case errors.As(err, &re):
			seq := uint64(max(re.seq, 0))
			rep.LastSeq = max(rep.LastSeq, seq)
			if !broken {
				broken = true
				if at, p := position(seq, next); p != "" {
					v.flag(at, "%s", p)
				} else {
					v.flag(seq, "%s (record modified)", re.msg)
				}
			}
			continue
		case err != nil:
			return nil, err
		}
		rep.LastSeq = max(rep.LastSeq, s.Seq)
		if c := bySeq[s.Seq]; c != nil {
			c.recordHash = s.hash
		}
		if broken {
			continue
		}
		if at, p := v.link(s, next, &prev); p != "" {
			broken = true
			v.flag(at, "%s", p)
			continue
		}
		copy(prev[:], s.hash)
		next = s.Seq + 1
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}

	var vouched uint64 // seq of the last checkpoint that verified
	for _, c := range cps {
		switch {
		case c.malformed != "":
			v.flag(c.seq, "%s", c.malformed)
		case v.pub == nil:
			// Already flagged: no key, no signature to check.
		case !c.verify(v.pub):
			v.flag(c.seq, "checkpoint %d: signature does not verify (checkpoint altered or forged, or key file replaced)", c.seq)
		case c.seq > rep.LastSeq:
			v.flag(rep.LastSeq+1, "records %d..%d are gone but checkpoint %d signed them (log truncated)", rep.LastSeq+1, c.seq, c.seq)
		case c.recordHash == nil:
			// A gap the record walk has flagged at or before c.seq.
		case string(c.recordHash) != string(c.hash):
			v.flag(vouched+1, "records %d..%d do not match checkpoint %d (chain rewritten after it was signed)", vouched+1, c.seq, c.seq)
		default:
			vouched = c.seq
		}
	}
	rep.OK = rep.FirstBad == 0
	return rep, nil
}

// link checks that s is record next, chained to prev, intact and
// authentic, and returns where and what is wrong otherwise.
func (v *verifier) link(s *stored, next uint64, prev *[32]byte) (uint64, string) {
	if at, p := position(s.Seq, next); p != "" {
		return at, p
	}
	if string(s.prev) != string(prev[:]) {
		return s.Seq, fmt.Sprintf("record %d: prev_hash does not match record %d's hash (records reordered, replaced or inserted)", s.Seq, s.Seq-1)
	}
	return s.Seq, s.check(v.sha, v.mac)
}

// position checks that the row read after record next-1 is record next;
// seq 0 stands for any seq <= 0.
func position(seq, next uint64) (uint64, string) {
	switch {
	case seq == 0:
		return next, "a row with seq <= 0 precedes the chain (record inserted)"
	case seq == next+1:
		return next, fmt.Sprintf("record %d is missing (record deleted)", next)
	case seq > next:
		return next, fmt.Sprintf("records %d..%d are missing (records deleted, or a record inserted past the end)", next, seq-1)
	}
	return 0, ""
}
