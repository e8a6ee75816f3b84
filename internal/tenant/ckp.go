package tenant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/agent"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/problem"
)

// WebSocket close codes of the CKP runtime profile.
const (
	CloseProtocolError websocket.StatusCode = 4001
	CloseAuthFailure   websocket.StatusCode = 4002
	// Subprotocol is the one CKP WebSocket subprotocol.
	Subprotocol = "claw"
	// maxFrame bounds one CKP message, as the stdio transport does.
	maxFrame = 1 << 20
)

// oneLine turns a JSON-RPC message into one line for the line-based CKP
// server. Valid JSON is compacted (newlines inside strings are escapes, so
// none is left); anything else has its newlines blanked, so it stays one
// frame and the server answers it with a parse error.
func oneLine(msg []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, msg) != nil {
		b.Reset()
		b.Write(bytes.Map(func(r rune) rune {
			if r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, msg))
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// lineWriter sends each line the CKP server writes as one text message.
// Before a reply leaves, the audit records of the call it answers are
// made durable: the kernel writes a call's outcome asynchronously, and an
// acknowledged call must not lose its record to a crash.
type lineWriter struct {
	ctx   context.Context
	conn  *websocket.Conn
	flush func(context.Context) error
	buf   []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	err := eachLine(&l.buf, p, func(line []byte) error {
		if err := l.flush(l.ctx); err != nil {
			return err
		}
		return l.conn.Write(l.ctx, websocket.MessageText, line)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// eachLine appends p to *buf and calls each for every complete line in
// it, without its newline, keeping the rest for the next call. The line
// is valid only during the call.
func eachLine(buf *[]byte, p []byte, each func(line []byte) error) error {
	*buf = append(*buf, p...)
	for {
		i := bytes.IndexByte(*buf, '\n')
		if i < 0 {
			return nil
		}
		line := (*buf)[:i]
		*buf = (*buf)[i+1:]
		if err := each(line); err != nil {
			return err
		}
	}
}

// ckpWebSocket serves one agent connection: one JSON-RPC message per text
// frame, through the same CKP server and kernel as stdio.
func (w *worker) ckpWebSocket(rw http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(headerAgent)
	// Origins are not checked: the caller authenticated with a bearer
	// token in a header, which a browser page cannot send cross-origin.
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	if c.Subprotocol() != Subprotocol {
		c.Close(CloseProtocolError, "subprotocol claw required")
		return
	}
	claw, set, err := w.loadAgent(name)
	if err != nil {
		w.cfg.Logf("ckp: agent %q: %v", name, err)
		c.Close(CloseAuthFailure, "agent unavailable")
		return
	}
	c.SetReadLimit(maxFrame)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	in, feed := io.Pipe()
	protocolError := make(chan string, 1)
	go func() {
		defer feed.Close()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				protocolError <- "binary frames are not CKP"
				return
			}
			if _, err := feed.Write(oneLine(msg)); err != nil {
				return
			}
		}
	}()
	srv := &ckp.Server{Handler: agent.New(w.agentConfig(claw, &set)), MaxFrameBytes: maxFrame + 1,
		Logf: func(f string, a ...any) { w.cfg.Logf("ckp %s: "+f, append([]any{name}, a...)...) }}
	err = srv.Serve(ctx, in, &lineWriter{ctx: ctx, conn: c, flush: w.audit.Flush})
	select {
	case why := <-protocolError:
		c.Close(CloseProtocolError, why)
	default:
		if err != nil && !errors.Is(err, context.Canceled) {
			c.Close(websocket.StatusInternalError, "")
			return
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// postSession is the CKP session HTTP POST calls of one agent share, so
// that calls keep one kernel (idempotency by request_id, quotas, taint)
// across requests.
type postSession struct {
	h       *agent.Handler
	once    sync.Once
	info    ckp.Agent
	err     error
	refs    int  // guarded by worker.mu
	dropped bool // guarded by worker.mu: the manifest or abilities changed
}

// shared lets many short CKP connections use one handler: the first
// claw.initialize builds the kernel, later ones reuse it, and a
// connection's end does not close it.
type shared struct{ s *postSession }

func (h shared) Initialize(ctx context.Context, p ckp.InitializeParams) (ckp.Agent, error) {
	h.s.once.Do(func() { h.s.info, h.s.err = h.s.h.Initialize(context.WithoutCancel(ctx), p) })
	return h.s.info, h.s.err
}
func (h shared) ToolCall(ctx context.Context, p ckp.ToolCallParams) (*ckp.ToolCallResult, error) {
	return h.s.h.ToolCall(ctx, p)
}
func (h shared) ToolApprove(ctx context.Context, p ckp.DecisionParams) error {
	return h.s.h.ToolApprove(ctx, p)
}
func (h shared) ToolDeny(ctx context.Context, p ckp.DecisionParams) error {
	return h.s.h.ToolDeny(ctx, p)
}
func (h shared) Close() error { return nil }

func (w *worker) acquirePost(name string) (*postSession, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.posts[name]; s != nil {
		s.refs++
		return s, nil
	}
	claw, set, err := w.loadAgent(name)
	if err != nil {
		return nil, err
	}
	s := &postSession{h: agent.New(w.agentConfig(claw, &set)), refs: 1}
	w.posts[name] = s
	return s, nil
}

func (w *worker) releasePost(s *postSession) {
	w.mu.Lock()
	s.refs--
	last := s.refs == 0 && s.dropped
	w.mu.Unlock()
	if last {
		s.h.Close()
	}
}

// dropPost retires an agent's shared session after its manifest or
// abilities changed; calls still running on it finish first.
func (w *worker) dropPost(name string) {
	w.mu.Lock()
	s := w.posts[name]
	delete(w.posts, name)
	idle := false
	if s != nil {
		s.dropped = true
		idle = s.refs == 0
	}
	w.mu.Unlock()
	if idle {
		s.h.Close()
	}
}

func (w *worker) closePosts() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, s := range w.posts {
		s.h.Close()
		delete(w.posts, name)
	}
}

// postInitID is the id of the claw.initialize the worker sends on the
// caller's behalf; a client id cannot collide with it in a way that
// matters, since the reply to it is only ever dropped.
const postInitID = `"clawkeep-post-initialize"`

// collector keeps the first reply line that is neither the synthetic
// initialize's nor a server notification.
type collector struct {
	mu    sync.Mutex
	buf   []byte
	reply []byte
	done  chan struct{}
}

func (c *collector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	eachLine(&c.buf, p, func(line []byte) error {
		var head struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		json.Unmarshal(line, &head)
		if head.Method != "" || string(head.ID) == postInitID || c.reply != nil {
			return nil
		}
		c.reply = append([]byte(nil), line...)
		close(c.done)
		return nil
	})
	return len(p), nil
}

// answers reports whether a JSON-RPC frame gets a reply: anything but a
// notification or a batch of only notifications.
func answers(frame []byte) bool {
	var one map[string]json.RawMessage
	if json.Unmarshal(frame, &one) == nil {
		_, hasID := one["id"]
		return hasID
	}
	var batch []map[string]json.RawMessage
	if json.Unmarshal(frame, &batch) == nil && len(batch) > 0 {
		for _, m := range batch {
			if _, hasID := m["id"]; hasID {
				return true
			}
		}
		return false
	}
	return true
}

// ckpPost serves one JSON-RPC message or batch over HTTP POST.
func (w *worker) ckpPost(rw http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(headerAgent)
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxFrame))
	if err != nil {
		problem.Write(rw, http.StatusRequestEntityTooLarge, problem.BodyTooLarge, "CKP message over 1 MiB", 0)
		return
	}
	s, err := w.acquirePost(name)
	if err != nil {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "agent unavailable", 0)
		return
	}
	defer w.releasePost(s)
	line := oneLine(body)
	init, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(postInitID), "method": "claw.initialize",
		"params": map[string]any{"protocolVersion": ckp.ProtocolVersion, "clientInfo": map[string]string{"name": "clawkeep-http", "version": "1"},
			"manifest": "claw://local/claw/" + name, "capabilities": map[string]any{}}})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	in, feed := io.Pipe()
	out := &collector{done: make(chan struct{})}
	srv := &ckp.Server{Handler: shared{s}, MaxFrameBytes: maxFrame + 1}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, in, out) }()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		feed.Write(append(append(init, '\n'), line...))
	}()
	if answers(bytes.TrimSpace(body)) {
		select {
		case <-out.done:
		case <-ctx.Done():
		}
	} else {
		select {
		case <-wrote:
		case <-ctx.Done():
		}
	}
	// Closing the input ends the session without grace; by now the one
	// reply is written, so nothing of the caller's is still running.
	feed.Close()
	<-served
	out.mu.Lock()
	reply := out.reply
	out.mu.Unlock()
	if reply == nil {
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	// As for WebSocket replies: what is acknowledged is on disk.
	if err := w.audit.Flush(r.Context()); err != nil {
		w.internal(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Write(append(reply, '\n'))
}
