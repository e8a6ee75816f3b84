package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/clawkeep/clawkeep/internal/egress"
)

func newTestEngine(t testing.TB, o EngineOptions) *Engine {
	t.Helper()
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func wat(t testing.TB, src string) []byte {
	t.Helper()
	b, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatalf("wat2wasm: %v", err)
	}
	return b
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func load(t testing.TB, e *Engine, src string) *Module {
	t.Helper()
	code := wat(t, src)
	m, err := e.Load(code, hashOf(code))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func run(t testing.TB, e *Engine, m *Module, c Call) *Result {
	t.Helper()
	res, err := e.Run(context.Background(), m, c)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

const spinWAT = `(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "add") (param i32 i64) (result i64)
    (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))
  (func (export "answer") (result i32) (i32.const 42)))`

func TestInfiniteLoopStoppedByFuel(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, spinWAT)
	res := run(t, e, m, Call{Function: "spin", Limits: Limits{Fuel: 100_000, Deadline: time.Minute}})
	if res.Meter != MeterFuel {
		t.Fatalf("Meter = %q (trap %q), want fuel", res.Meter, res.Trap)
	}
	if res.FuelUsed == 0 || res.FuelUsed > 100_000 {
		t.Errorf("FuelUsed = %d, want in (0, 100000]", res.FuelUsed)
	}
}

func TestInfiniteLoopStoppedByEpochWithFuelUnlimited(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, spinWAT)
	res := run(t, e, m, Call{Function: "spin", Limits: Limits{Deadline: 200 * time.Millisecond}})
	if res.Meter != MeterEpoch {
		t.Fatalf("Meter = %q (trap %q), want epoch", res.Meter, res.Trap)
	}
	if res.Wall < 200*time.Millisecond-e.tick {
		// A lower bound only: the deadline must not fire early.
		t.Errorf("stopped after %v, before the 200ms deadline", res.Wall)
	}
}

func TestFunctionCallReturnsAndChecksParams(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, spinWAT)
	lim := Limits{Fuel: 1000, Deadline: time.Minute}
	res := run(t, e, m, Call{Function: "add", Params: []int64{-5, 1 << 40}, Limits: lim})
	if res.Meter != "" || len(res.Returns) != 1 || res.Returns[0] != 1<<40-5 {
		t.Fatalf("add = %+v", res)
	}
	for _, c := range []Call{
		{Function: "nope", Limits: lim},                                         // no such export
		{Function: "add", Params: []int64{1}, Limits: lim},                      // too few params
		{Function: "add", Params: []int64{1 << 33, 0}, Limits: lim},             // does not fit i32
		{Function: "answer", Limits: Limits{Fuel: 1000}},                        // no deadline
		{Function: "answer", Limits: Limits{Deadline: time.Second, Tables: -1}}, // negative limit
		{Function: "answer", Env: []string{"NOEQUALS"}, Limits: lim},            // malformed env
	} {
		if _, err := e.Run(context.Background(), m, c); err == nil {
			t.Errorf("Run(%+v) succeeded, want error before running", c)
		}
	}
}

func TestMemoryGrowthPastLimitTraps(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	// Ignores memory.grow's -1 and keeps asking: without the guard it
	// would spin until fuel runs out and report "fuel".
	m := load(t, e, `(module (memory (export "memory") 1)
	  (func (export "grow") (loop $l (drop (memory.grow (i32.const 1))) (br $l))))`)
	res := run(t, e, m, Call{Function: "grow", Limits: Limits{Fuel: 10_000_000, Deadline: time.Minute, MemoryBytes: 4 << 20}})
	if res.Meter != MeterMemory {
		t.Fatalf("Meter = %q (trap %q), want memory", res.Meter, res.Trap)
	}
}

func TestMemoryGrowthWithinLimitWorks(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, `(module (memory (export "memory") 1)
	  (func (export "grow") (result i32) (drop (memory.grow (i32.const 3))) (memory.size)))`)
	res := run(t, e, m, Call{Function: "grow", Limits: Limits{Fuel: 10_000, Deadline: time.Minute, MemoryBytes: 4 << 16}})
	if res.Meter != "" || len(res.Returns) != 1 || res.Returns[0] != 4 {
		t.Fatalf("got %+v, want 4 pages and no meter", res)
	}
}

func TestModuleOwnTrapIsNotMemory(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	// A module that has memory.grow and also traps on its own must not be
	// reported as a memory limit.
	m := load(t, e, `(module (memory 1)
	  (func (export "boom") (drop (memory.grow (i32.const 0))) unreachable))`)
	res := run(t, e, m, Call{Function: "boom", Limits: Limits{Fuel: 1000, Deadline: time.Minute}})
	if res.Meter != MeterTrap {
		t.Fatalf("Meter = %q (trap %q), want trap", res.Meter, res.Trap)
	}
}

func TestInitialMemoryOverLimitRefused(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, `(module (memory 1000) (func (export "f")))`)
	res := run(t, e, m, Call{Function: "f", Limits: Limits{Fuel: 1000, Deadline: time.Minute, MemoryBytes: 1 << 20}})
	if res.Meter != MeterMemory {
		t.Fatalf("Meter = %q (trap %q), want memory", res.Meter, res.Trap)
	}
}

func TestModuleHashMismatchRefusedBeforeCompile(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	code := wat(t, spinWAT)
	good := hashOf(code)
	other := hashOf([]byte("something else"))
	_, err := e.Load(code, other)
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), other) {
		t.Fatalf("mismatch error = %v; want ErrHashMismatch naming both hashes", err)
	}
	for _, bad := range []string{
		"",                    // empty
		good[:63],             // one digit short
		good + "0",            // one digit long
		strings.ToUpper(good), // uppercase: one canonical form only
		"g" + good[1:],        // not hex
		" " + good[1:],        // space
		"sha256:" + good[:57], // prefixed
	} {
		if _, err := e.Load(code, bad); err == nil {
			t.Errorf("Load accepted hash %q", bad)
		}
	}
	// Garbage with its correct hash is refused by validation, not by the
	// hash check; and nothing was compiled above.
	junk := []byte("\x00asm\x01\x00\x00\x00\xff")
	if _, err := e.Load(junk, hashOf(junk)); err == nil || errors.Is(err, ErrHashMismatch) {
		t.Errorf("Load(junk) = %v, want a validation error", err)
	}
	e.mu.Lock()
	comps := e.comps
	e.mu.Unlock()
	if comps != 0 {
		t.Errorf("%d compilations; a refused hash must not reach the compiler", comps)
	}
}

func TestWarmLoadHitsCache(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	code := wat(t, spinWAT)
	m1, err := e.Load(code, hashOf(code))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := e.Load(append([]byte(nil), code...), hashOf(code))
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	hits, comps := e.hits, e.comps
	e.mu.Unlock()
	if m1 != m2 || hits != 1 || comps != 1 {
		t.Fatalf("same=%v hits=%d comps=%d; want the cached module, 1 hit, 1 compilation", m1 == m2, hits, comps)
	}
	if m1.SHA256() != hashOf(code) {
		t.Errorf("SHA256() = %s", m1.SHA256())
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	e := newTestEngine(t, EngineOptions{CacheEntries: 2})
	var codes [3][]byte
	for i := range codes {
		codes[i] = wat(t, fmt.Sprintf(`(module (func (export "f") (result i32) (i32.const %d)))`, i))
		if _, err := e.Load(codes[i], hashOf(codes[i])); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	_, has0 := e.cache.byKey[hashOf(codes[0])]
	_, has2 := e.cache.byKey[hashOf(codes[2])]
	n := e.cache.order.Len()
	e.mu.Unlock()
	if has0 || !has2 || n != 2 {
		t.Fatalf("cache has0=%v has2=%v len=%d; want the oldest evicted", has0, has2, n)
	}
}

// wasiWAT opens a path relative to a directory fd and copies the file to
// stdout; it also reports fd_prestat_get and echoes stdin.
const wasiWAT = `(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello.txt")
  (data (i32.const 16) "../etc/passwd")
  (data (i32.const 32) "/etc/passwd")
  (data (i32.const 48) "new.txt")
  (data (i32.const 64) "link.txt")
  (func $copy (param $fd i32) (result i32)
    (local $e i32)
    (i32.store (i32.const 208) (i32.const 1024))
    (i32.store (i32.const 212) (i32.const 4096))
    (local.set $e (call $fd_read (local.get $fd) (i32.const 208) (i32.const 1) (i32.const 216)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (i32.store (i32.const 212) (i32.load (i32.const 216)))
    (drop (call $fd_write (i32.const 1) (i32.const 208) (i32.const 1) (i32.const 220)))
    (i32.load (i32.const 216)))
  ;; cat(dirfd, path, len, oflags, rights) -> bytes copied, or -errno
  (func (export "cat") (param $dirfd i32) (param $p i32) (param $n i32) (param $oflags i32) (param $rights i64) (result i32)
    (local $e i32)
    (local.set $e (call $path_open (local.get $dirfd) (i32.const 0) (local.get $p) (local.get $n)
      (local.get $oflags) (local.get $rights) (local.get $rights) (i32.const 0) (i32.const 200)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (call $copy (i32.load (i32.const 200))))
  (func (export "echo") (result i32) (call $copy (i32.const 0)))
  (func (export "prestat") (param $fd i32) (result i32) (call $prestat (local.get $fd) (i32.const 300))))`

const (
	rightRead  = 1 << 1 // fd_read
	rightWrite = 1 << 6 // fd_write
	oCreat     = 1
)

func TestWASIReadsOnlyWorkspace(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, wasiWAT)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the workspace"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("outside the workspace"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	call := func(fn string, ro bool, params ...int64) *Result {
		return run(t, e, m, Call{Function: fn, Params: params, Workspace: dir, ReadOnlyWorkspace: ro,
			Limits: Limits{Fuel: 1_000_000, Deadline: time.Minute}})
	}
	res := call("cat", false, 3, 0, 9, 0, rightRead)
	if res.Meter != "" || string(res.Stdout) != "hello from the workspace" {
		t.Fatalf("reading hello.txt: %+v stdout %q", res, res.Stdout)
	}
	for _, c := range []struct {
		name   string
		params []int64
	}{
		{"dot-dot escape from the workspace", []int64{3, 16, 13, 0, rightRead}},
		{"absolute path through the workspace fd", []int64{3, 32, 11, 0, rightRead}},
		{"absolute path through a second preopen", []int64{4, 32, 11, 0, rightRead}},
		{"fd 5, in case preopens are numbered sparsely", []int64{5, 32, 11, 0, rightRead}},
		{"symlink from the workspace to a file outside", []int64{3, 64, 8, 0, rightRead}},
	} {
		res := call("cat", false, c.params...)
		if res.Meter != "" || len(res.Returns) != 1 || res.Returns[0] >= 0 || len(res.Stdout) != 0 {
			t.Errorf("%s: %+v stdout %q; want a WASI error", c.name, res, res.Stdout)
		}
	}
	if r := call("prestat", false, 3); r.Returns[0] != 0 {
		t.Errorf("fd 3 is not a preopen: errno %d", r.Returns[0])
	}
	if r := call("prestat", false, 4); r.Returns[0] == 0 {
		t.Errorf("fd 4 is a preopen; only /workspace may be")
	}
	// Read-only workspace: creating a file fails and leaves no file, and
	// an existing file cannot be opened for writing.
	res = call("cat", true, 3, 48, 7, oCreat, rightRead|rightWrite)
	if res.Returns[0] >= 0 {
		t.Errorf("created a file in a read-only workspace: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("new.txt exists after a read-only run: %v", err)
	}
	res = call("cat", true, 3, 0, 9, 0, rightRead|rightWrite)
	if res.Returns[0] >= 0 {
		t.Errorf("opened hello.txt for writing in a read-only workspace: %+v", res)
	}
	// The same calls work on a writable workspace, so the refusals above
	// are the read-only setting and not a broken call.
	res = call("cat", false, 3, 48, 7, oCreat, rightRead|rightWrite)
	if res.Meter != "" || res.Returns[0] != 0 {
		t.Errorf("creating new.txt in a writable workspace: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.txt")); err != nil {
		t.Errorf("new.txt missing after a writable run: %v", err)
	}
	// Without a workspace nothing at all is preopened.
	res = run(t, e, m, Call{Function: "prestat", Params: []int64{3}, Limits: Limits{Fuel: 1_000_000, Deadline: time.Minute}})
	if res.Returns[0] == 0 {
		t.Errorf("fd 3 is preopened without a workspace")
	}
}

func TestStdinIsTheCallersBytes(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, wasiWAT)
	res := run(t, e, m, Call{Function: "echo", Stdin: []byte("ping"), Limits: Limits{Fuel: 1_000_000, Deadline: time.Minute}})
	if string(res.Stdout) != "ping" {
		t.Fatalf("stdout %q, want ping (%+v)", res.Stdout, res)
	}
}

func TestHostEnvironmentInvisible(t *testing.T) {
	t.Setenv("CLAWKEEP_TEST_SECRET", "hunter2")
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, `(module
	  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
	  (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
	  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
	  (memory (export "memory") 1)
	  (func (export "_start")
	    (drop (call $sizes (i32.const 0) (i32.const 4)))
	    (drop (call $get (i32.const 1024) (i32.const 8192)))
	    (i32.store (i32.const 16) (i32.const 8192))
	    (i32.store (i32.const 20) (i32.load (i32.const 4)))
	    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))`)
	res := run(t, e, m, Call{Function: "_start", Env: []string{"VISIBLE=yes"}, Limits: Limits{Fuel: 1_000_000, Deadline: time.Minute}})
	if string(res.Stdout) != "VISIBLE=yes\x00" {
		t.Fatalf("module saw environment %q, want only VISIBLE=yes", res.Stdout)
	}
}

func TestProcExitCodeReported(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, `(module
	  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
	  (memory (export "memory") 1)
	  (func (export "_start") (call $exit (i32.const 3))))`)
	res := run(t, e, m, Call{Function: "_start", Limits: Limits{Fuel: 1000, Deadline: time.Minute}})
	if res.Meter != "" || res.ExitCode != 3 {
		t.Fatalf("got %+v, want exit code 3 and no meter", res)
	}
}

func TestWASISocketsUnusable(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	// sock_accept on the only descriptors a module could guess.
	m := load(t, e, `(module
	  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
	  (memory (export "memory") 1)
	  (func (export "accept") (param i32) (result i32) (call $accept (local.get 0) (i32.const 0) (i32.const 8))))`)
	for fd := int64(0); fd < 8; fd++ {
		res := run(t, e, m, Call{Function: "accept", Params: []int64{fd}, Limits: Limits{Fuel: 10000, Deadline: time.Minute}})
		if res.Meter != "" || res.Returns[0] == 0 {
			t.Errorf("sock_accept(%d) = %+v; want an errno", fd, res)
		}
	}
}

// httpWAT fetches the URL in its data segment and writes the body to
// stdout; "bad" passes a pointer past the end of memory.
func httpWAT(url string) string {
	return fmt.Sprintf(`(module
	  (import "clawkeep" "http_get" (func $get (param i32 i32 i32 i32) (result i32)))
	  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
	  (memory (export "memory") 1)
	  (data (i32.const 0) %q)
	  (func (export "get") (result i32)
	    (local $n i32)
	    (local.set $n (call $get (i32.const 0) (i32.const %d) (i32.const 4096) (i32.const 1024)))
	    (if (i32.gt_s (local.get $n) (i32.const 0)) (then
	      (i32.store (i32.const 2048) (i32.const 4096))
	      (i32.store (i32.const 2052) (local.get $n))
	      (drop (call $fd_write (i32.const 1) (i32.const 2048) (i32.const 1) (i32.const 2056)))))
	    (local.get $n))
	  (func (export "bad") (result i32) (call $get (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 10)))
	  (func (export "spin_after_get") (drop (call $get (i32.const 0) (i32.const %d) (i32.const 4096) (i32.const 1024)))
	    (loop $l (br $l)))
	  (func (export "loop_after_get") (result i32) (local $i i32)
	    (drop (call $get (i32.const 0) (i32.const %d) (i32.const 4096) (i32.const 1024)))
	    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
	      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
	    (i32.const 7)))`, url, len(url), len(url), len(url))
}

func TestHTTPThroughEgressGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello over http")
	}))
	defer srv.Close()
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, httpWAT(srv.URL+"/"))
	lim := Limits{Fuel: 1_000_000, Deadline: time.Minute}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	allowed := egress.NewClient(egress.Policy{Mode: egress.AllowAll, Exempt: loopback}, egress.Limits{})
	res := run(t, e, m, Call{Function: "get", HTTP: allowed, Limits: lim})
	if string(res.Stdout) != "hello over http" || res.Returns[0] != int64(len("hello over http")) || len(res.NetworkRefusals) != 0 {
		t.Fatalf("allowed request: %+v stdout %q", res, res.Stdout)
	}

	refused := func(name string, c *egress.Client, m *Module) {
		t.Helper()
		res := run(t, e, m, Call{Function: "get", HTTP: c, Limits: lim})
		if len(res.Returns) != 1 || res.Returns[0] != httpRefused || len(res.NetworkRefusals) != 1 || len(res.Stdout) != 0 {
			t.Errorf("%s: %+v; want -1 and one refusal", name, res)
		}
	}
	// Loopback without an exemption is a special-purpose range.
	refused("loopback not exempted", egress.NewClient(egress.Policy{Mode: egress.AllowAll}, egress.Limits{}), m)
	refused("allowlist naming another host", egress.NewClient(egress.Policy{Mode: egress.Allowlist, Hosts: []string{"example.com"}, Exempt: loopback}, egress.Limits{}), m)
	refused("no client at all", nil, m)
	// Cloud metadata is refused even under AllowAll with everything exempted.
	meta := load(t, e, httpWAT("http://169.254.169.254/latest/meta-data/"))
	everything := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	refused("cloud metadata", egress.NewClient(egress.Policy{Mode: egress.AllowAll, Exempt: everything}, egress.Limits{}), meta)

	res = run(t, e, m, Call{Function: "bad", HTTP: allowed, Limits: lim})
	if res.Returns[0] != httpBadInput {
		t.Errorf("URL past the end of memory: %+v, want -3", res)
	}
}

func TestModuleWithoutHTTPImportInstantiates(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, spinWAT)
	res := run(t, e, m, Call{Function: "answer", Limits: Limits{Fuel: 1000, Deadline: time.Minute}})
	if res.Meter != "" || res.Returns[0] != 42 {
		t.Fatalf("got %+v", res)
	}
}

func TestCancelStopsRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The server cancels the run's context when the module's request
	// arrives, so the cancel lands while the module is running (it then
	// spins for ever) without the test guessing a delay.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
	}))
	defer srv.Close()
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, httpWAT(srv.URL+"/"))
	c := egress.NewClient(egress.Policy{Mode: egress.AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, egress.Limits{})
	res, err := e.Run(ctx, m, Call{Function: "spin_after_get", HTTP: c, Limits: Limits{Deadline: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meter != MeterEpoch || !strings.Contains(res.Trap, "context canceled") {
		t.Fatalf("Meter %q trap %q; want epoch after context canceled", res.Meter, res.Trap)
	}
	// The lane is reusable and not left interrupted.
	m2 := load(t, e, spinWAT)
	for range len(e.lanes) * 2 {
		if res := run(t, e, m2, Call{Function: "answer", Limits: Limits{Fuel: 1000, Deadline: time.Minute}}); res.Meter != "" {
			t.Fatalf("run after cancel: %+v", res)
		}
	}
}

// TestCancelDoesNotInterruptOtherRuns cancels run A while run B sits in
// a host call on another lane; B must then finish normally. With one
// shared epoch, A's interrupt would push B past its deadline too.
func TestCancelDoesNotInterruptOtherRuns(t *testing.T) {
	aIn, bIn, bGo := make(chan struct{}), make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a":
			close(aIn)
		case "/b":
			close(bIn)
			<-bGo
		}
	}))
	defer srv.Close()
	e := newTestEngine(t, EngineOptions{Lanes: 2})
	ma, mb := load(t, e, httpWAT(srv.URL+"/a")), load(t, e, httpWAT(srv.URL+"/b"))
	c := egress.NewClient(egress.Policy{Mode: egress.AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, egress.Limits{})
	lim := Limits{Deadline: 10 * time.Minute}

	bRes := make(chan *Result, 1)
	go func() {
		res, err := e.Run(context.Background(), mb, Call{Function: "loop_after_get", HTTP: c, Limits: lim})
		if err != nil {
			t.Error(err)
		}
		bRes <- res
	}()
	<-bIn
	ctx, cancel := context.WithCancel(context.Background())
	aRes := make(chan *Result, 1)
	go func() {
		res, err := e.Run(ctx, ma, Call{Function: "spin_after_get", HTTP: c, Limits: lim})
		if err != nil {
			t.Error(err)
		}
		aRes <- res
	}()
	<-aIn
	cancel()
	if res := <-aRes; res == nil || res.Meter != MeterEpoch {
		t.Fatalf("A: %+v, want stopped by the cancel", res)
	}
	close(bGo)
	if res := <-bRes; res == nil || res.Meter != "" || res.Returns[0] != 7 {
		t.Fatalf("B was disturbed by A's cancel: %+v", res)
	}
}

func TestCallerDeadlineCutsRun(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, spinWAT)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := e.Run(ctx, m, Call{Function: "spin", Limits: Limits{Deadline: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meter != MeterEpoch {
		t.Fatalf("Meter %q trap %q; want epoch at the caller's deadline", res.Meter, res.Trap)
	}
}

func TestStdoutBombTruncated(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, `(module
	  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
	  (memory (export "memory") 1)
	  (func (export "_start")
	    (i32.store (i32.const 0) (i32.const 1024))
	    (i32.store (i32.const 4) (i32.const 4096))
	    (loop $l
	      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
	      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
	      (br $l))))`)
	res := run(t, e, m, Call{Function: "_start", Limits: Limits{Fuel: 200_000, Deadline: time.Minute, MaxOutputBytes: 10_000}})
	if res.Meter != MeterFuel {
		t.Errorf("Meter = %q (trap %q), want fuel", res.Meter, res.Trap)
	}
	if len(res.Stdout) != 10_000 || len(res.Stderr) != 10_000 || !res.OutputTruncated {
		t.Fatalf("stdout %d stderr %d truncated %v; want 10000 each, truncated", len(res.Stdout), len(res.Stderr), res.OutputTruncated)
	}
}

func TestConcurrentRuns(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Lanes: 3})
	m := load(t, e, spinWAT)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				res, err := e.Run(context.Background(), m, Call{Function: "spin", Limits: Limits{Fuel: 50_000, Deadline: time.Minute}})
				if err != nil || res.Meter != MeterFuel {
					errs <- fmt.Errorf("spin %d: %v %+v", i, err, res)
				}
				return
			}
			res, err := e.Run(context.Background(), m, Call{Function: "add", Params: []int64{int64(i), 100}, Limits: Limits{Fuel: 1000, Deadline: time.Minute}})
			if err != nil || res.Meter != "" || res.Returns[0] != int64(i)+100 {
				errs <- fmt.Errorf("add %d: %v %+v", i, err, res)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunAfterCloseRefused(t *testing.T) {
	e, err := NewEngine(EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, e, spinWAT)
	e.Close()
	if _, err := e.Run(context.Background(), m, Call{Function: "answer", Limits: Limits{Deadline: time.Second}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v", err)
	}
	code := wat(t, spinWAT)
	if _, err := e.Load(code, hashOf(code)); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

const sleepWAT = `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; sleep(ns) -> nevents*1000 + the event's userdata (77)
  (func (export "sleep") (param $ns i64) (result i32)
    (i64.store (i32.const 0) (i64.const 77))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (i32.add (i32.mul (i32.load (i32.const 128)) (i32.const 1000)) (i32.wrap_i64 (i64.load (i32.const 64))))))`

// TestSleepInHostCallStoppedByDeadline: epoch interruption cannot reach a
// module blocked in a host call, so a long poll_oneoff sleep would hold a
// lane past the deadline unless the host call itself honours it.
func TestSleepInHostCallStoppedByDeadline(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	m := load(t, e, sleepWAT)
	res := run(t, e, m, Call{Function: "sleep", Params: []int64{int64(time.Millisecond)}, Limits: Limits{Fuel: 10_000, Deadline: time.Minute}})
	if res.Meter != "" || res.Returns[0] != 1077 {
		t.Fatalf("short sleep: %+v, want 1077", res)
	}
	res = run(t, e, m, Call{Function: "sleep", Params: []int64{int64(30 * time.Second)}, Limits: Limits{Fuel: 10_000, Deadline: 200 * time.Millisecond}})
	if res.Meter != MeterEpoch {
		t.Fatalf("long sleep: Meter %q trap %q, want epoch", res.Meter, res.Trap)
	}
}
