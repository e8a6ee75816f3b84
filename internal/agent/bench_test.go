package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

// BenchmarkServeEchoSequential runs the whole server (ckp, agent, kernel,
// audit on disk) in process over os.Pipe, one call at a time: the stdio
// path of `clawkeep run` without the second process, to separate the cost
// of cross-process wake-ups from the server's own.
func BenchmarkServeEchoSequential(b *testing.B) {
	dir := b.TempDir()
	claw, err := manifest.Load("../../examples/conformance/claw.yaml")
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(dir, audit.Options{Tenant: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	ap, err := approval.Open(filepath.Join(dir, "approvals.db"), approval.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ap.Close()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	srv := &ckp.Server{Handler: New(Config{Tenant: "bench", DataDir: dir, Manifest: claw, Audit: log, Approvals: ap, Decider: "bench"})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), inR, outW) }()
	r := bufio.NewReader(outR)
	call := func(line string) {
		if _, err := inW.WriteString(line + "\n"); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadBytes('\n'); err != nil {
			b.Fatal(err)
		}
	}
	call(`{"jsonrpc":"2.0","id":0,"method":"claw.initialize","params":{"protocolVersion":"0.3.0","clientInfo":{"name":"b","version":"1"},"manifest":"claw://local/claw/conformance","capabilities":{}}}`)
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"claw.tool.call","params":{"name":"echo","arguments":{"text":"x"},"context":{"request_id":"b-%d"}}}`, i, i))
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	inW.Close()
	<-done
}
