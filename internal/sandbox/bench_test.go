package sandbox

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// benchStarts runs f b.N times and reports the p50 and p99 of one run,
// start to exit, beside ns/op.
func benchStarts(b *testing.B, f func() error) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkTrue is /bin/true start to exit: plain exec.Command as the
// baseline, then each level, in the same run.
func BenchmarkTrue(b *testing.B) {
	b.Run("exec.Command", func(b *testing.B) {
		benchStarts(b, func() error { return exec.Command("/bin/true").Run() })
	})
	for _, lvl := range []Level{LevelProcess, LevelContainer} {
		b.Run(string(lvl), func(b *testing.B) {
			sb, err := New(Config{Level: lvl})
			if err != nil {
				b.Skip(err)
			}
			benchStarts(b, func() error {
				r, err := sb.Run(context.Background(), Job{Argv: []string{"/bin/true"}})
				if err == nil && (r.Outcome != Exited || r.ExitCode != 0) {
					b.Fatalf("%+v", r)
				}
				return err
			})
		})
	}
}
