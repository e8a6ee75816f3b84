package wasm

import (
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// growMixWAT exercises the decoder: imports shift the guard's index,
// memory.grow appears in functions reached directly and through a table,
// next to immediates of every shape the rewriter must skip.
const growMixWAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "clawkeep" "http_get" (func $h (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 10)
  (table 2 funcref)
  (type $t (func (result i32)))
  (elem (i32.const 0) $grow2 $size)
  (global $g (mut i64) (i64.const 0))
  (func $grow2 (type $t) (memory.grow (i32.const 2)))
  (func $size (type $t) (memory.size))
  (func (export "main") (result i64)
    (local $acc i64)
    (block $b (block $a (br_table $a $b (i32.const 0)))
      (local.set $acc (i64.const 1000)))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (call_indirect (type $t) (i32.const 0)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (call_indirect (type $t) (i32.const 1)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (memory.grow (i32.const 1)))))
    (memory.fill (i32.const 0) (i32.const 7) (i32.const 16))
    (local.set $acc (i64.add (local.get $acc) (i64.load8_u offset=5 (i32.const 0))))
    (local.set $acc (i64.add (local.get $acc) (i64.trunc_f64_s (f64.const 5.0))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (i32.trunc_sat_f32_s (f32.const 2.0)))))
    (local.set $acc (i64.add (local.get $acc) (select (result i64) (i64.const 10) (i64.const 20) (i32.const 0))))
    (global.set $g (i64.const -123456789012))
    (drop (ref.is_null (ref.func $size)))
    (if (result i64) (i32.eqz (i32.const 0)) (then (local.get $acc)) (else (i64.const 0))))
  (func (export "over") (result i32) (memory.grow (i32.const 100))))`

func TestMemoryGrowRewriteKeepsSemantics(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, growMixWAT)
	if m.growFn != 2+4 { // 2 imports, 4 defined functions
		t.Errorf("guard function index %d, want 6", m.growFn)
	}
	res := run(t, e, m, Call{Function: "main", Limits: Limits{Fuel: 100_000, Deadline: time.Minute}})
	// 1000 + old size 1 + size 3 + old size 3 + byte 7 + 5 + 2 + 20
	if res.Meter != "" || len(res.Returns) != 1 || res.Returns[0] != 1041 {
		t.Fatalf("main = %+v, want 1041", res)
	}
	// Past the module's own declared maximum (10 pages) also traps.
	res = run(t, e, m, Call{Function: "over", Limits: Limits{Fuel: 100_000, Deadline: time.Minute}})
	if res.Meter != MeterMemory {
		t.Fatalf("over: Meter %q trap %q, want memory", res.Meter, res.Trap)
	}
}

func TestModuleWithoutMemoryGrowIsNotRewritten(t *testing.T) {
	code := wat(t, spinWAT)
	out, fn, err := guardMemoryGrow(code)
	if err != nil || fn != -1 || string(out) != string(code) {
		t.Fatalf("guardMemoryGrow changed a module without memory.grow: fn=%d err=%v", fn, err)
	}
}

func TestTableOverLimitRefused(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	for _, src := range []string{
		`(module (table 20000 funcref) (func (export "f")))`,               // more elements than the default 10000
		`(module (table 1 funcref) (table 1 funcref) (func (export "f")))`, // two tables, default 1
	} {
		m := load(t, e, src)
		res := run(t, e, m, Call{Function: "f", Limits: Limits{Fuel: 1000, Deadline: time.Minute}})
		if res.Meter != MeterTrap || res.Trap == "" {
			t.Errorf("%s: %+v, want refused at instantiation", src, res)
		}
	}
}

// FuzzGuardMemoryGrow checks that a module wasmtime accepts is either
// refused by the rewriter or rewritten into a module wasmtime accepts,
// never a panic.
func FuzzGuardMemoryGrow(f *testing.F) {
	for _, src := range []string{growMixWAT, spinWAT, wasiWAT, httpWAT("http://example.com/")} {
		b, err := wasmtime.Wat2Wasm(src)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	eng := wasmtime.NewEngineWithConfig(newConfig(false))
	f.Fuzz(func(t *testing.T, code []byte) {
		if wasmtime.ModuleValidate(eng, code) != nil {
			return
		}
		out, _, err := guardMemoryGrow(code)
		if err != nil {
			return
		}
		if err := wasmtime.ModuleValidate(eng, out); err != nil {
			t.Fatalf("rewritten module is invalid: %v", err)
		}
	})
}
