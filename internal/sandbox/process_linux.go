package sandbox

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"syscall"

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
	cfg  Config
	self string // this executable, re-run as the init process
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
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return &process{cfg: cfg, self: self}, nil
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
	spec := initSpec{
		Path: path, Argv: job.Argv, Env: append(append([]string{}, job.Env...), netEnv...),
		Dir: jobDir(job, p.cfg.Mounts), UID: -1, GID: -1, Confine: true, Reaper: true,
		ReadOnly: append([]string{}, systemPaths...),
		Rlimits: []rlimit{
			{unix.RLIMIT_CPU, cpuSeconds(lim), cpuSeconds(lim) + 1}, // SIGXCPU, then SIGKILL a second later
			{unix.RLIMIT_NPROC, uint64(lim.MaxProcesses), uint64(lim.MaxProcesses)},
			{unix.RLIMIT_NOFILE, uint64(lim.MaxOpenFiles), uint64(lim.MaxOpenFiles)},
			{unix.RLIMIT_FSIZE, uint64(lim.MaxFileBytes), uint64(lim.MaxFileBytes)},
			{unix.RLIMIT_CORE, 0, 0},
		},
	}
	// Resident memory and processes are the cgroup's where the host
	// allows, so a memory bomb ends by the memory meter; the address
	// space is bounded too, at twice the limit (programs reserve more
	// than they touch), or at the limit when there is no memory cgroup.
	cg := newCgroup(newID(), lim)
	if p.cfg.RequireAllLimits && len(cg.unapplied) > 0 {
		cg.remove()
		return nil, refusef("", "cgroup limits cannot be applied: %s", strings.Join(cg.unapplied, "; "))
	}
	as := uint64(lim.MemoryBytes)
	if _, ok := cg.dirs["memory"]; ok {
		as *= 2
	}
	spec.Rlimits = append(spec.Rlimits, rlimit{unix.RLIMIT_AS, as, as})
	for _, m := range p.cfg.Mounts {
		if m.Writable {
			spec.ReadWrite = append(spec.ReadWrite, m.Path)
		} else {
			spec.ReadOnly = append(spec.ReadOnly, m.Path)
		}
	}
	attr := &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
	}
	if os.Geteuid() == 0 {
		spec.UID, spec.GID = JobUID, JobUID
	} else {
		// A user namespace owned by this user makes the other namespaces
		// possible without privilege; the job keeps this user's identity.
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	ip, err := newInitProc(p.self, spec, attr)
	if err != nil {
		cg.remove()
		return nil, err
	}
	return &launch{
		cmd:    ip.cmd,
		cgroup: cg,
		jobPID: func() (int, error) {
			ip.started()
			return ip.cmd.Process.Pid, nil
		},
		release:  ip.send,
		setupErr: ip.status,
		cleanup:  func() { ip.close(); cg.remove() },
	}, nil
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
