package tenant

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clawkeep/clawkeep/internal/ability"
	"github.com/clawkeep/clawkeep/internal/agent"
	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/kernel"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// Headers the supervisor sets on every request it forwards. The worker
// believes them only because the same request carries the secret.
const (
	headerAuth  = "Authorization"
	headerActor = "X-Clawkeep-Actor" // who is asking, for the audit trail: "user:alice@example.com", "token:1a2b3c"
	headerRole  = "X-Clawkeep-Role"  // their role in this organisation
	headerAgent = "X-Clawkeep-Agent" // for CKP: the agent the caller's token belongs to
	authScheme  = "Worker "
	secretBytes = 32
)

// Limits on what a worker accepts; the supervisor bounds requests first.
const (
	maxManifestBytes   = 1 << 20
	maxJSONBytes       = 64 << 10
	maxCredentialBytes = 64 << 10
)

// WorkerConfig is what a worker process serves with.
type WorkerConfig struct {
	Org     string // the organisation's name, recorded as the audit tenant
	DataDir string // the organisation's data directory; created 0700
	Socket  string // the Unix socket to listen on; its directory must be 0700
	Secret  []byte // the supervisor's secret, secretBytes long
	Logf    func(format string, args ...any)
	Now     func() time.Time // test knob; nil = time.Now
}

// worker is one organisation's state: the only value that holds it.
type worker struct {
	cfg       WorkerConfig
	store     *store
	audit     *audit.Log
	approvals *approval.Store
	vault     *vault.Vault
	now       func() time.Time

	lastRequest atomic.Int64 // unix nanoseconds of the latest request

	mu    sync.Mutex
	posts map[string]*postSession // agent name -> the session HTTP POST calls share; guarded by mu
}

// idleRelease returns memory to the OS once the worker has been idle for
// a while after serving: a burst leaves the heap grown, and a thousand
// idle workers should not keep their peaks.
func (w *worker) idleRelease(ctx context.Context, after time.Duration) {
	t := time.NewTicker(after / 2)
	defer t.Stop()
	released := w.lastRequest.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last := w.lastRequest.Load()
		if last != released && time.Since(time.Unix(0, last)) > after {
			debug.FreeOSMemory()
			released = last
		}
	}
}

// ReadSecret reads the supervisor's secret: one line of base64 on r.
func ReadSecret(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReaderSize(r, 128).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("tenant: reading the supervisor secret: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
	if err != nil || len(b) != secretBytes {
		return nil, errors.New("tenant: the supervisor secret is malformed")
	}
	return b, nil
}

// RunWorker serves one organisation until ctx ends. It writes "ready\n"
// to ready once the socket accepts connections.
func RunWorker(ctx context.Context, cfg WorkerConfig, ready io.Writer) error {
	if cfg.Org == "" || cfg.DataDir == "" || cfg.Socket == "" || len(cfg.Secret) != secretBytes {
		return errors.New("tenant: incomplete worker config")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("tenant: data dir: %w", err)
	}
	w := &worker{cfg: cfg, now: now, posts: map[string]*postSession{}}
	var err error
	if w.store, err = openStore(filepath.Join(cfg.DataDir, "worker.db")); err != nil {
		return err
	}
	defer w.store.close()
	if w.audit, err = audit.Open(cfg.DataDir, audit.Options{Tenant: cfg.Org}); err != nil {
		return err
	}
	defer w.audit.Close()
	if w.approvals, err = approval.Open(filepath.Join(cfg.DataDir, "approvals.db"), approval.Options{Now: cfg.Now}); err != nil {
		return err
	}
	defer w.approvals.Close()
	if w.vault, err = vault.Open(cfg.DataDir, vault.Options{Now: cfg.Now}); err != nil {
		return err
	}
	defer w.vault.Close()
	if err := agent.Recover(ctx, cfg.Org, w.audit, w.approvals); err != nil {
		return err
	}
	defer w.closePosts()

	os.Remove(cfg.Socket) // a socket left by a worker that crashed
	ln, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return fmt.Errorf("tenant: listen: %w", err)
	}
	if err := os.Chmod(cfg.Socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("tenant: socket: %w", err)
	}
	srv := &http.Server{
		Handler:           w.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go w.idleRelease(ctx, 30*time.Second)
	// Start-up leaves garbage (package initialisation, schema set-up);
	// an idle worker should not keep it resident.
	debug.FreeOSMemory()
	if ready != nil {
		io.WriteString(ready, "ready\n")
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// routes is the worker's API. Paths mirror the public API under
// /v1/orgs/{org}; the supervisor has already checked who may call them.
func (w *worker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(rw http.ResponseWriter, r *http.Request) {
		problem.JSON(rw, http.StatusOK, map[string]string{"status": "ok", "org": w.cfg.Org})
	})
	mux.HandleFunc("GET /agents", w.listAgents)
	mux.HandleFunc("PUT /agents/{agent}", w.putAgent)
	mux.HandleFunc("GET /agents/{agent}", w.getAgent)
	mux.HandleFunc("DELETE /agents/{agent}", w.deleteAgent)
	mux.HandleFunc("GET /agents/{agent}/abilities", w.listAbilities)
	mux.HandleFunc("PUT /agents/{agent}/abilities/{service}", w.putAbility)
	mux.HandleFunc("DELETE /agents/{agent}/abilities/{service}", w.deleteAbility)
	mux.HandleFunc("GET /credentials", w.listCredentials)
	mux.HandleFunc("PUT /credentials/{name}", w.putCredential)
	mux.HandleFunc("DELETE /credentials/{name}", w.deleteCredential)
	mux.HandleFunc("GET /approvals", w.listApprovals)
	mux.HandleFunc("POST /approvals/{id}/approve", w.decideApproval)
	mux.HandleFunc("POST /approvals/{id}/reject", w.decideApproval)
	mux.HandleFunc("GET /audit", w.queryAudit)
	mux.HandleFunc("GET /audit/verify", w.verifyAudit)
	mux.HandleFunc("GET /audit/export", w.exportAudit)
	mux.HandleFunc("POST /audit/events", w.recordEvent)
	mux.HandleFunc("GET /ckp", w.ckpWebSocket)
	mux.HandleFunc("POST /ckp", w.ckpPost)
	return w.authenticate(mux)
}

// authenticate refuses every request that does not carry the secret.
func (w *worker) authenticate(next http.Handler) http.Handler {
	want := []byte(authScheme + base64.StdEncoding.EncodeToString(w.cfg.Secret))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.lastRequest.Store(time.Now().UnixNano())
		got := []byte(r.Header.Get(headerAuth))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			problem.Write(rw, http.StatusUnauthorized, problem.Unauthenticated, "not the supervisor", 0)
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// actor is who the supervisor says is asking.
func actor(r *http.Request) string {
	a := r.Header.Get(headerActor)
	if a == "" {
		return "unknown"
	}
	return a
}

// record appends an audit record for a change made through the API. If
// the chain cannot take it, the change is still made: it was committed
// before; the failure is logged.
func (w *worker) record(r *http.Request, event, decision string, detail map[string]string) {
	rec := audit.Record{Tenant: w.cfg.Org, Event: event, Decision: decision, Detail: detail}
	if rec.Detail == nil {
		rec.Detail = map[string]string{}
	}
	rec.Detail["by"] = actor(r)
	if _, err := w.audit.Append(context.WithoutCancel(r.Context()), rec); err != nil {
		w.cfg.Logf("audit: %v", err)
	}
}

func (w *worker) internal(rw http.ResponseWriter, err error) {
	w.cfg.Logf("internal error: %v", err)
	problem.Write(rw, http.StatusInternalServerError, problem.Internal, "internal error", 0)
}

// loadAgent parses a stored manifest. Manifests are parsed with no
// filesystem access: an uploaded manifest cannot make the worker read
// local files through refs.
func (w *worker) loadAgent(name string) (*manifest.Claw, ability.Set, error) {
	raw, err := w.store.agent(name)
	if err != nil {
		return nil, ability.Set{}, err
	}
	claw, err := parseManifest(name, raw)
	if err != nil {
		return nil, ability.Set{}, err
	}
	rows, err := w.store.abilities(name)
	if err != nil {
		return nil, ability.Set{}, err
	}
	as := make([]ability.Ability, len(rows))
	for i, r := range rows {
		as[i] = r.Ability
	}
	set, err := ability.NewSet(as)
	return claw, set, err
}

func parseManifest(name string, raw []byte) (*manifest.Claw, error) {
	claw, err := manifest.Parse(raw, manifest.Options{File: name + ".claw.yaml"})
	if err != nil {
		return nil, err
	}
	if claw.Name != name {
		return nil, fmt.Errorf("metadata.name is %q, but the agent is %q", claw.Name, name)
	}
	if err := kernel.Check(claw); err != nil {
		return nil, err
	}
	return claw, nil
}

// agentConfig is what one connection of the agent is served with. Decider
// is empty: the agent's own connection never decides approvals.
func (w *worker) agentConfig(claw *manifest.Claw, set *ability.Set) agent.Config {
	return agent.Config{
		Tenant: w.cfg.Org, DataDir: w.cfg.DataDir, Manifest: claw,
		Audit: w.audit, Approvals: w.approvals,
		Secrets:   func(name string) (*vault.Secret, error) { return w.vault.Get(w.cfg.Org, name) },
		Abilities: set,
		Now:       w.cfg.Now,
	}
}

// WorkerMain is the `clawkeep worker` command the supervisor starts: it
// reads the secret from stdin, serves until SIGTERM or until stdin closes
// (the supervisor is gone), and returns the exit code.
func WorkerMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	org := fs.String("org", "", "organisation name")
	dataDir := fs.String("data-dir", "", "the organisation's data directory")
	sock := fs.String("socket", "", "Unix socket to serve the supervisor on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret, err := ReadSecret(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep worker: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	cfg := WorkerConfig{Org: *org, DataDir: *dataDir, Socket: *sock, Secret: secret,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }}
	if err := RunWorker(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "clawkeep worker: %v\n", err)
		return 1
	}
	return 0
}
