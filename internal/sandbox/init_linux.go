package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// initArg is argv[1] of a process-level sandbox's first process: the
// clawkeep binary itself, re-executed to confine itself before it becomes
// the job. Go cannot run code between fork and exec, so the confinement
// that must be in place before the job's first instruction (identity,
// no_new_privs, Landlock, rlimits, seccomp) is applied here.
const initArg = "__clawkeep-sandbox-init"

// Descriptors the parent passes to the init process.
const (
	specFD   = 3 // the initSpec as JSON; EOF only once the sandbox is ready
	statusFD = 4 // close-on-exec: a setup failure is written here; EOF means exec succeeded
)

// initSpec is what the init process applies before it execs the job.
type initSpec struct {
	Path      string   `json:"path"` // resolved absolute path of Argv[0]
	Argv      []string `json:"argv"`
	Env       []string `json:"env"`
	Dir       string   `json:"dir"`
	UID       int      `json:"uid"` // -1: keep
	GID       int      `json:"gid"`
	Reaper    bool     `json:"reaper"`  // stay as the pid namespace's init and run the rest in a child
	Confine   bool     `json:"confine"` // Landlock and seccomp; off when exec'ing bubblewrap, which confines itself
	ReadOnly  []string `json:"ro"`      // Landlock: read and execute
	ReadWrite []string `json:"rw"`      // Landlock: everything
	Rlimits   []rlimit `json:"rlimits"`
}

type rlimit struct {
	Resource int    `json:"r"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// InitIfChild turns this process into a sandboxed job when it was started
// as a sandbox's init process, and never returns then. Every binary that
// starts process-level sandboxes (clawkeep, and test binaries through
// TestMain) calls it first thing in main.
func InitIfChild() {
	if len(os.Args) != 2 || os.Args[1] != initArg {
		return
	}
	status := os.NewFile(statusFD, "status")
	err := confineAndExec()
	// Reached only on failure: exec replaces the process on success.
	fmt.Fprintf(status, "%v", err)
	os.Exit(125)
}

func confineAndExec() error {
	// Landlock and no_new_privs are set on this thread, which then execs.
	runtime.LockOSThread()
	unix.CloseOnExec(statusFD)
	f := os.NewFile(specFD, "spec")
	raw, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if len(raw) == 0 {
		return errors.New("the supervisor withdrew the job before it started")
	}
	var s initSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	if s.Reaper {
		return reap(s)
	}
	// The working directory is opened while this process can still reach
	// it: the job's identity may not be able to search its parents.
	var dir *os.File
	if s.Dir != "" {
		if dir, err = os.OpenFile(s.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	// Landlock first, while the paths can still be opened whatever their
	// modes: whether the job's identity may use them is then for the
	// file permissions to decide.
	if s.Confine {
		if err := landlockPaths(s.ReadOnly, s.ReadWrite); err != nil {
			return err
		}
	}
	if s.GID >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(s.GID); err != nil {
			return fmt.Errorf("setgid: %w", err)
		}
	}
	if s.UID >= 0 {
		if err := syscall.Setuid(s.UID); err != nil {
			return fmt.Errorf("setuid: %w", err)
		}
	}
	// The parent-death signal is cleared by a credential change.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if dir != nil {
		err := unix.Fchdir(int(dir.Fd()))
		dir.Close()
		if err != nil {
			return fmt.Errorf("working directory %s: %w", s.Dir, err)
		}
	}
	if s.Confine {
		if err := loadSeccomp(); err != nil {
			return err
		}
	}
	// The Go runtime ignores SIGXFSZ, and an ignored signal stays ignored
	// across exec: the file-size limit would become EFBIG, which the
	// report could not tell from any other error. Signals with a handler
	// are reset to their defaults by exec, so give these one.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGXFSZ, syscall.SIGXCPU, syscall.SIGPIPE,
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	return limitAndExec(s)
}

// limitAndExec sets the rlimits and execs with raw system calls and
// nothing allocated in between: once the address-space and process limits
// are lower than this Go runtime uses, it could not grow a heap or start a
// thread, so they must bind only the job.
func limitAndExec(s initSpec) error {
	path, err := syscall.BytePtrFromString(s.Path)
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(s.Argv)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(s.Env)
	if err != nil {
		return err
	}
	lims := make([]unix.Rlimit, len(s.Rlimits))
	for i, r := range s.Rlimits {
		lims[i] = unix.Rlimit{Cur: r.Cur, Max: r.Max}
	}
	for i, r := range s.Rlimits {
		if _, _, errno := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(r.Resource), uintptr(unsafe.Pointer(&lims[i])), 0, 0, 0); errno != 0 {
			return fmt.Errorf("setrlimit %d: %w", r.Resource, errno)
		}
	}
	_, _, errno := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
	return fmt.Errorf("exec %s: %w", s.Path, errno)
}

// systemPaths are the host paths every process-level job may read and
// execute: programs, libraries and the few /etc files dynamic linking and
// name lookups read. Not /proc, /sys, /home, /root, /tmp or /etc itself.
var systemPaths = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
	"/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
	"/etc/ssl/certs", "/etc/ca-certificates", "/usr/share/ca-certificates",
}

// lookPath resolves argv0 against the job's PATH, or /usr/bin:/bin.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if !filepath.IsAbs(argv0) {
			return "", fmt.Errorf("command %q must be absolute or a bare name", argv0)
		}
		return argv0, nil
	}
	path := "/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in %s", argv0, path)
}

// reap runs as pid 1 of the job's pid namespace. The kernel does not
// deliver default-action signals to a namespace's init, so the job must
// not be pid 1, or SIGXFSZ and SIGXCPU from its limits would be lost. It
// starts the second stage (the same binary, which confines itself and
// execs the job), reaps every orphan, and exits when the job does with the
// job's status, 128+N for signal N as shells report it. Its exit ends the
// namespace and every process left in it.
func reap(s initSpec) error {
	s.Reaper = false
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	status := os.NewFile(statusFD, "status")
	p, err := os.StartProcess(self, []string{self, initArg}, &os.ProcAttr{
		Dir: "/", Env: []string{},
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, r, status},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return fmt.Errorf("start the job: %w", err)
	}
	// From here the second stage reports setup failures itself.
	r.Close()
	status.Close()
	os.Stdin.Close()
	os.Stdout.Close()
	os.Stderr.Close()
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	w.Write(raw)
	w.Close()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			os.Exit(125)
		}
		if pid != p.Pid {
			continue
		}
		if ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ws.ExitStatus())
	}
}

// initProc is an init process about to be started: the clawkeep binary
// with the spec on fd 3 and the status pipe on fd 4, then extra files.
type initProc struct {
	cmd       *exec.Cmd
	spec      []byte
	specW     *os.File
	statusR   *os.File
	childEnds []*os.File
}

func newInitProc(self string, spec initSpec, attr *syscall.SysProcAttr, extra ...*os.File) (*initProc, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		specR.Close()
		specW.Close()
		return nil, err
	}
	ip := &initProc{
		spec: raw, specW: specW, statusR: statusR,
		childEnds: append([]*os.File{specR, statusW}, extra...),
	}
	ip.cmd = &exec.Cmd{
		Path: self, Args: []string{self, initArg}, Env: []string{}, Dir: "/",
		ExtraFiles: ip.childEnds, SysProcAttr: attr,
	}
	return ip, nil
}

// started closes this process's copies of the child's descriptors.
func (ip *initProc) started() {
	for _, f := range ip.childEnds {
		f.Close()
	}
}

// send hands the spec over: the init process confines itself and execs.
func (ip *initProc) send() error {
	_, err := ip.specW.Write(ip.spec)
	ip.specW.Close()
	return err
}

// status waits for the exec and returns why it failed, or "".
func (ip *initProc) status() string {
	b, _ := io.ReadAll(io.LimitReader(ip.statusR, 4096))
	return string(b)
}

func (ip *initProc) close() {
	ip.started()
	ip.specW.Close()
	ip.statusR.Close()
}
