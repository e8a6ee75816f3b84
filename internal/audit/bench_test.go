package audit

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Targets: sequential Append within ~1.3x of the fsync floor, and more than
// 25,000 records/s with 64 appenders. Fixed iteration counts give stable
// figures on a shared disk:
//
//	go test -run '^$' -bench 'FsyncFloor|AppendSequential' -benchtime 5000x -count 3 ./internal/audit/
//	go test -run '^$' -bench 'AppendParallel64' -benchtime 200000x -count 3 ./internal/audit/
//	go test -run '^$' -bench 'JournalDelete' -benchtime 2000x -count 3 ./internal/audit/

// BenchmarkFsyncFloor is the cost of the durability the log promises: one
// small write and one fsync, on the file system the log would use.
func BenchmarkFsyncFloor(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendSequential(b *testing.B) { benchSequential(b, "") }

func BenchmarkAppendParallel64(b *testing.B) { benchParallel(b, "", 64) }

// BenchmarkJournalDelete measures the rollback journal the log does not
// use, to back the choice of WAL.
func BenchmarkJournalDelete(b *testing.B) {
	b.Run("sequential", func(b *testing.B) { benchSequential(b, "DELETE") })
	b.Run("parallel64", func(b *testing.B) { benchParallel(b, "DELETE", 64) })
}

func benchLog(b *testing.B, journal string) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), Options{Tenant: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	if journal != "" {
		// Only the committer's connection exists before the first read,
		// so switching its journal mode switches the database's.
		var got string
		if err := l.conn.QueryRowContext(context.Background(), "PRAGMA journal_mode = "+journal).Scan(&got); err != nil || got != "delete" {
			b.Fatalf("journal_mode = %q, %v", got, err)
		}
	}
	return l
}

func benchRecord() Record {
	return Record{
		Tenant: "bench", Agent: "assistant", Event: "decision", Tool: "file.read",
		RequestID: "req-0123456789", Decision: "allow", Rule: "allow-reads", CostTokens: 120,
		Detail: map[string]string{"layer": "policy"},
	}
}

func benchSequential(b *testing.B, journal string) {
	l := benchLog(b, journal)
	ctx := context.Background()
	r := benchRecord()
	for b.Loop() {
		if _, err := l.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

func benchParallel(b *testing.B, journal string, writers int) {
	l := benchLog(b, journal)
	ctx := context.Background()
	r := benchRecord()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := l.Append(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
