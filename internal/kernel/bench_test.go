package kernel

import (
	"context"
	"encoding/json"
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

// BenchmarkCallEcho is one full kernel call of echo in process: every gate,
// JSON Schema validation, the durable decision record and the outcome
// record. "audit=tmpfs" keeps the audit chain on /dev/shm, where fsync costs
// nothing, to show the kernel's own cost; "audit=disk" is the real thing.
func BenchmarkCallEcho(b *testing.B) {
	dirs := map[string]string{"disk": b.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "clawkeep-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			dirs["tmpfs"] = d
		}
	}
	for _, where := range []string{"tmpfs", "disk"} {
		dir, ok := dirs[where]
		if !ok {
			continue
		}
		b.Run("audit="+where, func(b *testing.B) {
			k := benchKernel(b, dir)
			args := json.RawMessage(`{"text":"hello"}`)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				t0 := time.Now()
				_, err := k.Call(ctx, ckp.ToolCallParams{Name: "echo", Arguments: args, Context: ckp.ToolCallContext{RequestID: fmt.Sprintf("b-%d", i)}})
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

func benchKernel(b *testing.B, dir string) *Kernel {
	b.Helper()
	body := fmt.Sprintf(head, "") + `  identity: {inline: {personality: p, autonomy: autonomous}}
  tools:
    - inline: {name: echo, description: e, input_schema: {type: object, properties: {text: {type: string}}}, annotations: {readOnlyHint: true}}
  policies: [{inline: {rules: [{id: echo, action: allow, scope: tool, match: {tool: echo}}]}}]
`
	claw, err := manifest.Parse([]byte(body), manifest.Options{File: "bench.yaml"})
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(dir, audit.Options{Tenant: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ap, err := approval.Open(filepath.Join(dir, "approvals.db"), approval.Options{})
	if err != nil {
		b.Fatal(err)
	}
	k, err := New(Config{Tenant: "bench", Claw: claw, Workspace: filepath.Join(dir, "ws"), Audit: log, Approvals: ap})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { k.Close(); log.Close(); ap.Close() })
	return k
}
