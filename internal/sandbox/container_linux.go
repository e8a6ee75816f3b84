package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// container runs each job under bubblewrap: new user, pid, ipc, uts,
// mount, network and cgroup namespaces; the system directories read-only,
// nosuid; a private /tmp, /proc and /dev; only the declared mounts of the
// host. Memory, processes and CPU share are cgroup limits where the host
// lets clawkeep create groups; CPU time, open files and file size are
// rlimits. The meters are the same as the process level's.
//
// bubblewrap runs as the kernel's own user, so it can bind the paths that
// user can reach; the job is nobody inside its user namespace, which maps
// to that user outside, with no capabilities there. A root kernel's
// container job can thus open root-owned files it is shown: it is shown
// only the system directories (read-only) and its mounts.
type container struct {
	cfg     Config
	bwrap   string
	seccomp []byte
}

func newContainer(cfg Config) (*container, error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("%w: level container needs bubblewrap (bwrap) on PATH", ErrUnavailable)
	}
	for _, m := range cfg.Mounts {
		if _, err := os.Stat(m.Path); err != nil {
			return nil, fmt.Errorf("sandbox: mount: %w", err)
		}
	}
	prog, err := seccompProgram()
	if err != nil {
		return nil, err
	}
	c := &container{cfg: cfg, bwrap: bwrap, seccomp: prog}
	if cfg.RequireAllLimits {
		cg := newCgroup("probe-"+newID(), cfg.Limits, true)
		cg.remove()
		if len(cg.unapplied) > 0 {
			return nil, fmt.Errorf("%w: cgroup limits cannot be applied on this host: %s", ErrUnavailable, strings.Join(cg.unapplied, "; "))
		}
	}
	return c, nil
}

func (c *container) Level() Level { return LevelContainer }

func (c *container) Run(ctx context.Context, job Job) (*Report, error) {
	return run(ctx, c.cfg, job, func(netEnv []string) (*launch, error) { return c.launch(job, netEnv) })
}

func (c *container) launch(job Job, netEnv []string) (*launch, error) {
	if len(job.Argv) == 0 {
		return nil, refusef("", "empty command")
	}
	path, err := lookPath(job.Argv[0], job.Env)
	if err != nil {
		return nil, refusef("", "%v", err)
	}
	lim := c.cfg.Limits
	cg := newCgroup(newID(), lim, true)
	if c.cfg.RequireAllLimits && len(cg.unapplied) > 0 {
		cg.remove()
		return nil, refusef("", "cgroup limits cannot be applied: %s", strings.Join(cg.unapplied, "; "))
	}

	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	seccompR, seccompW, err := pipe()
	if err == nil {
		go func() { seccompW.Write(c.seccomp); seccompW.Close() }()
	}
	blockR, blockW, err2 := pipe()
	infoR, infoW, err3 := pipe()
	if err := firstErr(err, err2, err3); err != nil {
		closeAll()
		cg.remove()
		return nil, err
	}
	statusR, statusW, err := pipe()
	if err != nil {
		closeAll()
		cg.remove()
		return nil, err
	}
	// The extra descriptors are 7, 8 and 9 in bubblewrap (spawn_linux.c).
	args := []string{
		"--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
		"--uid", strconv.Itoa(JobUID), "--gid", strconv.Itoa(JobUID), "--hostname", "sandbox",
		"--seccomp", "7", "--block-fd", "8", "--info-fd", "9",
	}
	for _, kv := range append(append([]string{}, job.Env...), netEnv...) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			closeAll()
			cg.remove()
			return nil, refusef("", "environment entry %q is not KEY=VALUE", kv)
		}
		args = append(args, "--setenv", k, v)
	}
	for _, p := range systemPaths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err == nil {
				args = append(args, "--symlink", target, p)
			}
		default:
			args = append(args, "--ro-bind", p, p)
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
	for _, m := range c.cfg.Mounts {
		flag := "--ro-bind"
		if m.Writable {
			flag = "--bind"
		}
		args = append(args, flag, m.Path, m.Path)
	}
	args = append(args, "--chdir", jobDir(job, c.cfg.Mounts), "--", path)
	args = append(args, job.Argv[1:]...)

	// rlimits bind bubblewrap and everything it starts, set by its first
	// process on itself before exec. NPROC would not bind (user namespaces
	// count their own), so processes are the pids cgroup's.
	spec := spawnSpec{
		path: c.bwrap, argv: append([]string{c.bwrap}, args...), uid: -1, gid: -1, ruleset: -1,
		status: statusW, extra: []*os.File{seccompR, blockR, infoW},
		rlimits: []rlimit{
			{unix.RLIMIT_CPU, cpuSeconds(lim), cpuSeconds(lim) + 1},
			{unix.RLIMIT_NOFILE, uint64(lim.MaxOpenFiles), uint64(lim.MaxOpenFiles)},
			{unix.RLIMIT_FSIZE, uint64(lim.MaxFileBytes), uint64(lim.MaxFileBytes)},
			{unix.RLIMIT_CORE, 0, 0},
		},
	}
	if _, ok := cg.dirs["memory"]; !ok {
		// Without a memory cgroup the address-space rlimit is the next
		// best bound; the report names the missing cgroup.
		spec.rlimits = append(spec.rlimits, rlimit{unix.RLIMIT_AS, uint64(lim.MemoryBytes), uint64(lim.MemoryBytes)})
	}
	l := &launch{cgroup: cg}
	l.start = func(stdio [3]*os.File) (*os.Process, error) {
		spec.stdio = stdio
		p, err := spawn(spec)
		statusW.Close()
		seccompR.Close()
		blockR.Close()
		infoW.Close()
		return p, err
	}
	l.jobPID = func(*os.Process) (int, error) {
		if msg, _ := io.ReadAll(io.LimitReader(statusR, 4096)); len(msg) > 0 {
			return 0, errors.New(setupFailure(string(msg)))
		}
		var info struct {
			ChildPID int `json:"child-pid"`
		}
		dec := json.NewDecoder(io.LimitReader(infoR, 4096))
		if err := dec.Decode(&info); err != nil || info.ChildPID <= 0 {
			return 0, fmt.Errorf("bubblewrap did not start the sandbox")
		}
		return info.ChildPID, nil
	}
	l.release = func() error {
		_, err := blockW.Write([]byte{1})
		blockW.Close()
		return err
	}
	l.setupErr = func() string { return "" }
	l.ended = func(rep *Report) {
		// bubblewrap reports a sandbox it could not build on stderr and
		// exits 1 before the job runs.
		if rep.Outcome == Exited && rep.ExitCode == 1 && bytes.HasPrefix(rep.Stderr, []byte("bwrap: ")) {
			rep.Outcome, rep.ExitCode = Refused, -1
			rep.Reason = "sandbox setup failed: " + strings.TrimSpace(string(rep.Stderr))
		}
	}
	l.cleanup = func() { closeAll(); cg.remove() }
	return l, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
