package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// binPath is the clawkeep binary built once for every test in this package:
// the tests drive the real program over real pipes, as an operator would.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clawkeep-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// World-executable, so that serve's workers, which run under their
	// own uid when the tests run as root, can start it.
	os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "clawkeep")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building clawkeep: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hangGuard bounds every wait so a deadlock fails the test instead of the
// whole run. It is not a performance assertion.
const hangGuard = 30 * time.Second

type rpcError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

type frame struct {
	Raw    json.RawMessage `json:"-"`
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

// peer is an operator speaking CKP to a clawkeep child process.
type peer struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	wmu    sync.Mutex
	nextID atomic.Int64
	done   chan struct{} // closed when stdout ends
	stderr *lockedBuffer

	mu      sync.Mutex
	waiters map[string]chan frame // guarded by mu
	notes   chan frame            // notifications from the runtime
	other   chan frame            // replies nobody waits for (null id, batches)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs `clawkeep run ARGS...` with dataDir and returns its peer.
func start(t *testing.T, dataDir string, args ...string) *peer {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"run", "--data-dir", dataDir}, args...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{
		t: t, cmd: cmd, in: in, done: make(chan struct{}), stderr: &lockedBuffer{},
		waiters: map[string]chan frame{}, notes: make(chan frame, 1024), other: make(chan frame, 1024),
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(out)
	t.Cleanup(func() {
		in.Close()
		select {
		case <-p.done:
		case <-time.After(hangGuard):
			cmd.Process.Kill()
		}
		cmd.Wait()
		if t.Failed() {
			t.Logf("clawkeep stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

func (p *peer) read(out io.Reader) {
	defer close(p.done)
	r := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			p.dispatch(bytes.TrimSpace(line))
		}
		if err != nil {
			return
		}
	}
}

func (p *peer) dispatch(line []byte) {
	var f frame
	if line[0] == '[' {
		f.Raw = append(json.RawMessage(nil), line...)
		p.other <- f
		return
	}
	if err := json.Unmarshal(line, &f); err != nil {
		p.t.Errorf("runtime wrote a line that is not JSON: %q", line)
		return
	}
	f.Raw = append(json.RawMessage(nil), line...)
	if f.Method != "" {
		p.notes <- f
		return
	}
	p.mu.Lock()
	w := p.waiters[string(f.ID)]
	delete(p.waiters, string(f.ID))
	p.mu.Unlock()
	if w != nil {
		w <- f
		return
	}
	p.other <- f
}

// send writes one raw line.
func (p *peer) send(line string) {
	p.t.Helper()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("writing to clawkeep: %v", err)
	}
}

// async sends a request and returns a channel for its reply.
func (p *peer) async(method string, params any) <-chan frame {
	p.t.Helper()
	id := fmt.Sprintf("%d", p.nextID.Add(1))
	ch := make(chan frame, 1)
	p.mu.Lock()
	p.waiters[id] = ch
	p.mu.Unlock()
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.Number(id), "method": method, "params": params})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(string(body))
	return ch
}

// call sends a request and waits for its reply.
func (p *peer) call(method string, params any) frame {
	p.t.Helper()
	return p.wait(p.async(method, params))
}

func (p *peer) wait(ch <-chan frame) frame {
	p.t.Helper()
	select {
	case f := <-ch:
		return f
	case <-p.done:
		p.t.Fatalf("clawkeep stopped before replying; stderr:\n%s", p.stderr.String())
	case <-time.After(hangGuard):
		p.t.Fatalf("no reply within %s", hangGuard)
	}
	return frame{}
}

// nextOther waits for a reply nobody was waiting for (null ids, batches).
func (p *peer) nextOther() frame {
	p.t.Helper()
	select {
	case f := <-p.other:
		return f
	case <-time.After(hangGuard):
		p.t.Fatalf("no reply within %s", hangGuard)
	}
	return frame{}
}

// initialize runs the handshake with manifest (a claw:// URI or an object).
func (p *peer) initialize(manifest any) frame {
	p.t.Helper()
	f := p.call("claw.initialize", map[string]any{
		"protocolVersion": "0.3.0",
		"clientInfo":      map[string]any{"name": "clawkeep-tests", "version": "1.0.0"},
		"manifest":        manifest,
		"capabilities":    map[string]any{},
	})
	if f.Error == nil {
		p.send(`{"jsonrpc":"2.0","method":"claw.initialized"}`)
	}
	return f
}

func (p *peer) mustInitialize(manifest any) {
	p.t.Helper()
	if f := p.initialize(manifest); f.Error != nil {
		p.t.Fatalf("initialize: %+v", f.Error)
	}
}

// toolCall calls a tool with a request id.
func toolParams(name, requestID string, args any) map[string]any {
	return map[string]any{
		"name":      name,
		"arguments": args,
		"context":   map[string]any{"request_id": requestID, "identity": "conformance"},
	}
}

func wantError(t *testing.T, f frame, code int) *rpcError {
	t.Helper()
	if f.Error == nil {
		t.Fatalf("want error %d, got result %s", code, f.Result)
	}
	if f.Error.Code != code {
		t.Fatalf("want error %d, got %d %q (data %v)", code, f.Error.Code, f.Error.Message, f.Error.Data)
	}
	return f.Error
}

func wantResult(t *testing.T, f frame) map[string]any {
	t.Helper()
	if f.Error != nil {
		t.Fatalf("want a result, got error %d %q (data %v)", f.Error.Code, f.Error.Message, f.Error.Data)
	}
	var m map[string]any
	if err := json.Unmarshal(f.Result, &m); err != nil {
		t.Fatalf("result is not an object: %s", f.Result)
	}
	return m
}

// resultText returns the text of a tool result's first content block.
func resultText(t *testing.T, f frame) string {
	t.Helper()
	m := wantResult(t, f)
	content, _ := m["content"].([]any)
	if len(content) == 0 {
		t.Fatalf("tool result has no content: %s", f.Result)
	}
	block, _ := content[0].(map[string]any)
	if block["type"] != "text" {
		t.Fatalf("first content block is not text: %v", block)
	}
	s, _ := block["text"].(string)
	return s
}

// clawkeepCmd runs the binary to completion.
func clawkeepCmd(t *testing.T, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String() + errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String() + errb.String(), 0
}

const conformanceManifest = "../../examples/conformance/claw.yaml"

func uuid(n int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}
