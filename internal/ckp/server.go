package ckp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is the agent behind a connection. Methods are called
// concurrently. Errors reach the peer through ErrorFrom.
type Handler interface {
	// Initialize is called at most once successfully per connection.
	Initialize(ctx context.Context, p InitializeParams) (Agent, error)
	// ToolCall runs one call; ctx is cancelled when a shutdown's grace ends.
	ToolCall(ctx context.Context, p ToolCallParams) (*ToolCallResult, error)
	ToolApprove(ctx context.Context, p DecisionParams) error
	ToolDeny(ctx context.Context, p DecisionParams) error
	// Close is called once, after the connection stopped.
	Close() error
}

// Server serves CKP connections. Its fields must not change while Serve
// runs; one Server may serve several connections, one Handler each.
type Server struct {
	Handler Handler // never nil

	// MaxFrameBytes bounds a line; 0 means 1 MiB. A longer line is
	// discarded up to its newline and answered -32600 (id null).
	MaxFrameBytes int

	// MaxInFlight bounds concurrent tool calls and, separately, concurrent
	// other requests, so that calls blocked on approval can never starve
	// the approvals that release them; 0 means 1024. A request beyond the
	// bound is answered -32603 with data.limit. It also bounds the length
	// of a batch.
	MaxInFlight int

	Logf func(format string, args ...any) // or nil; never given params or results

	// Now is a test knob: the clock for uptime and heartbeat timestamps,
	// or nil for time.Now.
	Now func() time.Time
}

const (
	defaultMaxFrame    = 1 << 20
	defaultMaxInFlight = 1024
	defaultHeartbeat   = 30 * time.Second
	// minHeartbeat keeps a mistaken tiny interval from flooding the peer.
	minHeartbeat = 10 * time.Millisecond
)

// state is a CKP lifecycle state; the zero state is invalid.
type state int

const (
	stateInit state = iota + 1
	stateStarting
	stateReady
	stateStopping
	stateStopped
	stateError
)

func (s state) String() string {
	switch s {
	case stateInit:
		return "INIT"
	case stateStarting:
		return "STARTING"
	case stateReady:
		return "READY"
	case stateStopping:
		return "STOPPING"
	case stateStopped:
		return "STOPPED"
	case stateError:
		return "ERROR"
	}
	return "invalid"
}

// kind is what a method name means to this runtime.
type kind int

const (
	kindUnknown kind = iota
	kindInitialize
	kindInitialized
	kindStatus
	kindShutdown
	kindToolCall
	kindToolApprove
	kindToolDeny
	kindLevel3 // memory, swarm and task methods: defined by CKP, not served by a level-2 runtime
)

func kindOf(method string) kind {
	switch method {
	case "claw.initialize":
		return kindInitialize
	case "claw.initialized":
		return kindInitialized
	case "claw.status":
		return kindStatus
	case "claw.shutdown":
		return kindShutdown
	case "claw.tool.call":
		return kindToolCall
	case "claw.tool.approve":
		return kindToolApprove
	case "claw.tool.deny":
		return kindToolDeny
	case "claw.memory.query", "claw.memory.store", "claw.memory.compact",
		"claw.swarm.delegate", "claw.swarm.report", "claw.swarm.broadcast", "claw.swarm.discover",
		"claw.task.create", "claw.task.get", "claw.task.list", "claw.task.cancel", "claw.task.subscribe":
		return kindLevel3
	}
	return kindUnknown
}

// allowed is the lifecycle gate: may a method of kind k run in state st?
func allowed(k kind, st state) *Error {
	switch {
	case k == kindInitialized:
		return nil
	case k == kindInitialize:
		switch st {
		case stateInit:
			return nil
		case stateStarting:
			return errorf(CodeInvalidRequest, "invalid request: initialize already in progress")
		case stateReady:
			return errorf(CodeInvalidRequest, "invalid request: already initialized")
		}
	case st == stateReady:
		return nil
	case st == stateStopping && (k == kindToolApprove || k == kindToolDeny):
		// A drain waits for calls that may be waiting for exactly this.
		return nil
	case st == stateInit || st == stateStarting:
		return errorf(CodeInvalidRequest, "invalid request: not initialized")
	}
	return errorf(CodeInvalidRequest, "invalid request: the connection is %s", st)
}

// errHandlerPanic stands in for a handler's panic value, which may hold
// anything; ErrorFrom turns it into a bare internal error.
var errHandlerPanic = errors.New("ckp: handler panicked")

// Serve serves one connection: requests from in, replies and heartbeats
// to out. It returns after claw.shutdown completed (nil), on EOF of in
// (nil), when ctx is cancelled (ctx.Err()), or when in or out fail; in
// every case in-flight requests are finished or cancelled, their replies
// written, out flushed and Handler.Close called. Bad input never ends it.
//
// EOF is a shutdown with no grace: running calls are cancelled at once
// and their replies still written; but a claw.shutdown already draining
// keeps the grace it asked for, so a piped session can end with one.
//
// Serve reads no further line while Handler.Initialize runs, so a client
// may pipeline requests behind claw.initialize. A Read on in that is
// blocked when Serve returns is left to finish in the background; the
// caller owns in and may close it.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if s.Handler == nil {
		return errors.New("ckp: Server.Handler is nil")
	}
	c := s.newConn(ctx, out)
	items := make(chan item)
	quit := make(chan struct{})
	go c.read(in, items, quit)

	err := c.loop(ctx, items)
	close(quit)
	c.stop()
	if werr := c.out.close(); err == nil {
		err = werr
	}
	if cerr := s.Handler.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ckp: closing handler: %w", cerr)
	}
	return err
}

// conn is the state of one connection.
type conn struct {
	h        Handler                       // never nil
	logf     func(format string, a ...any) // never nil
	now      func() time.Time              // never nil
	maxFrame int
	limit    int
	out      *writer // never nil

	base        context.Context // parent of every request; cancelled when the connection stops
	cancelBase  context.CancelFunc
	calls       context.Context // parent of tool calls; cancelled when a shutdown's grace ends
	cancelCalls context.CancelFunc

	work  sync.WaitGroup // request goroutines, batch collectors, the heartbeat
	tools sync.WaitGroup // tool calls; no Add once the state has left READY

	stopping     chan struct{} // closed (once, by closeStopping) when READY ends for good
	stopOnce     sync.Once
	shutdownDone chan struct{} // closed when claw.shutdown has replied
	initializing chan struct{} // owned by loop; nil, or closed when Handler.Initialize returns

	mu      sync.Mutex
	state   state     // guarded by mu
	readyAt time.Time // guarded by mu; set when the state becomes READY
	nTools  int       // guarded by mu; tool calls in flight
	nOther  int       // guarded by mu; other requests in flight in goroutines
}

func (s *Server) newConn(ctx context.Context, out io.Writer) *conn {
	c := &conn{
		h: s.Handler, logf: s.Logf, now: s.Now,
		maxFrame: s.MaxFrameBytes, limit: s.MaxInFlight,
		stopping: make(chan struct{}), shutdownDone: make(chan struct{}),
		state: stateInit,
	}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxFrame <= 0 {
		c.maxFrame = defaultMaxFrame
	}
	if c.limit <= 0 {
		c.limit = defaultMaxInFlight
	}
	c.base, c.cancelBase = context.WithCancel(ctx)
	c.calls, c.cancelCalls = context.WithCancel(c.base)
	c.out = newWriter(out)
	return c
}

type item struct {
	line    []byte
	tooLong bool
	err     error
}

// read feeds lines to loop until input ends or loop quits.
func (c *conn) read(in io.Reader, items chan<- item, quit <-chan struct{}) {
	lr := newLineReader(in, c.maxFrame)
	for {
		line, tooLong, err := lr.next()
		var it item
		switch {
		case err != nil:
			it.err = err
		case tooLong:
			it.tooLong = true
		case len(bytes.Trim(line, " \t\r")) == 0:
			continue
		default:
			it.line = bytes.Clone(line)
		}
		select {
		case items <- it:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// loop dispatches lines until the connection must stop, and says why.
func (c *conn) loop(ctx context.Context, items <-chan item) error {
	for {
		next := items
		if c.initializing != nil {
			next = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.shutdownDone:
			return nil
		case <-c.out.failed:
			c.setState(stateError)
			return c.out.err
		case <-c.initializing:
			c.initializing = nil
		case it := <-next:
			if it.err != nil {
				return c.endOfInput(ctx, it.err)
			}
			select {
			case <-c.shutdownDone:
				return nil
			default:
			}
			c.handleLine(it)
		}
	}
}

// endOfInput lets a claw.shutdown in progress finish its drain.
func (c *conn) endOfInput(ctx context.Context, err error) error {
	if !errors.Is(err, io.EOF) {
		c.logf("ckp: reading requests: %v", err)
		err = fmt.Errorf("ckp: reading requests: %w", err)
	} else {
		err = nil
	}
	c.mu.Lock()
	draining := c.state == stateStopping // only a claw.shutdown gets there before stop
	c.mu.Unlock()
	if draining {
		select {
		case <-c.shutdownDone:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.out.failed:
			c.setState(stateError)
			return c.out.err
		}
	}
	return err
}

// stop cancels whatever still runs and waits until every reply is queued.
func (c *conn) stop() {
	c.mu.Lock()
	if c.state != stateError {
		c.state = stateStopping
	}
	c.mu.Unlock()
	c.closeStopping()
	c.cancelBase()
	c.work.Wait()
	c.setState(stateStopped)
}

func (c *conn) setState(st state) {
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
}

func (c *conn) closeStopping() { c.stopOnce.Do(func() { close(c.stopping) }) }

func (c *conn) send(b []byte) {
	if b != nil {
		c.out.send(b)
	}
}

func (c *conn) handleLine(it item) {
	if it.tooLong {
		c.send(encodeError(nil, frameTooLong(c.maxFrame)))
		return
	}
	f, e := decodeFrame(it.line, c.limit)
	if e != nil {
		c.send(encodeError(nil, e))
		return
	}
	if !f.batch {
		c.dispatch(f.msgs[0], c.send)
		return
	}
	replies := make([][]byte, len(f.msgs))
	var wg sync.WaitGroup
	wg.Add(len(f.msgs))
	for i, m := range f.msgs {
		c.dispatch(m, func(b []byte) { replies[i] = b; wg.Done() })
	}
	c.work.Add(1)
	go func() {
		defer c.work.Done()
		wg.Wait()
		c.send(joinBatch(replies))
	}()
}

// joinBatch makes one array line of the replies, skipping notifications'
// nils; a batch of notifications gets no reply at all.
func joinBatch(replies [][]byte) []byte {
	var b []byte
	for _, r := range replies {
		if r == nil {
			continue
		}
		if b == nil {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, bytes.TrimSuffix(r, []byte("\n"))...)
	}
	if b == nil {
		return nil
	}
	return append(b, ']', '\n')
}

// dispatch runs one message and calls reply exactly once, with nil when
// nothing is to be sent. Lifecycle transitions happen here, on the
// reading goroutine, so that the line after a claw.shutdown already sees
// STOPPING and the line after a claw.initialize sees its outcome.
func (c *conn) dispatch(m message, reply func([]byte)) {
	req := m.req
	if m.err != nil {
		reply(encodeError(req.id, m.err))
		return
	}
	answer := func(e *Error) {
		if req.notification() {
			reply(nil)
			return
		}
		reply(encodeError(req.id, e))
	}
	k := kindOf(req.method)
	if k == kindUnknown {
		answer(errorf(CodeMethodNotFound, "method not found: %s", quoteField("", req.method)))
		return
	}
	if req.params != nil && req.params[0] != '{' {
		answer(wrongType("", "an object"))
		return
	}
	c.mu.Lock()
	e := allowed(k, c.state)
	c.mu.Unlock()
	if e != nil {
		answer(e)
		return
	}
	result := func(v any) {
		if req.notification() {
			reply(nil)
			return
		}
		reply(encodeResult(req.id, v))
	}

	switch k {
	case kindInitialized:
		if e := decodeEmpty(req.params); e != nil {
			answer(e)
			return
		}
		result(struct{}{})
	case kindStatus:
		if e := decodeEmpty(req.params); e != nil {
			answer(e)
			return
		}
		c.mu.Lock()
		st, up := c.state, c.now().Sub(c.readyAt)
		c.mu.Unlock()
		result(statusResult{State: st.String(), UptimeMS: up.Milliseconds()})
	case kindLevel3:
		answer(errorf(CodeMethodNotFound, "method not found: %s is not served by this runtime (conformance level 2)", req.method))
	case kindInitialize:
		c.initialize(req, reply, answer)
	case kindShutdown:
		c.shutdown(req, reply, answer)
	case kindToolCall:
		p, e := decodeToolCall(req.params)
		if e != nil {
			answer(e)
			return
		}
		if e := c.enter(k, nil); e != nil {
			answer(e)
			return
		}
		c.spawn(k, req, c.calls, reply, func(ctx context.Context) (any, error) {
			res, err := c.h.ToolCall(ctx, p)
			if err != nil {
				return nil, err
			}
			if res == nil {
				c.logf("ckp: claw.tool.call handler returned neither a result nor an error")
				return nil, errors.New("ckp: nil result")
			}
			r := *res
			if r.Content == nil {
				r.Content = []Content{}
			}
			return r, nil
		}, nil)
	case kindToolApprove, kindToolDeny:
		p, e := decodeDecision(req.params)
		if e != nil {
			answer(e)
			return
		}
		if e := c.enter(k, nil); e != nil {
			answer(e)
			return
		}
		decide := c.h.ToolApprove
		if k == kindToolDeny {
			decide = c.h.ToolDeny
		}
		c.spawn(k, req, c.base, reply, func(ctx context.Context) (any, error) {
			if err := decide(ctx, p); err != nil {
				return nil, err
			}
			return acknowledged{true}, nil
		}, nil)
	}
}

// enter rechecks the lifecycle, admits one more request of kind k within
// MaxInFlight and, if given, applies transition; all under one lock so
// that no other transition can slip in between.
func (c *conn) enter(k kind, transition func()) *Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := allowed(k, c.state); e != nil {
		return e
	}
	n := &c.nOther
	if k == kindToolCall {
		n = &c.nTools
	}
	if *n >= c.limit {
		e := errorf(CodeInternal, "internal error: too many requests in flight")
		e.Data = map[string]any{"limit": c.limit}
		return e
	}
	*n++
	if k == kindToolCall {
		c.tools.Add(1)
	}
	if transition != nil {
		transition()
	}
	return nil
}

// release undoes enter's count once the handler has returned. For a tool
// call, c.tools is left to spawn: it must wait until the reply is queued.
func (c *conn) release(k kind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k == kindToolCall {
		c.nTools--
		return
	}
	c.nOther--
}

// spawn runs fn for a request of kind k, admitted by enter, on its own
// goroutine; it replies with fn's outcome, then calls after (or nil) with
// whether fn succeeded.
func (c *conn) spawn(k kind, req request, parent context.Context, reply func([]byte), fn func(context.Context) (any, error), after func(ok bool)) {
	c.work.Add(1)
	go func() {
		defer c.work.Done()
		ctx, cancel := context.WithCancel(parent)
		res, err := c.protect(req.method, func() (any, error) { return fn(ctx) })
		var b []byte
		switch {
		case req.notification():
		case err != nil:
			b = encodeError(req.id, wireError(ctx, err))
		default:
			b = encodeResult(req.id, res)
		}
		cancel()
		c.release(k)
		reply(b)
		if k == kindToolCall {
			// Only now: a drain that returns must find this reply queued.
			c.tools.Done()
		}
		if after != nil {
			after(err == nil)
		}
	}()
}

// protect turns a handler's panic into an internal error: one buggy
// request must not take down the runtime and every call in flight.
func (c *conn) protect(method string, fn func() (any, error)) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value may hold anything; only its type is logged.
			c.logf("ckp: %s handler panicked (%T); answered as an internal error", method, r)
			res, err = nil, errHandlerPanic
		}
	}()
	return fn()
}

// wireError is ErrorFrom, except that an uncoded error from a request the
// connection cancelled says so instead of a bare internal error.
func wireError(ctx context.Context, err error) *Error {
	var e *Error
	var coded Coded
	if ctx.Err() != nil && !errors.As(err, &e) && !errors.As(err, &coded) {
		return errorf(CodeInternal, "internal error: request cancelled because the connection is stopping")
	}
	return ErrorFrom(err)
}

func (c *conn) initialize(req request, reply func([]byte), answer func(*Error)) {
	p, e := decodeInitialize(req.params)
	if e != nil {
		answer(e)
		return
	}
	version, e := negotiate(p.ProtocolVersion)
	if e != nil {
		answer(e)
		return
	}
	if e := c.enter(kindInitialize, func() { c.state = stateStarting }); e != nil {
		answer(e)
		return
	}
	done := make(chan struct{})
	c.initializing = done
	var agent Agent
	c.spawn(kindInitialize, req, c.base, reply, func(ctx context.Context) (any, error) {
		var err error
		if agent, err = c.h.Initialize(ctx, p); err != nil {
			return nil, err
		}
		return initResult(version, p.Capabilities, agent), nil
	}, func(ok bool) {
		c.mu.Lock()
		ready := false
		switch {
		case c.state != stateStarting: // the connection began stopping meanwhile
		case ok:
			c.state, c.readyAt, ready = stateReady, c.now(), true
		default:
			c.state = stateInit // the client may retry
		}
		c.mu.Unlock()
		if ready {
			c.work.Add(1)
			go c.heartbeat(agent.Heartbeat)
		}
		close(done)
	})
}

func (c *conn) shutdown(req request, reply func([]byte), answer func(*Error)) {
	p, e := decodeShutdown(req.params)
	if e != nil {
		answer(e)
		return
	}
	if e := c.enter(kindShutdown, func() { c.state = stateStopping }); e != nil {
		answer(e)
		return
	}
	c.closeStopping()
	c.spawn(kindShutdown, req, c.base, reply, func(ctx context.Context) (any, error) {
		return drainedResult{c.drain(ctx, p.timeout)}, nil
	}, func(bool) { close(c.shutdownDone) })
}

// drain waits up to grace for the tool calls in flight, then cancels the
// rest and waits for their replies to be queued. It reports whether every
// call finished on its own in time.
func (c *conn) drain(ctx context.Context, grace time.Duration) bool {
	c.mu.Lock()
	inFlight := c.nTools
	c.mu.Unlock()
	idle := make(chan struct{})
	go func() { c.tools.Wait(); close(idle) }()
	drained := inFlight == 0
	if !drained {
		t := time.NewTimer(grace)
		select {
		case <-idle:
			drained = true
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.cancelCalls()
	<-idle
	return drained
}

// heartbeat emits claw.heartbeat while READY. The state check and the
// queueing happen under mu, so no beat can follow the STOPPING transition.
func (c *conn) heartbeat(every time.Duration) {
	defer c.work.Done()
	if every <= 0 {
		every = defaultHeartbeat
	}
	every = max(every, minHeartbeat)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stopping:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.state != stateReady {
			c.mu.Unlock()
			return
		}
		now := c.now()
		b, err := marshalLine(notification{JSONRPC: "2.0", Method: "claw.heartbeat", Params: heartbeatParams{
			State: c.state.String(), UptimeMS: now.Sub(c.readyAt).Milliseconds(),
			Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z"),
		}})
		if err == nil {
			c.out.trySend(b) // if replies are backed up, a late beat has no value
		}
		c.mu.Unlock()
	}
}

type statusResult struct {
	State    string `json:"state"`
	UptimeMS int64  `json:"uptime_ms"`
}

type heartbeatParams struct {
	State     string `json:"state"`
	UptimeMS  int64  `json:"uptime_ms"`
	Timestamp string `json:"timestamp"`
}

type drainedResult struct {
	Drained bool `json:"drained"`
}

type acknowledged struct {
	Acknowledged bool `json:"acknowledged"`
}

type initializeResult struct {
	ProtocolVersion  string              `json:"protocolVersion"`
	AgentInfo        AgentInfo           `json:"agentInfo"`
	ConformanceLevel string              `json:"conformanceLevel"`
	Capabilities     map[string]struct{} `json:"capabilities"`
}

// initResult settles capabilities: an empty request means every group the
// agent supports; otherwise the groups both sides name.
func initResult(version string, requested map[string]json.RawMessage, a Agent) initializeResult {
	supported := map[string]bool{}
	for _, g := range a.Capabilities {
		if g == "tools" || g == "swarm" || g == "memory" {
			supported[g] = true
		}
	}
	caps := map[string]struct{}{}
	for g := range supported {
		if _, asked := requested[g]; asked || len(requested) == 0 {
			caps[g] = struct{}{}
		}
	}
	level := "level-1"
	switch {
	case supported["tools"] && supported["memory"] && supported["swarm"]:
		level = "level-3"
	case supported["tools"]:
		level = "level-2"
	}
	return initializeResult{ProtocolVersion: version, AgentInfo: a.Info, ConformanceLevel: level, Capabilities: caps}
}

// writer writes reply lines to out. The sender writes its own line under
// mu, with no goroutine handoff (a lone reply costs no extra wake-up); the
// last of the senders that arrived together flushes, so many replies ready
// at once still cost one write.
type writer struct {
	pending atomic.Int64  // lines handed to send and not yet written
	failed  chan struct{} // closed on the first write error

	mu     sync.Mutex
	w      *bufio.Writer // guarded by mu
	err    error         // guarded by mu; set before failed is closed
	closed bool          // guarded by mu
}

func newWriter(out io.Writer) *writer {
	return &writer{w: bufio.NewWriterSize(out, 64<<10), failed: make(chan struct{})}
}

// send writes one complete line. Lines after a failure or after close are
// dropped.
func (w *writer) send(b []byte) {
	w.pending.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && !w.closed {
		if _, err := w.w.Write(b); err != nil {
			w.failLocked(err)
		}
	}
	if w.pending.Add(-1) == 0 && w.err == nil && !w.closed {
		if err := w.w.Flush(); err != nil {
			w.failLocked(err)
		}
	}
}

// trySend writes and flushes b unless another line is being written.
func (w *writer) trySend(b []byte) {
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	if w.err != nil || w.closed {
		return
	}
	if _, err := w.w.Write(b); err != nil {
		w.failLocked(err)
		return
	}
	if w.pending.Load() == 0 {
		if err := w.w.Flush(); err != nil {
			w.failLocked(err)
		}
	}
}

func (w *writer) failLocked(err error) {
	w.err = fmt.Errorf("ckp: writing replies: %w", err)
	close(w.failed)
}

// close flushes what was written and stops further writes.
func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed && w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.failLocked(err)
		}
	}
	w.closed = true
	return w.err
}
