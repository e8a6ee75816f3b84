package wasm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/clawkeep/clawkeep/internal/egress"
)

// Limits bound one Run. Every zero field has a default; none means
// "unlimited" except Fuel, and Deadline has no default at all.
type Limits struct {
	// Fuel is the instruction budget; 0 = unlimited (fuel is still on, set
	// to its maximum), leaving Deadline as the only meter.
	Fuel uint64
	// Deadline is the wall-clock budget, enforced by epoch interruption
	// with EngineOptions.EpochTick resolution; it must be > 0.
	Deadline time.Duration
	// MemoryBytes caps each linear memory; 0 = 64 MiB.
	MemoryBytes int64
	// Tables, Instances and Memories cap how many of each the store may
	// create; 0 = 1 each. TableElements caps each table; 0 = 10000.
	Tables, Instances, Memories int
	TableElements               int64
	// MaxOutputBytes caps each of stdout and stderr; 0 = 1 MiB. Bytes past
	// it are read and dropped, and Result.OutputTruncated is set.
	MaxOutputBytes int64
}

// Call is one invocation.
type Call struct {
	Function string   // exported function name; "_start" runs a WASI command
	Params   []int64  // i32/i64 params, converted per the function's type
	Args     []string // WASI argv
	// Env is the WASI environment, "K=V" each. Nothing from the host
	// environment is ever added: it holds the kernel's own secrets.
	Env   []string
	Stdin []byte
	// Workspace is a host directory preopened as "/workspace", or "" for
	// none. Nothing else is preopened.
	Workspace string
	// ReadOnlyWorkspace preopens Workspace with read permissions only.
	ReadOnlyWorkspace bool
	// HTTP sends the module's clawkeep.http_get requests, or nil: then
	// every request is refused.
	HTTP   *egress.Client
	Limits Limits
}

// Meter values say which limit ended a run.
const (
	MeterNone   = ""
	MeterFuel   = "fuel"
	MeterEpoch  = "epoch" // the wall-clock deadline or ctx
	MeterMemory = "memory"
	MeterTrap   = "trap" // any other trap
)

// Result is what a run produced.
type Result struct {
	Returns         []int64
	Stdout, Stderr  []byte
	OutputTruncated bool
	Meter           string // one of the Meter constants
	Trap            string // trap message, "" if none
	ExitCode        int    // WASI proc_exit code when it called proc_exit
	FuelUsed        uint64
	Wall            time.Duration
	NetworkRefusals []string // one per http_get the egress guard refused
}

// runState is what host functions see of the run, through the store's data.
type runState struct {
	ctx  context.Context // ends at the run's deadline too
	http *egress.Client  // or nil

	// interrupted is set when a host function gave up because ctx ended.
	interrupted atomic.Bool

	mu       sync.Mutex
	refusals []string // guarded by mu
}

const (
	defaultMemoryBytes   = 64 << 20
	defaultTableElements = 10000
	defaultOutputBytes   = 1 << 20
)

func (l *Limits) withDefaults() (Limits, error) {
	out := *l
	if out.Deadline <= 0 {
		return out, errors.New("wasm: Limits.Deadline must be > 0")
	}
	if out.MemoryBytes < 0 || out.Tables < 0 || out.Instances < 0 || out.Memories < 0 ||
		out.TableElements < 0 || out.MaxOutputBytes < 0 {
		return out, errors.New("wasm: negative limit")
	}
	if out.MemoryBytes == 0 {
		out.MemoryBytes = defaultMemoryBytes
	}
	if out.Tables == 0 {
		out.Tables = 1
	}
	if out.Instances == 0 {
		out.Instances = 1
	}
	if out.Memories == 0 {
		out.Memories = 1
	}
	if out.TableElements == 0 {
		out.TableElements = defaultTableElements
	}
	if out.MaxOutputBytes == 0 {
		out.MaxOutputBytes = defaultOutputBytes
	}
	return out, nil
}

// convertParams checks params against the function's type.
func convertParams(sig signature, params []int64) ([]any, error) {
	if len(params) != len(sig.params) {
		return nil, fmt.Errorf("wasm: function takes %d params, got %d", len(sig.params), len(params))
	}
	out := make([]any, len(params))
	for i, k := range sig.params {
		switch k {
		case wasmtime.KindI32:
			// Both signed and unsigned readings of an i32 are accepted.
			if params[i] < math.MinInt32 || params[i] > math.MaxUint32 {
				return nil, fmt.Errorf("wasm: param %d: %d does not fit in i32", i, params[i])
			}
			out[i] = int32(uint32(params[i]))
		case wasmtime.KindI64:
			out[i] = params[i]
		default:
			return nil, fmt.Errorf("wasm: param %d has type %s; only i32 and i64 are supported", i, k)
		}
	}
	for i, k := range sig.results {
		if k != wasmtime.KindI32 && k != wasmtime.KindI64 {
			return nil, fmt.Errorf("wasm: result %d has type %s; only i32 and i64 are supported", i, k)
		}
	}
	return out, nil
}

// Run instantiates m in a fresh store and calls c.Function under
// c.Limits. An error means nothing ran (bad function, params or limits,
// closed engine, ctx ended while waiting for a lane); a trap or a limit
// hit while running is a Result with Meter set.
func (e *Engine) Run(ctx context.Context, m *Module, c Call) (*Result, error) {
	if m == nil || m.engine != e {
		return nil, errors.New("wasm: module is nil or from another engine")
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	lim, err := c.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if e.disableFuel && lim.Fuel != 0 {
		return nil, errors.New("wasm: this engine has fuel disabled; Limits.Fuel must be 0")
	}
	sig, ok := m.funcs[c.Function]
	if !ok {
		return nil, fmt.Errorf("wasm: module %s exports no function %q", m.sha, c.Function)
	}
	args, err := convertParams(sig, c.Params)
	if err != nil {
		return nil, err
	}
	env := make([][2]string, 0, len(c.Env))
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("wasm: env entry %d is not K=V", len(env))
		}
		env = append(env, [2]string{k, v})
	}

	// The run's wall clock starts now and covers waiting for a lane: a
	// caller's deadline is a deadline.
	start := time.Now()
	deadline := start.Add(lim.Deadline)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	l, err := e.acquire(rctx.Done(), rctx.Err)
	if err != nil {
		return nil, err
	}
	defer e.release(l)
	wm, err := m.forLane(l)
	if err != nil {
		return nil, err
	}

	rs := &runState{ctx: rctx, http: c.HTTP}
	store := wasmtime.NewStoreWithData(l.engine, rs)
	defer store.Close()
	store.Limiter(lim.MemoryBytes, lim.TableElements, int64(lim.Instances), int64(lim.Tables), int64(lim.Memories))

	fuel := lim.Fuel
	if fuel == 0 {
		fuel = math.MaxInt64 // wasmtime keeps fuel as an i64
	}
	if !e.disableFuel {
		if err := store.SetFuel(fuel); err != nil {
			return nil, fmt.Errorf("wasm: setting fuel: %w", err)
		}
	}

	// A module that imports nothing from WASI cannot read stdin or write
	// output, so it gets no WASI context and no pipes.
	var out *capture
	if m.wasi {
		out, err = newCapture(lim.MaxOutputBytes, c.Stdin)
		if err != nil {
			return nil, err
		}
		defer out.abort()
		wasi, err := wasiConfig(c, env, out)
		if err != nil {
			return nil, err
		}
		store.SetWasi(wasi)
		out.afterSetWasi()
	}

	// Deadline in ticks, rounded up, plus one: the tick in progress is
	// partly gone already.
	remaining := time.Until(deadline)
	ticks := uint64(1)
	if remaining > 0 {
		ticks = uint64((remaining+e.tick-1)/e.tick) + 1
	}
	store.SetEpochDeadline(ticks)
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	// A cancelled ctx cannot wait for the deadline's ticks: advance this
	// lane's epoch at once. Only this run's store is on the lane.
	stop := context.AfterFunc(rctx, func() { l.interrupt(gen, ticks) })
	defer stop()

	res := &Result{}
	runErr := func() error {
		inst, err := l.linker.Instantiate(store, wm)
		if err != nil {
			return err
		}
		f := inst.GetFunc(store, c.Function)
		if f == nil {
			return fmt.Errorf("wasm: internal error: export %q vanished", c.Function)
		}
		v, err := f.Call(store, args...)
		if err != nil {
			return err
		}
		res.Returns = returns(v)
		return nil
	}()
	res.Wall = time.Since(start)
	if !e.disableFuel {
		if left, err := store.GetFuel(); err == nil && left <= fuel {
			res.FuelUsed = fuel - left
		}
	}
	// Closing the store closes its ends of the output pipes, which lets
	// the readers finish.
	store.Close()
	if out != nil {
		res.Stdout, res.Stderr, res.OutputTruncated = out.wait()
	}
	rs.mu.Lock()
	res.NetworkRefusals = rs.refusals
	rs.mu.Unlock()
	if runErr != nil {
		classify(res, runErr, m.growFn, rctx)
		if rs.interrupted.Load() {
			res.Meter = MeterEpoch // a host call stopped at the deadline or cancel
		}
	}
	return res, nil
}

func returns(v any) []int64 {
	switch v := v.(type) {
	case nil:
		return nil
	case int32:
		return []int64{int64(v)}
	case int64:
		return []int64{v}
	case []wasmtime.Val:
		out := make([]int64, len(v))
		for i, x := range v {
			switch x.Kind() {
			case wasmtime.KindI32:
				out[i] = int64(x.I32())
			case wasmtime.KindI64:
				out[i] = x.I64()
			}
		}
		return out
	}
	return nil
}

// Trap codes as numbered by the C API (wasmtime/trap.h, enum
// wasmtime_trap_code_enum), which Trap.Code returns unchanged.
// wasmtime-go v39's own TrapCode constants are wrong from OutOfFuel on:
// they omit ALWAYS_TRAP_ADAPTER (11), so its OutOfFuel (11) never matches
// a real out-of-fuel trap (12). TestInfiniteLoopStoppedByFuel catches a
// renumbering.
const (
	trapUnreachable wasmtime.TrapCode = 9
	trapInterrupt   wasmtime.TrapCode = 10
	trapOutOfFuel   wasmtime.TrapCode = 12
)

// classify turns what ended the run into Meter, Trap and ExitCode.
func classify(res *Result, err error, growFn int32, rctx context.Context) {
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		res.Trap = message(trap.Message())
		code := trap.Code()
		switch {
		case code != nil && *code == trapOutOfFuel:
			res.Meter = MeterFuel
		case code != nil && *code == trapInterrupt:
			res.Meter = MeterEpoch
			if cerr := rctx.Err(); cerr != nil {
				res.Trap += ": " + cerr.Error()
			}
		case code != nil && *code == trapUnreachable && growFn >= 0 && trappedIn(trap, growFn):
			res.Meter = MeterMemory
			res.Trap = "memory.grow refused past the memory limit"
		default:
			res.Meter = MeterTrap
		}
		return
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok {
			res.ExitCode = int(status)
			return // proc_exit is how a WASI command finishes
		}
	}
	res.Trap = message(err.Error())
	if isMemoryLimitRefusal(res.Trap) {
		res.Meter = MeterMemory
	} else {
		res.Meter = MeterTrap
	}
}

// trappedIn reports whether the innermost frame is function fn.
func trappedIn(t *wasmtime.Trap, fn int32) bool {
	frames := t.Frames()
	return len(frames) > 0 && frames[0].FuncIndex() == uint32(fn)
}

// isMemoryLimitRefusal recognises wasmtime's instantiation errors for
// memory over the store limiter. wasmtime-go v39 has no typed error for
// them, so this matches message text; a miss reports "trap", and table
// and instance limits report "trap" by design.
func isMemoryLimitRefusal(msg string) bool {
	return strings.Contains(msg, "exceeds memory limits") ||
		strings.Contains(msg, "memory count too high")
}

// message drops the host stack backtrace wasmtime appends to messages:
// Rust frames of the runtime, of no use to the caller.
func message(s string) string {
	if i := strings.Index(s, "\n\nStack backtrace:"); i >= 0 {
		return s[:i]
	}
	return s
}
