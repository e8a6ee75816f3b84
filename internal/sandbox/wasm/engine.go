package wasm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// ErrClosed is returned by Load and Run after Close.
var ErrClosed = errors.New("wasm: engine closed")

// EngineOptions configure an Engine. The zero value is the production setting.
type EngineOptions struct {
	CacheEntries int           // compiled modules kept, by sha256; 0 = 64
	EpochTick    time.Duration // how often the epoch advances; 0 = 10ms
	// Lanes is how many runs execute at once; further runs wait for a free
	// lane. Each lane is its own wasmtime engine, so that cancelling one run
	// (by advancing its lane's epoch) cannot interrupt another. Each lane
	// keeps its own copy of the machine code of every module it ran.
	// 0 = GOMAXPROCS, at least 2.
	Lanes int
	// DisableFuel turns fuel metering off. It exists only for benchmarks
	// measuring fuel's overhead: without fuel, a module is bounded by the
	// wall-clock deadline alone. Run refuses a non-zero Limits.Fuel on
	// such an engine rather than silently not counting.
	DisableFuel bool
}

// Engine compiles and caches modules and runs them. It is safe for
// concurrent use; one per process is enough.
type Engine struct {
	tick        time.Duration // never 0
	disableFuel bool
	lanes       []*lane       // constant after NewEngine; lanes[0] compiles
	free        chan *lane    // idle lanes; a lane is in free or owned by one Run
	stopTick    chan struct{} // closed by Close
	tickDone    chan struct{} // closed when the ticker goroutine returns

	// life is held shared by Load while it uses lanes[0].engine, and
	// exclusively by Close before it frees the engines.
	life   sync.RWMutex
	closer sync.Once

	mu     sync.Mutex
	closed bool         // guarded by mu
	cache  *moduleCache // guarded by mu
	hits   uint64       // cache hits; guarded by mu (test observability)
	comps  uint64       // compilations; guarded by mu
}

// lane is one wasmtime engine with its linker. At most one store runs on
// a lane at a time, which is what makes advancing its epoch a per-run
// interrupt.
type lane struct {
	id     int
	engine *wasmtime.Engine // never nil until Close
	linker *wasmtime.Linker // never nil until Close; WASI (own poll_oneoff) + clawkeep.http_get

	// mu orders interrupts against the lane changing hands: an interrupt
	// for generation g is a no-op once gen != g.
	mu  sync.Mutex
	gen uint64 // guarded by mu; bumped each time a run releases the lane
}

// NewEngine returns an Engine whose every module is compiled with fuel
// consumption (unless DisableFuel) and epoch interruption on.
func NewEngine(o EngineOptions) (*Engine, error) {
	if o.CacheEntries < 0 || o.EpochTick < 0 || o.Lanes < 0 {
		return nil, errors.New("wasm: negative engine option")
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = 64
	}
	if o.EpochTick == 0 {
		o.EpochTick = 10 * time.Millisecond
	}
	if o.Lanes == 0 {
		o.Lanes = max(runtime.GOMAXPROCS(0), 2)
	}
	e := &Engine{
		tick:        o.EpochTick,
		disableFuel: o.DisableFuel,
		free:        make(chan *lane, o.Lanes),
		stopTick:    make(chan struct{}),
		tickDone:    make(chan struct{}),
		cache:       newModuleCache(o.CacheEntries),
	}
	for i := range o.Lanes {
		l, err := newLane(i, o.DisableFuel)
		if err != nil {
			for _, l := range e.lanes {
				l.close()
			}
			return nil, err
		}
		e.lanes = append(e.lanes, l)
		e.free <- l
	}
	go e.ticker()
	return e, nil
}

func newConfig(disableFuel bool) *wasmtime.Config {
	cfg := wasmtime.NewConfig()
	cfg.SetConsumeFuel(!disableFuel)
	cfg.SetEpochInterruption(true)
	// Proposals the memory.grow rewriter (grow.go) does not decode are
	// off, so a module using them fails to compile instead of slipping an
	// unguarded memory.grow past it.
	cfg.SetWasmThreads(false)
	cfg.SetWasmSIMD(false)
	cfg.SetWasmRelaxedSIMD(false)
	cfg.SetWasmMultiMemory(false)
	cfg.SetWasmMemory64(false)
	cfg.SetWasmGC(false)
	cfg.SetWasmFunctionReferences(false)
	cfg.SetWasmWideArithmetic(false)
	return cfg
}

func newLane(id int, disableFuel bool) (*lane, error) {
	eng := wasmtime.NewEngineWithConfig(newConfig(disableFuel))
	lk := wasmtime.NewLinker(eng)
	if err := lk.DefineWasi(); err != nil {
		eng.Close()
		return nil, fmt.Errorf("wasm: defining WASI: %w", err)
	}
	if err := definePoll(lk); err != nil {
		eng.Close()
		return nil, fmt.Errorf("wasm: replacing poll_oneoff: %w", err)
	}
	if err := defineHTTP(lk); err != nil {
		eng.Close()
		return nil, err
	}
	return &lane{id: id, engine: eng, linker: lk}, nil
}

func (l *lane) close() {
	l.linker.Close()
	l.engine.Close()
}

// ticker advances every lane's epoch once per tick. Store deadlines are
// counted in these ticks.
func (e *Engine) ticker() {
	defer close(e.tickDone)
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for {
		select {
		case <-e.stopTick:
			return
		case <-t.C:
			for _, l := range e.lanes {
				l.engine.IncrementEpoch()
			}
		}
	}
}

// acquire takes an idle lane, or fails when ctx ends first.
func (e *Engine) acquire(done <-chan struct{}, ctxErr func() error) (*lane, error) {
	select {
	case l, ok := <-e.free:
		if !ok {
			return nil, ErrClosed
		}
		return l, nil
	case <-done:
		return nil, fmt.Errorf("wasm: waiting for a free lane: %w", ctxErr())
	}
}

// release returns l to the pool. Bumping gen first makes any interrupt
// still in flight for the finished run a no-op.
func (e *Engine) release(l *lane) {
	l.mu.Lock()
	l.gen++
	l.mu.Unlock()
	e.free <- l
}

// interrupt advances l's epoch by ticks+1, so the store of generation gen
// (whose deadline is at most ticks away) traps at its next epoch check.
// Only that store can be affected: it is the only one on the lane.
func (l *lane) interrupt(gen, ticks uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return
	}
	for range ticks + 1 {
		l.engine.IncrementEpoch()
	}
}

// Close waits for runs in flight (they end at their own deadline, or
// sooner by their context), stops the ticker and frees every compiled
// module; Modules from this Engine are unusable afterwards. Load and Run
// then return ErrClosed. A second Close returns nil.
func (e *Engine) Close() error {
	e.closer.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.cache = newModuleCache(1)
		e.mu.Unlock()
		e.life.Lock() // no Load is compiling
		defer e.life.Unlock()
		// Take every lane back; the ticker keeps running meanwhile, so
		// their deadlines still come.
		for range e.lanes {
			<-e.free
		}
		close(e.free) // a later acquire sees ErrClosed
		close(e.stopTick)
		<-e.tickDone
		for _, l := range e.lanes {
			l.close()
		}
	})
	return nil
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}
