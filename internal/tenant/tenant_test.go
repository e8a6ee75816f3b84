package tenant

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary is also the worker, as "clawkeep worker" is in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(WorkerMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func startSupervisor(t *testing.T) (*Supervisor, Org) {
	t.Helper()
	sup, err := NewSupervisor(SupervisorConfig{Root: t.TempDir(), Command: []string{os.Args[0]}, IdleTimeout: time.Minute,
		Logf: func(f string, a ...any) { t.Logf(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	org := Org{ID: 7, Name: "acme"}
	rec := &probe{h: http.Header{}}
	req, _ := http.NewRequest("GET", "http://x/v1/orgs/acme/agents", nil)
	sup.Forward(rec, req, org, "/agents", Caller{Actor: "test"})
	if rec.status != 200 {
		t.Fatalf("first request: %d %s", rec.status, rec.body.String())
	}
	return sup, org
}

type probe struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (p *probe) Header() http.Header { return p.h }
func (p *probe) WriteHeader(c int) {
	if p.status == 0 {
		p.status = c
	}
}
func (p *probe) Write(b []byte) (int, error) { p.WriteHeader(200); return p.body.Write(b) }

// socketClient talks to the worker's socket directly, as any local process
// that found it could.
func socketClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// TestLocalProcessWithoutTheSecretIsRefused: reaching the worker's socket
// is not enough to speak for the supervisor.
func TestLocalProcessWithoutTheSecretIsRefused(t *testing.T) {
	sup, org := startSupervisor(t)
	sock := filepath.Join(sup.socketDir(org), "worker.sock")
	c := socketClient(sock)
	raw := make([]byte, secretBytes)
	rand.Read(raw)
	for name, auth := range map[string]string{
		"none":         "",
		"wrong secret": authScheme + base64.StdEncoding.EncodeToString(raw),
		"bearer":       "Bearer " + base64.StdEncoding.EncodeToString(raw),
	} {
		for _, path := range []string{"/agents", "/credentials", "/audit/export", "/approvals"} {
			req, _ := http.NewRequest("GET", "http://worker"+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			req.Header.Set(headerActor, "user:attacker")
			req.Header.Set(headerRole, "owner")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s on %s: %d, want 401", name, path, resp.StatusCode)
			}
		}
	}
}

// TestWorkerFilesAndSocketArePrivate: directories 0700, files 0600, and the
// secret is neither on the worker's command line nor in its environment,
// which other processes of the same uid can read.
func TestWorkerFilesAndSocketArePrivate(t *testing.T) {
	sup, org := startSupervisor(t)
	for _, d := range []string{sup.DataDir(org), sup.socketDir(org)} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, st.Mode().Perm())
		}
	}
	filepath.WalkDir(sup.DataDir(org), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s: mode %v is open to others", p, perm)
			}
		}
		return nil
	})
	pid := sup.WorkerPID(org)
	sup.mu.Lock()
	wp := sup.workers[org.ID]
	sup.mu.Unlock()
	wp.mu.Lock()
	secret := strings.TrimPrefix(wp.secret, authScheme)
	wp.mu.Unlock()
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the worker secret is in /proc/%d/%s", pid, f)
		}
	}
}

// TestIdleWorkerStopsAndComesBack: a worker with no requests is stopped,
// and the next request starts it again with its data intact.
func TestIdleWorkerStopsAndComesBack(t *testing.T) {
	sup, err := NewSupervisor(SupervisorConfig{Root: t.TempDir(), Command: []string{os.Args[0]}, IdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	org := Org{ID: 1, Name: "idle"}
	put := func() int {
		rec := &probe{h: http.Header{}}
		req, _ := http.NewRequest("PUT", "http://x/", strings.NewReader(`{"type":"api-key","value":"v-123456"}`))
		req.Header.Set("Content-Type", "application/json")
		sup.Forward(rec, req, org, "/credentials/k", Caller{Actor: "test"})
		return rec.status
	}
	if s := put(); s != 204 {
		t.Fatalf("put: %d", s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for sup.WorkerPID(org) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle worker never stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec := &probe{h: http.Header{}}
	req, _ := http.NewRequest("GET", "http://x/", nil)
	sup.Forward(rec, req, org, "/credentials", Caller{Actor: "test"})
	if rec.status != 200 || !strings.Contains(rec.body.String(), `"k"`) {
		t.Fatalf("after restart: %d %s", rec.status, rec.body.String())
	}
}

// TestRootSupervisorRefusesADataRootWorkersCannotReach: as root, workers
// get their own uid; a data root they could not enter is refused at
// start, naming the directory, instead of failing every worker later or
// quietly running them as root.
func TestRootSupervisorRefusesADataRootWorkersCannotReach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only a root supervisor gives workers their own uid")
	}
	parent := t.TempDir() // 0700
	_, err := NewSupervisor(SupervisorConfig{Root: filepath.Join(parent, "data"), Command: []string{os.Args[0]}, UIDBase: 400000})
	if err == nil || !strings.Contains(err.Error(), "cannot pass through "+filepath.Dir(parent)) {
		t.Fatalf("want a refusal naming %s, got %v", filepath.Dir(parent), err)
	}
}

// TestWorkerThatCannotStartBacksOff: a worker that dies at start is not
// restarted in a hot loop; callers get 503 with Retry-After meanwhile.
func TestWorkerThatCannotStartBacksOff(t *testing.T) {
	sup, err := NewSupervisor(SupervisorConfig{Root: t.TempDir(), Command: []string{"/bin/false"}, StartTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	org := Org{ID: 3, Name: "broken"}
	for i := 0; i < 3; i++ {
		rec := &probe{h: http.Header{}}
		req, _ := http.NewRequest("GET", "http://x/", nil)
		sup.Forward(rec, req, org, "/agents", Caller{Actor: "test"})
		if rec.status != http.StatusServiceUnavailable || rec.h.Get("Retry-After") == "" {
			t.Fatalf("request %d: %d %v", i, rec.status, rec.h)
		}
	}
	sup.mu.Lock()
	wp := sup.workers[org.ID]
	sup.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	wp.mu.Lock()
	crashes := wp.crashes
	wp.mu.Unlock()
	// 100 ms, 200 ms, 400 ms...: in 300 ms at most a handful of attempts.
	if crashes < 1 || crashes > 4 {
		t.Fatalf("%d start attempts in the first ~300 ms", crashes)
	}
}

// TestSupervisorCannotForgeKernelRecords: the route the supervisor uses to
// record identity events takes only those, so even its secret cannot make
// the chain show a tool decision or outcome that never happened.
func TestSupervisorCannotForgeKernelRecords(t *testing.T) {
	sup, org := startSupervisor(t)
	for event, want := range map[string]int{"member": 204, "token": 204, "decision": 400, "outcome": 400, "approval": 400} {
		rec := &probe{h: http.Header{}}
		req, _ := http.NewRequest("POST", "http://x/", strings.NewReader(`{"event":"`+event+`","decision":"allow","detail":{"k":"v"}}`))
		req.Header.Set("Content-Type", "application/json")
		sup.Forward(rec, req, org, "/audit/events", Caller{Actor: "user:test"})
		if rec.status != want {
			t.Errorf("event %q: %d, want %d", event, rec.status, want)
		}
	}
}
