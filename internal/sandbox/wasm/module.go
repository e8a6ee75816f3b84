package wasm

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// ErrHashMismatch is wrapped when the code's sha256 differs from the one
// the caller pinned.
var ErrHashMismatch = errors.New("wasm: module sha256 mismatch")

// Module is a compiled module, named by the sha256 of its original bytes.
// It belongs to the Engine that loaded it.
type Module struct {
	sha     string               // lowercase hex; constant
	funcs   map[string]signature // exported functions; constant
	engine  *Engine              // never nil
	growFn  int32                // index of the appended grow guard, or -1; constant
	wasi    bool                 // imports from wasi_snapshot_preview1; constant
	machine []byte               // lanes[0]'s serialized code, to load on other lanes; constant

	mu    sync.Mutex
	perLn []*wasmtime.Module // by lane id; guarded by mu; nil entries until first use
}

// signature is an exported function's type, restricted to what Run can
// pass and return.
type signature struct {
	params, results []wasmtime.ValKind
}

// SHA256 returns the lowercase hex sha256 of the module's original bytes.
func (m *Module) SHA256() string { return m.sha }

// Exports lists the exported function names, sorted.
func (m *Module) Exports() []string {
	out := make([]string, 0, len(m.funcs))
	for n := range m.funcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// forLane returns the module compiled for lane l, loading lanes[0]'s
// machine code into l's engine the first time. The bytes are the ones
// this process produced in Load, never input from a caller, which is
// what makes deserializing them safe.
func (m *Module) forLane(l *lane) (*wasmtime.Module, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if wm := m.perLn[l.id]; wm != nil {
		return wm, nil
	}
	wm, err := wasmtime.NewModuleDeserialize(l.engine, m.machine)
	if err != nil {
		return nil, fmt.Errorf("wasm: loading module %s on lane %d: %w", m.sha, l.id, err)
	}
	m.perLn[l.id] = wm
	return wm, nil
}

// parseSHA256 accepts exactly 64 lowercase hex digits: one canonical form,
// so two spellings of one hash never name two cache entries.
func parseSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("wasm: sha256 must be 64 lowercase hex digits, got %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("wasm: sha256 must be 64 lowercase hex digits, got %q at offset %d", c, i)
		}
	}
	return nil
}

// Load checks that sha256(code) is wantSHA256 before the compiler sees a
// byte of code, then returns the compiled module, from the cache when
// this hash was loaded before (a warm Load does no compilation).
func (e *Engine) Load(code []byte, wantSHA256 string) (*Module, error) {
	if err := parseSHA256(wantSHA256); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(code)
	got := hex.EncodeToString(sum[:])
	if got != wantSHA256 {
		return nil, fmt.Errorf("%w: want %s, got %s", ErrHashMismatch, wantSHA256, got)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if m := e.cache.get(got); m != nil {
		e.hits++
		e.mu.Unlock()
		return m, nil
	}
	e.mu.Unlock()

	m, err := e.compile(code, got)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.comps++
	if prev := e.cache.get(got); prev != nil {
		return prev, nil // a concurrent Load won; keep one Module per hash
	}
	e.cache.put(got, m)
	return m, nil
}

func (e *Engine) compile(code []byte, sha string) (*Module, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.isClosed() {
		return nil, ErrClosed
	}
	l0 := e.lanes[0]
	// Validate the original first: the rewrite appends a function, and
	// only a module that was valid without it may refer to nothing past
	// its own functions.
	if err := wasmtime.ModuleValidate(l0.engine, code); err != nil {
		return nil, fmt.Errorf("wasm: invalid module %s: %w", sha, err)
	}
	rewritten, growFn, err := guardMemoryGrow(code)
	if err != nil {
		return nil, fmt.Errorf("wasm: module %s: %w", sha, err)
	}
	wm, err := wasmtime.NewModule(l0.engine, rewritten)
	if err != nil {
		return nil, fmt.Errorf("wasm: compiling module %s: %w", sha, err)
	}
	machine, err := wm.Serialize()
	if err != nil {
		return nil, fmt.Errorf("wasm: serializing module %s: %w", sha, err)
	}
	m := &Module{
		sha:     sha,
		funcs:   map[string]signature{},
		engine:  e,
		growFn:  growFn,
		machine: machine,
		perLn:   make([]*wasmtime.Module, len(e.lanes)),
	}
	m.perLn[0] = wm
	for _, im := range wm.Imports() {
		if im.Module() == "wasi_snapshot_preview1" {
			m.wasi = true
		}
	}
	for _, ex := range wm.Exports() {
		ft := ex.Type().FuncType()
		if ft == nil {
			continue
		}
		var sig signature
		for _, p := range ft.Params() {
			sig.params = append(sig.params, p.Kind())
		}
		for _, r := range ft.Results() {
			sig.results = append(sig.results, r.Kind())
		}
		m.funcs[ex.Name()] = sig
	}
	return m, nil
}

// moduleCache is a least-recently-used map from sha256 to Module. Not
// safe for concurrent use; Engine.mu guards it.
type moduleCache struct {
	max   int
	order *list.List // of *Module, most recent first
	byKey map[string]*list.Element
}

func newModuleCache(max int) *moduleCache {
	return &moduleCache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *moduleCache) get(sha string) *Module {
	el, ok := c.byKey[sha]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*Module)
}

// put adds m, evicting the least recently used entry when full. An
// evicted Module stays usable by whoever holds it; it is only no longer
// found by hash.
func (c *moduleCache) put(sha string, m *Module) {
	c.byKey[sha] = c.order.PushFront(m)
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byKey, old.Value.(*Module).sha)
	}
}
