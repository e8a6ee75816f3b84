package ckp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangGuard only turns a hang into a failure; no test asserts a duration.
const hangGuard = 20 * time.Second

// testHandler is a small real agent. Its tools:
//   - "echo" answers its arguments as text;
//   - "wait" blocks until claw.tool.approve / claw.tool.deny names its
//     context.request_id, or its context is cancelled;
//   - "leak" fails with an internal error whose text holds a secret;
//   - "panic" panics with a secret.
type testHandler struct {
	agent   Agent
	initErr error         // returned by the first Initialize, or nil
	release chan struct{} // or nil; Initialize waits for it to close

	started chan string // receives the request_id of each "wait" call once it waits

	mu      sync.Mutex
	inits   int                  // guarded by mu
	closes  int                  // guarded by mu
	pending map[string]chan bool // guarded by mu
}

const secret = "hunter2-sk-live-0123456789"

func newTestHandler() *testHandler {
	return &testHandler{
		agent:   Agent{Info: AgentInfo{Name: "test-agent", Version: "1.2.3"}, Capabilities: []string{"tools"}},
		started: make(chan string, 64),
		pending: map[string]chan bool{},
	}
}

func (h *testHandler) Initialize(ctx context.Context, p InitializeParams) (Agent, error) {
	if h.release != nil {
		select {
		case <-h.release:
		case <-ctx.Done():
			return Agent{}, ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inits++
	if h.inits == 1 && h.initErr != nil {
		return Agent{}, h.initErr
	}
	return h.agent, nil
}

func (h *testHandler) ToolCall(ctx context.Context, p ToolCallParams) (*ToolCallResult, error) {
	switch p.Name {
	case "echo":
		return &ToolCallResult{Content: []Content{{Type: "text", Text: string(p.Arguments)}}}, nil
	case "wait":
		decision := make(chan bool, 1)
		h.mu.Lock()
		h.pending[p.Context.RequestID] = decision
		h.mu.Unlock()
		h.started <- p.Context.RequestID
		select {
		case ok := <-decision:
			if !ok {
				return nil, &Error{Code: CodeApprovalDenied, Message: "denied"}
			}
			return &ToolCallResult{Content: []Content{{Type: "text", Text: "approved"}}}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "leak":
		return nil, fmt.Errorf("open /var/lib/agent/token=%s: permission denied", secret)
	case "panic":
		panic("token=" + secret)
	}
	return nil, &Error{Code: CodeInvalidParams, Message: "unknown tool"}
}

func (h *testHandler) decide(p DecisionParams, ok bool) error {
	h.mu.Lock()
	decision := h.pending[p.RequestID]
	delete(h.pending, p.RequestID)
	h.mu.Unlock()
	if decision == nil {
		return &Error{Code: CodeInvalidParams, Message: "no pending approval"}
	}
	decision <- ok
	return nil
}

func (h *testHandler) ToolApprove(ctx context.Context, p DecisionParams) error {
	return h.decide(p, true)
}

func (h *testHandler) ToolDeny(ctx context.Context, p DecisionParams) error {
	return h.decide(p, false)
}

func (h *testHandler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closes++
	return nil
}

func (h *testHandler) closeCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closes
}

// wire is one line from the server, as the peer sees it.
type wire struct {
	raw     []byte
	members map[string]json.RawMessage
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// peer drives a Server over io.Pipe as a client would.
type peer struct {
	t      *testing.T
	in     *io.PipeWriter // the server's input
	lines  chan []byte    // the server's output, line by line; closed at its end
	served chan error     // Serve's return value
	cancel context.CancelFunc
	logs   *logBuffer
}

type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, format+"\n", a...)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startPeer(t *testing.T, srv *Server) *peer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &peer{t: t, in: inW, lines: make(chan []byte, 1024), served: make(chan error, 1), cancel: cancel, logs: &logBuffer{}}
	if srv.Logf == nil {
		srv.Logf = p.logs.logf
	}
	go func() {
		err := srv.Serve(ctx, inR, outW)
		outW.Close()
		inR.Close()
		p.served <- err
	}()
	go func() {
		defer close(p.lines)
		br := bufio.NewReader(outR)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				p.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-p.served:
		case <-time.After(hangGuard):
			t.Error("Serve did not return")
		}
	})
	return p
}

// send writes raw lines; each gets its "\n".
func (p *peer) send(lines ...string) {
	p.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(p.in, l+"\n"); err != nil {
			p.t.Fatalf("writing to the server: %v", err)
		}
	}
}

// next returns the next line the server wrote.
func (p *peer) next() wire {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatal("the server closed its output")
		}
		return parseWire(p.t, line)
	case <-time.After(hangGuard):
		p.t.Fatal("no line from the server")
	}
	panic("unreachable")
}

// nextReply skips heartbeats.
func (p *peer) nextReply() wire {
	p.t.Helper()
	for {
		w := p.next()
		if w.Method != "claw.heartbeat" {
			return w
		}
	}
}

// replies returns the next n replies by id, in whatever order they came.
func (p *peer) replies(n int) map[string]wire {
	p.t.Helper()
	got := map[string]wire{}
	for range n {
		w := p.nextReply()
		got[string(w.ID)] = w
	}
	return got
}

func parseWire(t *testing.T, line []byte) wire {
	t.Helper()
	var w wire
	if !json.Valid(line) {
		t.Fatalf("server wrote invalid JSON %q", line)
	}
	if line[0] == '{' {
		if err := json.Unmarshal(line, &w); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, &w.members); err != nil {
			t.Fatal(err)
		}
	}
	w.raw = line
	return w
}

// call sends a request with the given id and returns the server's next reply.
func (p *peer) call(id any, method string, params any) wire {
	p.t.Helper()
	p.send(requestLine(p.t, id, method, params))
	w := p.nextReply()
	want, _ := json.Marshal(id)
	if string(w.ID) != string(want) {
		p.t.Fatalf("reply %s, want id %s", w.raw, want)
	}
	return w
}

func requestLine(t testing.TB, id any, method string, params any) string {
	t.Helper()
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if id != nil {
		m["id"] = id
	}
	if params != nil {
		m["params"] = params
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func initParams(version string) map[string]any {
	return map[string]any{
		"protocolVersion": version,
		"clientInfo":      map[string]any{"name": "test", "version": "1"},
		"manifest":        "claw://local/claw/test",
		"capabilities":    map[string]any{},
	}
}

func (p *peer) initialize() {
	p.t.Helper()
	wantResult(p.t, p.call("init", "claw.initialize", initParams(ProtocolVersion)))
}

func toolCall(name, requestID string, args map[string]any) map[string]any {
	p := map[string]any{"name": name, "context": map[string]any{"request_id": requestID, "identity": "test-agent"}}
	if args != nil {
		p["arguments"] = args
	}
	return p
}

// waitStarted returns once a "wait" call is blocked in the handler.
func (h *testHandler) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(hangGuard):
		t.Fatal("the call never reached the handler")
	}
}

// wait returns Serve's result once it has returned.
func (p *peer) wait() error {
	p.t.Helper()
	select {
	case err := <-p.served:
		p.served <- err
		return err
	case <-time.After(hangGuard):
		p.t.Fatal("Serve did not return")
	}
	return nil
}

// rest returns every line the server writes until its output ends.
func (p *peer) rest() []wire {
	p.t.Helper()
	var out []wire
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return out
			}
			out = append(out, parseWire(p.t, line))
		case <-time.After(hangGuard):
			p.t.Fatal("the server's output did not end")
		}
	}
}

func wantResult(t *testing.T, w wire) map[string]any {
	t.Helper()
	if w.Error != nil || w.Result == nil {
		t.Fatalf("want a result, got %s", w.raw)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Result, &m); err != nil {
		t.Fatalf("result %s: %v", w.Result, err)
	}
	return m
}

func wantError(t *testing.T, w wire, code int) *Error {
	t.Helper()
	if w.Error == nil {
		t.Fatalf("want error %d, got %s", code, w.raw)
	}
	if w.Error.Code != code {
		t.Fatalf("want error %d, got %s", code, w.raw)
	}
	if _, ok := w.members["result"]; ok {
		t.Fatalf("error reply also has a result: %s", w.raw)
	}
	return w.Error
}

func wantNullID(t *testing.T, w wire) {
	t.Helper()
	if string(w.ID) != "null" {
		t.Fatalf("want id null, got %s", w.raw)
	}
}
