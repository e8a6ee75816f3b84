package wasm

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

var benchLimits = Limits{Fuel: 1_000_000, Deadline: time.Minute}

// BenchmarkCallCold measures Load of a never-seen module (hash, validate,
// rewrite, compile, serialize) plus its first call.
func BenchmarkCallCold(b *testing.B) {
	e := newTestEngine(b, EngineOptions{CacheEntries: 8})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		code := wat(b, fmt.Sprintf(`(module (memory 1)
		  (func (export "f") (result i32) (drop (memory.grow (i32.const 0))) (i32.const %d)))`, i))
		sum := hashOf(code)
		b.StartTimer()
		m, err := e.Load(code, sum)
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Run(context.Background(), m, Call{Function: "f", Limits: benchLimits})
		if err != nil || res.Returns[0] != int64(i) {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkCallWarm measures a cached Load, a fresh store and instance,
// and a call of a trivial export.
func BenchmarkCallWarm(b *testing.B) {
	e := newTestEngine(b, EngineOptions{})
	code := wat(b, spinWAT)
	sum := hashOf(code)
	if _, err := e.Load(code, sum); err != nil {
		b.Fatal(err)
	}
	var d []time.Duration
	for b.Loop() {
		start := time.Now()
		m, err := e.Load(code, sum)
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Run(context.Background(), m, Call{Function: "answer", Limits: benchLimits})
		if err != nil || res.Returns[0] != 42 {
			b.Fatalf("%v %+v", err, res)
		}
		d = append(d, time.Since(start))
	}
	reportPercentiles(b, d)
}

// reportPercentiles adds the p50 and p99 of one iteration to the output.
func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkCallWarmWASI is BenchmarkCallWarm for a module that imports
// WASI, which adds the WASI context and the stdio pipes.
func BenchmarkCallWarmWASI(b *testing.B) {
	e := newTestEngine(b, EngineOptions{})
	m := load(b, e, wasiWAT)
	var d []time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := e.Run(context.Background(), m, Call{Function: "prestat", Params: []int64{3}, Limits: benchLimits})
		if err != nil || res.Meter != "" {
			b.Fatalf("%v %+v", err, res)
		}
		d = append(d, time.Since(start))
	}
	reportPercentiles(b, d)
}

const sumWAT = `(module
  (func (export "sum") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))`

func benchSum(b *testing.B, disableFuel bool) {
	e := newTestEngine(b, EngineOptions{DisableFuel: disableFuel})
	m := load(b, e, sumWAT)
	const n = 10_000_000
	for b.Loop() {
		res, err := e.Run(context.Background(), m, Call{Function: "sum", Params: []int64{n}, Limits: Limits{Deadline: time.Minute}})
		if err != nil || res.Meter != "" || res.Returns[0] != n*(n-1)/2 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkFuelOn and BenchmarkFuelOff run 10 million loop iterations
// with and without fuel metering; epoch interruption is on in both.
func BenchmarkFuelOn(b *testing.B)  { benchSum(b, false) }
func BenchmarkFuelOff(b *testing.B) { benchSum(b, true) }
