package sandbox

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireAll is set by CI: a sandbox test that cannot run fails instead of
// skipping.
var requireAll = os.Getenv("CLAWKEEP_REQUIRE_ALL") != ""

func unavailable(t *testing.T, format string, a ...any) {
	t.Helper()
	if requireAll {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

// workspace is a job's writable directory. Process-level jobs run as
// nobody when the tests run as root, so it is theirs; container jobs run
// as this user inside their namespace.
func workspace(t *testing.T, lvl Level) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "clawkeep-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 && lvl == LevelProcess {
		if err := os.Chown(dir, JobUID, JobUID); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	attackOnce sync.Once
	attackDir  string
	attackErr  error
)

// attackBin compiles testdata/attack.c once into a directory every job may
// read and execute.
func attackBin(t *testing.T) string {
	t.Helper()
	attackOnce.Do(func() {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			attackErr = errors.New("gcc is not installed")
			return
		}
		if attackDir, attackErr = os.MkdirTemp("", "clawkeep-attack-"); attackErr != nil {
			return
		}
		os.Chmod(attackDir, 0o755)
		out, err := exec.Command(gcc, "-O2", "-o", filepath.Join(attackDir, "attack"), "testdata/attack.c").CombinedOutput()
		if err != nil {
			attackErr = errors.New(string(out))
		}
	})
	if attackErr != nil {
		unavailable(t, "cannot build the attack program: %v", attackErr)
	}
	return filepath.Join(attackDir, "attack")
}

// levels runs f once per external level this host provides (all of them in CI).
func levels(t *testing.T, f func(t *testing.T, lvl Level)) {
	for _, lvl := range []Level{LevelProcess, LevelContainer} {
		t.Run(string(lvl), func(t *testing.T) {
			if _, err := New(Config{Level: lvl}); err != nil {
				unavailable(t, "%v", err)
			}
			f(t, lvl)
		})
	}
}

type setup struct {
	ws     string
	attack string
	cfg    Config
}

func newSetup(t *testing.T, lvl Level) *setup {
	ws := workspace(t, lvl)
	bin := attackBin(t)
	return &setup{ws: ws, attack: bin, cfg: Config{
		Level:  lvl,
		Mounts: []Mount{{Path: ws, Writable: true}, {Path: filepath.Dir(bin)}},
		Limits: Limits{Wall: 10 * time.Second},
	}}
}

func (s *setup) run(t *testing.T, argv ...string) *Report {
	t.Helper()
	sb, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sb.Run(context.Background(), Job{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}, Dir: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome == Refused {
		t.Fatalf("sandbox refused the job: %s", rep.Reason)
	}
	return rep
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func output(r *Report) string { return string(r.Stdout) + string(r.Stderr) }

// mustFail asserts the job did not succeed and says why in its output.
func mustFail(t *testing.T, r *Report, why ...string) {
	t.Helper()
	if r.Outcome == Exited && r.ExitCode == 0 {
		t.Fatalf("the attempt succeeded: %q", output(r))
	}
	out := output(r)
	if strings.Contains(out, "ESCAPED") {
		t.Fatalf("escaped: %q", out)
	}
	for _, w := range why {
		if strings.Contains(out, w) {
			return
		}
	}
	if len(why) > 0 {
		t.Fatalf("output %q does not say why (want one of %q)", out, why)
	}
}

func mustMeter(t *testing.T, r *Report, m Meter) {
	t.Helper()
	if r.Outcome != Killed || r.Meter != m {
		t.Fatalf("outcome %s meter %q (%s), want killed by %s; output %q", r.Outcome, r.Meter, r.Reason, m, output(r))
	}
	if r.Reason == "" {
		t.Fatal("a meter fired without a reason")
	}
}

func TestForkBombIsContained(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.Wall, s.cfg.Limits.MaxProcesses = 2*time.Second, 32
		// The bomb runs in a background subshell, forked first, while
		// the job's shell spins on a builtin: it never forks again, so
		// when the bomb has used up every process the limits allow (a
		// failed fork ends a non-interactive shell) the job still runs
		// until the wall clock kills it.
		r := s.run(t, sh("(f() { f | f & }; f) & while :; do :; done")...)
		mustMeter(t, r, MeterWall)
		if lvl == LevelContainer && !contains(r.Hit, MeterProcesses) {
			t.Errorf("the pids limit did not register: %+v", r)
		}
		if lvl == LevelProcess {
			// Container jobs run as a user namespace's nobody, which is
			// this user on the host; their pid namespace ends with them.
			assertNoJobProcesses(t)
		}
	})
}

func TestMemoryBombIsStopped(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.MemoryBytes = 64 << 20
		// Doubling a shell string until the allocator gives up or the
		// kernel kills the job.
		r := s.run(t, sh(`x=0123456789abcdef; while :; do x="$x$x"; done`)...)
		mustMeter(t, r, MeterMemory)
		if r.PeakMemory > 80<<20 {
			t.Errorf("peak memory %d bytes, limit 64 MiB", r.PeakMemory)
		}
	})
}

func TestCPUSpinStoppedByCPUMeter(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.CPU, s.cfg.Limits.Wall = time.Second, 20*time.Second
		r := s.run(t, sh("while :; do :; done")...)
		mustMeter(t, r, MeterCPU)
		// The report counts the job's CPU time (the rlimit fired at one
		// second of it), at both levels: not a speed check.
		if r.CPUMS < 900 {
			t.Fatalf("reported CPU time %d ms; the job spent at least 1 s", r.CPUMS)
		}
	})
}

func TestSleepPastDeadlineStoppedByWallClock(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.Wall = 500 * time.Millisecond
		r := s.run(t, "sleep", "30")
		mustMeter(t, r, MeterWall)
	})
}

func TestGigabyteOfOutputIsCut(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.MaxOutput = 1 << 20
		r := s.run(t, "head", "-c", "1073741824", "/dev/zero")
		mustMeter(t, r, MeterOutput)
		if !r.Truncated || len(r.Stdout) != 1<<20 {
			t.Fatalf("kept %d bytes, truncated %v", len(r.Stdout), r.Truncated)
		}
	})
}

func TestGigabyteFileIsCut(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Limits.MaxFileBytes = 8 << 20
		r := s.run(t, "dd", "if=/dev/zero", "of=big", "bs=1M", "count=1024")
		mustMeter(t, r, MeterFileSize)
		if fi, err := os.Stat(filepath.Join(s.ws, "big")); err == nil && fi.Size() > 8<<20 {
			t.Fatalf("wrote %d bytes", fi.Size())
		}
	})
}

func TestHostSecretsUnreadable(t *testing.T) {
	home, _ := os.UserHomeDir()
	for _, path := range []string{"/etc/shadow", "/proc/1/environ", home, "/root/.bash_history", "/proc/1/cmdline"} {
		levels(t, func(t *testing.T, lvl Level) {
			s := newSetup(t, lvl)
			r := s.run(t, "cat", path)
			if lvl == LevelContainer && strings.HasPrefix(path, "/proc/1/") {
				// The container has its own /proc: pid 1 is its own
				// init, whose environment bubblewrap cleared.
				if r.Outcome == Exited && r.ExitCode == 0 && len(r.Stdout) > 0 && strings.Contains(path, "environ") {
					t.Fatalf("pid 1 environment is not empty: %q", r.Stdout)
				}
				return
			}
			mustFail(t, r, "Permission denied", "No such file", "Is a directory")
		})
	}
}

func TestParentEnvironmentInvisible(t *testing.T) {
	t.Setenv("CLAWKEEP_PARENT_SECRET", "parent-secret-value-7f3a")
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		r := s.run(t, sh("env; cat /proc/self/environ; cat /proc/$PPID/environ 2>/dev/null; cat /proc/1/environ 2>/dev/null")...)
		if strings.Contains(output(r), "parent-secret-value") {
			t.Fatalf("the job saw the parent's environment: %q", output(r))
		}
		if !strings.Contains(string(r.Stdout), "PATH=/usr/bin:/bin") {
			t.Fatalf("the job's own environment is missing: %q", r.Stdout)
		}
	})
}

func TestWriteOutsideWorkspaceRefused(t *testing.T) {
	outside, err := os.MkdirTemp("", "clawkeep-outside-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(outside)
	os.Chmod(outside, 0o777) // only the sandbox stands between the job and this directory
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		r := s.run(t, sh("echo pwned > "+outside+"/x; echo pwned > /usr/x; echo pwned > /etc/x; echo ok > inside")...)
		for _, p := range []string{filepath.Join(outside, "x"), "/usr/x", "/etc/x"} {
			if _, err := os.Stat(p); err == nil {
				os.Remove(p)
				t.Fatalf("the job wrote %s on the host", p)
			}
		}
		if b, err := os.ReadFile(filepath.Join(s.ws, "inside")); err != nil || string(b) != "ok\n" {
			t.Fatalf("the workspace is not writable: %v %q (%q)", err, b, output(r))
		}
	})
}

func TestSymlinkOutOfWorkspaceRefused(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		outside, err := os.MkdirTemp("", "clawkeep-outside-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(outside)
		os.Chmod(outside, 0o777)
		secret := filepath.Join(outside, "secret")
		os.WriteFile(secret, []byte("host-only-secret"), 0o666)
		s := newSetup(t, lvl)
		if err := os.Symlink(secret, filepath.Join(s.ws, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(s.ws, "dirlink")); err != nil {
			t.Fatal(err)
		}
		r := s.run(t, sh("cat link; echo pwned > link; echo pwned > dirlink/new; ln -s "+secret+" mine && cat mine")...)
		if strings.Contains(output(r), "host-only-secret") {
			t.Fatalf("read through a symlink: %q", output(r))
		}
		if b, _ := os.ReadFile(secret); string(b) != "host-only-secret" {
			t.Fatalf("wrote through a symlink: %q", b)
		}
		if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
			t.Fatal("created a file through a directory symlink")
		}
	})
}

func TestDirectConnectionsHaveNoRoute(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	targets := [][2]string{
		{"127.0.0.1", strconv.Itoa(port)}, // a service beside the kernel
		{"169.254.169.254", "80"},         // cloud metadata
		{"1.1.1.1", "80"},                 // a public address, around the proxy
		{"10.255.255.1", "80"},            // this host's network
	}
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		for _, tg := range targets {
			r := s.run(t, s.attack, "connect", tg[0], tg[1])
			mustFail(t, r, "ENETUNREACH", "ECONNREFUSED")
		}
	})
	select {
	case <-accepted:
		t.Fatal("a sandboxed job reached the host's loopback")
	default:
	}
}

func TestKernelEscapeSyscallsRefused(t *testing.T) {
	for _, attack := range []string{"mount", "unshare-user", "unshare-net", "clone-ns", "ptrace-parent", "ptrace-init", "setns"} {
		levels(t, func(t *testing.T, lvl Level) {
			s := newSetup(t, lvl)
			r := s.run(t, s.attack, attack)
			mustFail(t, r, "EPERM", "EBADF", "EINVAL")
		})
	}
}

func TestSetuidBinaryGivesNoPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		unavailable(t, "needs root to make a setuid-root binary")
	}
	dir, err := os.MkdirTemp("", "clawkeep-suid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	id, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "id")
	if err := os.WriteFile(suid, id, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Mounts = append(s.cfg.Mounts, Mount{Path: dir})
		r := s.run(t, suid, "-u")
		if got := strings.TrimSpace(string(r.Stdout)); got == "0" || r.ExitCode != 0 {
			t.Fatalf("setuid binary: euid %q, exit %d, %q", got, r.ExitCode, output(r))
		}
		r = s.run(t, "su", "-c", "id -u")
		mustFail(t, r)
	})
}

// assertNoJobProcesses checks that no process runs as the job identity
// once the jobs are done.
func assertNoJobProcesses(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	out, _ := exec.Command("pgrep", "-u", strconv.Itoa(JobUID)).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("job processes survived: %s", s)
	}
}

func contains(ms []Meter, m Meter) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// The kernel's workspace usually sits in a private data directory the
// job's identity cannot search; the job still starts in it.
func TestWorkspaceBehindPrivateParent(t *testing.T) {
	levels(t, func(t *testing.T, lvl Level) {
		parent := t.TempDir() // 0700, this user's
		ws := filepath.Join(parent, "ws")
		if err := os.Mkdir(ws, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 && lvl == LevelProcess {
			os.Chown(ws, JobUID, JobUID)
		}
		s := &setup{ws: ws, cfg: Config{Level: lvl, Mounts: []Mount{{Path: ws, Writable: true}}, Limits: Limits{Wall: 10 * time.Second}}}
		r := s.run(t, sh("echo made > out && cat out")...)
		if string(r.Stdout) != "made\n" {
			t.Fatalf("%+v %q", r, output(r))
		}
	})
}
