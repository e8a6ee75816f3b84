// Package wasm runs one exported function of a WebAssembly module under
// hard limits, with wasmtime.
//
// Most callers make one Engine per process, Load a module by its pinned
// sha256, and Run it with a Call that names the function, its inputs and
// its Limits:
//
//	e, _ := wasm.NewEngine(wasm.EngineOptions{})
//	m, err := e.Load(code, "3f7a…") // 64 lowercase hex digits
//	res, err := e.Run(ctx, m, wasm.Call{Function: "_start", Limits: wasm.Limits{Fuel: 1e9, Deadline: 5 * time.Second}})
//
// An error from Run means nothing ran. A run stopped by a limit or a trap
// is a Result whose Meter says which ("fuel", "epoch", "memory", "trap").
//
// # Threat model
//
// The module's bytes and everything it computes are hostile: it may loop
// for ever, allocate without end, write without end to stdout and stderr,
// try every WASI call with every argument, walk out of its workspace with
// "..", absolute paths or symlinks, read the host environment, guess file
// descriptors, and pass out-of-range pointers to host functions.
//
// A module can: use CPU until fuel or the deadline stops it; use memory up
// to Limits.MemoryBytes per memory; read (and, unless ReadOnlyWorkspace,
// write) files under Call.Workspace, preopened as "/workspace"; read
// Call.Stdin, Call.Args and Call.Env; write stdout and stderr, of which
// the first MaxOutputBytes each are kept; and send GET requests through
// clawkeep.http_get, which go through Call.HTTP's egress policy.
//
// A module cannot: see the host environment, argv or stdio (wasmtime's
// WASI inherits nothing unless asked, and nothing asks); open any file
// outside the workspace (no other directory is preopened, and wasmtime
// resolves paths beneath the preopen, refusing "..", absolute paths and
// symlinks that leave it); open a socket (WASI preview 1 sockets only
// work on preopened sockets, and none is); reach the network except
// through http_get and the egress guard; keep memory, disk or goroutines
// after its run (each run gets a fresh store, output is capped while it
// is read); or interrupt another run.
//
// The caller (the kernel) is trusted: its Limits, Workspace, Env and
// egress policy are taken as given. Compiling hostile bytes is in scope
// only after the sha256 check: see below.
//
// # Two independent meters
//
// Fuel counts WebAssembly instructions (Limits.Fuel; 0 means the maximum,
// so only the wall clock limits). It is deterministic, but does not count
// time spent in host calls. Epoch interruption counts wall-clock time
// (Limits.Deadline, cut short by ctx's deadline): a ticker advances each
// lane's epoch every EngineOptions.EpochTick and the store traps once its
// deadline in ticks has passed, so a deadline is honoured to within one
// tick. Cancelling ctx advances the epoch of the run's lane at once;
// each lane runs one store at a time, which is why a cancel cannot hit
// another run. Either meter alone stops an infinite loop.
//
// Neither meter reaches a module blocked in a host call, so the host
// calls that can block honour the run's context themselves: http_get's
// request ends with the run, and WASI poll_oneoff (a sleep) is replaced
// by one that wakes at the deadline or cancel and traps (Meter "epoch").
// Stdio never blocks for long: the host writes stdin and drains stdout
// and stderr on its own goroutines.
//
// Memory is a third limit: wasmtime's store limiter refuses growth past
// Limits.MemoryBytes, and the module is rewritten so that a refused
// memory.grow traps instead of returning -1 (see grow.go; the C API of
// wasmtime-go v39 has no trap-on-grow-failure option). Table growth past
// TableElements still returns -1 to the module without trapping.
//
// # The sha256 rule
//
// Load hashes the bytes and compares them with the caller's pinned
// sha256 before validation, rewriting or compilation: a module the
// operator did not approve never reaches the compiler. The hash must be
// exactly 64 lowercase hex digits, so one module has one name; the cache
// is keyed by it, and a warm Load only looks it up.
package wasm
