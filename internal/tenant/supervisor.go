package tenant

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/clawkeep/clawkeep/internal/problem"
)

// Org names the organisation a worker serves. ID is stable and never
// reused; it names the worker's directories and, as root, its uid.
type Org struct {
	ID   int64
	Name string
}

// Caller is who a forwarded request is from, as the supervisor
// established it.
type Caller struct {
	Actor string // for the audit trail, e.g. "user:alice@example.com"
	Role  string // the caller's role in the organisation, or "" for an agent
	Agent string // for CKP: the agent whose token was presented
}

// SupervisorConfig configures the worker table.
type SupervisorConfig struct {
	Root string // data root; workers live in Root/orgs/ID, sockets in Root/run/ID
	// Command starts a worker: the program and leading arguments, to
	// which "worker" and its flags are appended.
	Command []string
	Env     []string // the workers' whole environment besides PATH; inherited from nobody
	// UIDBase, when not zero and the supervisor runs as root, runs each
	// worker as uid and gid UIDBase+ID.
	UIDBase      uint32
	IdleTimeout  time.Duration // a worker with no request for this long is stopped; 0 = 10 min
	StartTimeout time.Duration // 0 = 15 s
	Logf         func(format string, args ...any)
}

// Supervisor starts workers on first use, stops idle ones, and restarts
// crashed ones with backoff.
type Supervisor struct {
	cfg  SupervisorConfig
	root bool // running as root with UIDBase set: workers get their own uid
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	closed  bool                  // guarded by mu
	workers map[int64]*workerProc // guarded by mu
}

// NewSupervisor prepares the data root and starts the idle reaper.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Root == "" || len(cfg.Command) == 0 {
		return nil, errors.New("tenant: incomplete supervisor config")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &Supervisor{cfg: cfg, root: cfg.UIDBase != 0 && os.Geteuid() == 0, stop: make(chan struct{}), workers: map[int64]*workerProc{}}
	// Workers must be able to pass through the parents of their own
	// directories, and nothing more: 0711 lists nothing.
	mode := os.FileMode(0o700)
	if s.root {
		mode = 0o711
	}
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "orgs"), filepath.Join(cfg.Root, "run")} {
		if err := os.MkdirAll(d, mode); err != nil {
			return nil, fmt.Errorf("tenant: %w", err)
		}
		if err := os.Chmod(d, mode); err != nil {
			return nil, fmt.Errorf("tenant: %w", err)
		}
	}
	if s.root {
		if err := s.reachable(); err != nil {
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.reap()
	return s, nil
}

// reachable makes sure workers under their own uid can reach what they
// need: every parent of the data root must let others pass, and the
// program is copied into the data root, because `go run` and test
// binaries live in directories only their owner may enter. Refusing is
// better than starting workers that cannot start, or quietly giving them
// root's uid.
func (s *Supervisor) reachable() error {
	abs, err := filepath.Abs(s.cfg.Root)
	if err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("tenant: workers run under their own uid and cannot pass through %s (mode %v): "+
				"choose a data directory whose parents others may traverse (chmod o+x), or --worker-uid-base 0 to keep root's uid for every worker (weaker isolation)", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	bin := filepath.Join(abs, "bin")
	if err := os.MkdirAll(bin, 0o711); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	exe := filepath.Join(bin, "clawkeep")
	if err := copyExecutable(s.cfg.Command[0], exe); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	s.cfg.Command = append([]string{exe}, s.cfg.Command[1:]...)
	return nil
}

// copyExecutable writes a root-owned 0755 copy of the program, replacing
// any older one atomically. A copy with the program's size and
// modification time is kept: a restart does not rewrite 40 MB.
func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	if have, err := os.Stat(to); err == nil && have.Size() == info.Size() && have.ModTime().Equal(info.ModTime()) && have.Mode().Perm() == 0o755 {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(to), ".clawkeep-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), info.ModTime(), info.ModTime()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}

// DataDir is where org's worker keeps its data.
func (s *Supervisor) DataDir(org Org) string {
	return filepath.Join(s.cfg.Root, "orgs", strconv.FormatInt(org.ID, 10))
}

func (s *Supervisor) socketDir(org Org) string {
	return filepath.Join(s.cfg.Root, "run", strconv.FormatInt(org.ID, 10))
}

// UID is the uid org's worker runs as, or -1 when workers keep the
// supervisor's.
func (s *Supervisor) UID(org Org) int {
	if !s.root {
		return -1
	}
	return int(s.cfg.UIDBase) + int(org.ID)
}

type procState uint8

const (
	stopped procState = iota
	starting
	running
	backoff
)

// workerProc is one organisation's worker process and how to reach it.
type workerProc struct {
	org   Org
	proxy *httputil.ReverseProxy // never nil; dials the current socket
	http  *http.Client           // the same transport, for WebSocket dials

	mu       sync.Mutex
	state    procState     // guarded by mu
	ready    chan struct{} // guarded by mu; closed when a start settles
	startErr error         // guarded by mu; why the last start failed
	secret   string        // guarded by mu; the Authorization value of the current process
	cmd      *exec.Cmd     // guarded by mu
	stdin    io.Closer     // guarded by mu; closing it tells the worker to exit
	pid      int           // guarded by mu
	stopping bool          // guarded by mu: the exit is ours, not a crash
	active   int           // guarded by mu: requests in flight
	lastUsed time.Time     // guarded by mu
	started  time.Time     // guarded by mu
	crashes  int           // guarded by mu: consecutive short-lived runs
	retryAt  time.Time     // guarded by mu: when a backing-off worker restarts
	exited   chan struct{} // guarded by mu; closed when the current process has been waited for
}

// errBackingOff is returned while a crashed worker waits to restart.
type errBackingOff struct{ until time.Time }

func (e errBackingOff) Error() string { return "tenant: worker restarting after a crash" }

func (s *Supervisor) proc(org Org) (*workerProc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("tenant: supervisor closed")
	}
	if wp := s.workers[org.ID]; wp != nil {
		return wp, nil
	}
	wp := &workerProc{org: org}
	sock := filepath.Join(s.socketDir(org), "worker.sock")
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	wp.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "worker", "worker"
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			problem.Write(w, http.StatusServiceUnavailable, problem.WorkerUnavailable, "the organisation's worker is unavailable; retry", time.Second)
		},
	}
	wp.http = &http.Client{Transport: tr}
	s.workers[org.ID] = wp
	return wp, nil
}

// Forward sends r to org's worker as path (a worker route such as
// "/agents", escaped as in a URL), starting the worker if needed, on
// behalf of caller.
func (s *Supervisor) Forward(w http.ResponseWriter, r *http.Request, org Org, path string, caller Caller) {
	plain, err := url.PathUnescape(path)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, problem.BadRequest, "malformed path", 0)
		return
	}
	wp, err := s.proc(org)
	if err == nil {
		err = s.ensure(r.Context(), wp)
	}
	if err != nil {
		retry := time.Second
		var bo errBackingOff
		if errors.As(err, &bo) {
			retry = time.Until(bo.until)
		}
		s.cfg.Logf("org %s: %v", org.Name, err)
		problem.Write(w, http.StatusServiceUnavailable, problem.WorkerUnavailable, "the organisation's worker is unavailable; retry", retry)
		return
	}
	wp.mu.Lock()
	wp.active++
	secret := wp.secret
	wp.mu.Unlock()
	defer func() {
		wp.mu.Lock()
		wp.active--
		wp.lastUsed = time.Now()
		wp.mu.Unlock()
	}()
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = plain, path
	h := out.Header
	for _, k := range []string{"Authorization", "Cookie", "Forwarded", "X-Forwarded-For", headerActor, headerRole, headerAgent} {
		h.Del(k)
	}
	h.Set(headerAuth, secret)
	h.Set(headerActor, caller.Actor)
	if caller.Role != "" {
		h.Set(headerRole, caller.Role)
	}
	if caller.Agent != "" {
		h.Set(headerAgent, caller.Agent)
	}
	wp.proxy.ServeHTTP(w, out)
}

// DialCKP opens a CKP WebSocket to org's worker for caller's agent,
// starting the worker if needed. The worker counts as busy until done is
// called.
func (s *Supervisor) DialCKP(ctx context.Context, org Org, caller Caller) (conn *websocket.Conn, done func(), err error) {
	wp, err := s.proc(org)
	if err == nil {
		err = s.ensure(ctx, wp)
	}
	if err != nil {
		return nil, nil, err
	}
	wp.mu.Lock()
	wp.active++
	secret := wp.secret
	wp.mu.Unlock()
	done = func() {
		wp.mu.Lock()
		wp.active--
		wp.lastUsed = time.Now()
		wp.mu.Unlock()
	}
	h := http.Header{}
	h.Set(headerAuth, secret)
	h.Set(headerActor, caller.Actor)
	h.Set(headerAgent, caller.Agent)
	conn, _, err = websocket.Dial(ctx, "ws://worker/ckp", &websocket.DialOptions{HTTPClient: wp.http, HTTPHeader: h, Subprotocols: []string{Subprotocol}})
	if err != nil {
		done()
		return nil, nil, err
	}
	return conn, done, nil
}

// ensure returns once wp's worker is running, starting it if it is not.
func (s *Supervisor) ensure(ctx context.Context, wp *workerProc) error {
	for {
		wp.mu.Lock()
		switch wp.state {
		case running:
			wp.mu.Unlock()
			return nil
		case backoff:
			until := wp.retryAt
			wp.mu.Unlock()
			return errBackingOff{until}
		case stopped:
			s.startLocked(wp)
		}
		ready := wp.ready
		wp.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		wp.mu.Lock()
		st, err := wp.state, wp.startErr
		wp.mu.Unlock()
		if st != running && err != nil {
			return err
		}
	}
}

// startLocked launches the worker process; wp.mu is held. The start
// settles in the background, closing wp.ready.
func (s *Supervisor) startLocked(wp *workerProc) {
	wp.state, wp.startErr, wp.stopping = starting, nil, false
	wp.ready = make(chan struct{})
	ready := wp.ready
	go func() {
		err := s.launch(wp)
		wp.mu.Lock()
		defer wp.mu.Unlock()
		if err != nil {
			wp.startErr = err
			s.scheduleRestartLocked(wp)
		} else if wp.state == starting {
			wp.state = running
		}
		close(ready)
	}()
}

func (s *Supervisor) prepareDirs(org Org) error {
	uid := s.UID(org)
	for _, d := range []string{s.DataDir(org), s.socketDir(org)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, uid); err != nil {
				return err
			}
		}
	}
	return nil
}

// launch starts the process and waits for its "ready".
func (s *Supervisor) launch(wp *workerProc) error {
	org := wp.org
	if err := s.prepareDirs(org); err != nil {
		return fmt.Errorf("tenant: org %s: %w", org.Name, err)
	}
	raw := make([]byte, secretBytes)
	rand.Read(raw)
	secret := base64.StdEncoding.EncodeToString(raw)
	sock := filepath.Join(s.socketDir(org), "worker.sock")
	args := append(append([]string{}, s.cfg.Command[1:]...), "worker", "--org", org.Name, "--data-dir", s.DataDir(org), "--socket", sock)
	cmd := exec.Command(s.cfg.Command[0], args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + s.DataDir(org)}, s.cfg.Env...)
	cmd.Dir = s.DataDir(org)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if uid := s.UID(org); uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = &logWriter{logf: s.cfg.Logf, prefix: "worker " + org.Name + ": "}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tenant: starting worker for %s: %w", org.Name, err)
	}
	exited := make(chan struct{})
	wp.mu.Lock()
	wp.cmd, wp.stdin, wp.pid, wp.exited, wp.started = cmd, stdin, cmd.Process.Pid, exited, time.Now()
	wp.secret = authScheme + secret
	wp.lastUsed = time.Now()
	wp.mu.Unlock()
	s.wg.Add(1)
	go s.watch(wp, cmd, exited)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		// Close ran while this worker was starting and found no process
		// to stop: stop it here, or Close would wait for it forever.
		wp.mu.Lock()
		wp.stopping = true
		wp.mu.Unlock()
		stdin.Close()
		cmd.Process.Kill()
		return errors.New("tenant: supervisor closed")
	}
	if _, err := io.WriteString(stdin, secret+"\n"); err != nil {
		return fmt.Errorf("tenant: worker for %s: %w", org.Name, err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		if l != "ready\n" {
			return fmt.Errorf("tenant: worker for %s exited before it was ready", org.Name)
		}
		return nil
	case <-time.After(s.cfg.StartTimeout):
		cmd.Process.Kill()
		return fmt.Errorf("tenant: worker for %s not ready after %v", org.Name, s.cfg.StartTimeout)
	}
}

// watch waits for the process and decides what its exit means.
func (s *Supervisor) watch(wp *workerProc, cmd *exec.Cmd, exited chan struct{}) {
	defer s.wg.Done()
	err := cmd.Wait()
	wp.mu.Lock()
	defer wp.mu.Unlock()
	close(exited)
	if wp.cmd != cmd {
		return
	}
	wp.cmd, wp.stdin, wp.pid = nil, nil, 0
	if wp.stopping {
		wp.state = stopped
		return
	}
	s.cfg.Logf("org %s: worker exited unexpectedly: %v", wp.org.Name, err)
	if wp.state == running {
		s.scheduleRestartLocked(wp)
	}
}

// scheduleRestartLocked backs off before the next start: 100 ms doubling
// to 30 s for workers that keep dying young, then restarts eagerly so the
// organisation is served again without waiting for a request.
func (s *Supervisor) scheduleRestartLocked(wp *workerProc) {
	if time.Since(wp.started) > time.Minute {
		wp.crashes = 0
	}
	wp.crashes++
	delay := 100 * time.Millisecond << min(wp.crashes-1, 9)
	delay = min(delay, 30*time.Second)
	wp.state, wp.retryAt = backoff, time.Now().Add(delay)
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		wp.mu.Lock()
		defer wp.mu.Unlock()
		if wp.state == backoff && !closed {
			s.startLocked(wp)
		}
	})
}

// reap stops workers that have been idle for IdleTimeout.
func (s *Supervisor) reap() {
	defer s.wg.Done()
	every := max(s.cfg.IdleTimeout/4, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		procs := make([]*workerProc, 0, len(s.workers))
		for _, wp := range s.workers {
			procs = append(procs, wp)
		}
		s.mu.Unlock()
		for _, wp := range procs {
			wp.mu.Lock()
			idle := wp.state == running && wp.active == 0 && time.Since(wp.lastUsed) > s.cfg.IdleTimeout
			wp.mu.Unlock()
			if idle {
				s.cfg.Logf("org %s: worker idle, stopping", wp.org.Name)
				s.stopProc(wp)
			}
		}
	}
}

// stopProc asks the worker to exit (closing its stdin), then kills it
// after a grace period.
func (s *Supervisor) stopProc(wp *workerProc) {
	wp.mu.Lock()
	if wp.cmd == nil {
		wp.state = stopped
		wp.mu.Unlock()
		return
	}
	wp.stopping = true
	cmd, stdin, exited := wp.cmd, wp.stdin, wp.exited
	wp.mu.Unlock()
	stdin.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// WorkerPID is the pid of org's running worker, or 0: for tests and
// operators.
func (s *Supervisor) WorkerPID(org Org) int {
	s.mu.Lock()
	wp := s.workers[org.ID]
	s.mu.Unlock()
	if wp == nil {
		return 0
	}
	wp.mu.Lock()
	defer wp.mu.Unlock()
	if wp.state != running {
		return 0
	}
	return wp.pid
}

// Running counts the workers that are up.
func (s *Supervisor) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, wp := range s.workers {
		wp.mu.Lock()
		if wp.state == running {
			n++
		}
		wp.mu.Unlock()
	}
	return n
}

// Close stops every worker.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	procs := make([]*workerProc, 0, len(s.workers))
	for _, wp := range s.workers {
		procs = append(procs, wp)
	}
	s.mu.Unlock()
	close(s.stop)
	var wg sync.WaitGroup
	for _, wp := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); s.stopProc(wp) }()
	}
	wg.Wait()
	s.wg.Wait()
	return nil
}

// logWriter passes a worker's stderr to the supervisor's log, line by line.
type logWriter struct {
	logf   func(string, ...any)
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	eachLine(&l.buf, p, func(line []byte) error {
		l.logf("%s%s", l.prefix, line)
		return nil
	})
	// A worker that writes without newlines still gets logged, in pieces.
	if len(l.buf) > 4096 {
		l.logf("%s%s", l.prefix, l.buf)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}
