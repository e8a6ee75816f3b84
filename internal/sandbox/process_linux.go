package sandbox

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// JobUID is the user and group jobs run as (nobody): on the host for
// process-level jobs of a root kernel, inside the user namespace for
// container jobs.
const JobUID = 65534

// process runs each job as a child of this process: a fresh network, pid,
// IPC and UTS namespace; an unprivileged identity; no_new_privs; Landlock
// over the system paths and the declared mounts; rlimits; seccomp. Its
// meters are the CPU-time rlimit and a wall-clock kill of the namespace.
type process struct {
	cfg    Config
	filter []unix.SockFilter // the seccomp program every job loads
}

func newProcess(cfg Config) (*process, error) {
	if landlockABI() < 3 {
		return nil, fmt.Errorf("%w: level process needs Landlock ABI 3 (Linux 6.2 or later with Landlock enabled)", ErrUnavailable)
	}
	if os.Geteuid() != 0 {
		if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err != nil || string(b) == "0\n" {
			return nil, fmt.Errorf("%w: level process needs root or unprivileged user namespaces", ErrUnavailable)
		}
	}
	for _, m := range cfg.Mounts {
		if _, err := os.Stat(m.Path); err != nil {
			return nil, fmt.Errorf("sandbox: mount: %w", err)
		}
	}
	filter, err := seccompFilter()
	if err != nil {
		return nil, err
	}
	return &process{cfg: cfg, filter: filter}, nil
}

func (p *process) Level() Level { return LevelProcess }

func (p *process) Run(ctx context.Context, job Job) (*Report, error) {
	return run(ctx, p.cfg, job, func(netEnv []string) (*launch, error) { return p.launch(job, netEnv) })
}

func (p *process) launch(job Job, netEnv []string) (*launch, error) {
	if len(job.Argv) == 0 {
		return nil, refusef("", "empty command")
	}
	path, err := lookPath(job.Argv[0], job.Env)
	if err != nil {
		return nil, refusef("", "%v", err)
	}
	lim := p.cfg.Limits
	s := spawnSpec{
		path: path, argv: job.Argv, env: append(append([]string{}, job.Env...), netEnv...),
		cloneFlags: unix.CLONE_NEWNET | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		reaper:     true, uid: -1, gid: -1, filter: p.filter,
		rlimits: []rlimit{
			{unix.RLIMIT_CPU, cpuSeconds(lim), cpuSeconds(lim) + 1}, // SIGXCPU, then SIGKILL a second later
			{unix.RLIMIT_NPROC, uint64(lim.MaxProcesses), uint64(lim.MaxProcesses)},
			{unix.RLIMIT_NOFILE, uint64(lim.MaxOpenFiles), uint64(lim.MaxOpenFiles)},
			{unix.RLIMIT_FSIZE, uint64(lim.MaxFileBytes), uint64(lim.MaxFileBytes)},
			{unix.RLIMIT_CORE, 0, 0},
		},
	}
	rootless := os.Geteuid() != 0
	if rootless {
		// A user namespace owned by this user makes the other namespaces
		// possible without privilege; the job keeps this user's identity.
		s.cloneFlags |= unix.CLONE_NEWUSER
	} else {
		s.uid, s.gid = JobUID, JobUID
	}
	// Resident memory and processes are the cgroup's where the host
	// allows, so a memory bomb ends by the memory meter; the address
	// space is bounded too, at twice the limit (programs reserve more
	// than they touch), or at the limit when there is no memory cgroup.
	cg := newCgroup(newID(), lim, false)
	var files []*os.File
	ruleset := -1
	fail := func(err error) (*launch, error) {
		for _, f := range files {
			f.Close()
		}
		if ruleset >= 0 {
			unix.Close(ruleset)
		}
		cg.remove()
		return nil, err
	}
	if p.cfg.RequireAllLimits && len(cg.unapplied) > 0 {
		return fail(refusef("", "cgroup limits cannot be applied: %s", strings.Join(cg.unapplied, "; ")))
	}
	as := uint64(lim.MemoryBytes)
	if _, ok := cg.dirs["memory"]; ok {
		as *= 2
	}
	s.rlimits = append(s.rlimits, rlimit{unix.RLIMIT_AS, as, as})
	ro, rw := append([]string{}, systemPaths...), []string(nil)
	for _, m := range p.cfg.Mounts {
		if m.Writable {
			rw = append(rw, m.Path)
		} else {
			ro = append(ro, m.Path)
		}
	}
	if ruleset, err = landlockRuleset(ro, rw); err != nil {
		return fail(err)
	}
	s.ruleset = ruleset
	// Opened here, where it can be reached: the job's identity may not be
	// able to search the directory's parents.
	if s.dir, err = os.OpenFile(jobDir(job, p.cfg.Mounts), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fail(refusef("", "working directory: %v", err))
	}
	files = append(files, s.dir)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	releaseR, releaseW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return fail(err)
	}
	files = append(files, statusR, statusW, releaseR, releaseW)
	s.status, s.release = statusW, releaseR
	return &launch{
		cgroup: cg,
		start: func(stdio [3]*os.File) (*os.Process, error) {
			s.stdio = stdio
			proc, err := spawn(s)
			statusW.Close()
			releaseR.Close()
			return proc, err
		},
		jobPID: func(first *os.Process) (int, error) {
			if rootless {
				if err := mapIDs(first.Pid); err != nil {
					return 0, err
				}
			}
			return first.Pid, nil
		},
		release: func() error {
			_, err := releaseW.Write([]byte{1})
			releaseW.Close()
			return err
		},
		setupErr: func() string {
			b, _ := io.ReadAll(io.LimitReader(statusR, 4096))
			return setupFailure(string(b))
		},
		cleanup: func() {
			for _, f := range files {
				f.Close()
			}
			unix.Close(ruleset)
			cg.remove()
		},
	}, nil
}

// mapIDs maps this user and group into a rootless job's user namespace.
func mapIDs(pid int) error {
	proc := fmt.Sprintf("/proc/%d/", pid)
	for _, w := range []struct{ file, text string }{
		{"setgroups", "deny"},
		{"uid_map", fmt.Sprintf("%d %d 1", os.Geteuid(), os.Geteuid())},
		{"gid_map", fmt.Sprintf("%d %d 1", os.Getegid(), os.Getegid())},
	} {
		if err := os.WriteFile(proc+w.file, []byte(w.text), 0); err != nil {
			return fmt.Errorf("sandbox: user namespace: %w", err)
		}
	}
	return nil
}

func cpuSeconds(l Limits) uint64 {
	return uint64(math.Ceil(l.CPU.Seconds()))
}

// jobDir is the job's working directory: as asked, else the first mount.
func jobDir(job Job, mounts []Mount) string {
	switch {
	case job.Dir != "":
		return job.Dir
	case len(mounts) > 0:
		return mounts[0].Path
	}
	return "/"
}
