package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/clawkeep/clawkeep/internal/egress"
)

// Level is an isolation level, weakest first. A level this host cannot
// provide is refused by New; clawkeep never runs a job under a weaker one.
type Level string

const (
	LevelNone      Level = "none"      // built-in tools in the kernel's process
	LevelProcess   Level = "process"   // child process: rlimits, seccomp, Landlock, own network namespace
	LevelContainer Level = "container" // bubblewrap: all namespaces, cgroups where the host allows
	LevelWASM      Level = "wasm"      // wasmtime: fuel and epoch deadline
	LevelVM        Level = "vm"        // not available on any host clawkeep supports yet
)

// ParseLevel checks a manifest's sandbox.level.
func ParseLevel(s string) (Level, error) {
	switch l := Level(s); l {
	case LevelNone, LevelProcess, LevelContainer, LevelWASM, LevelVM:
		return l, nil
	}
	return "", fmt.Errorf("sandbox: unknown level %q (want none, process, container, wasm or vm)", s)
}

// Mount is a host path the job may see, at the same path inside.
type Mount struct {
	Path     string // absolute and clean
	Writable bool
}

// Limits bound one job. A zero field takes the default stated beside it;
// there is no "unlimited" for the two meters.
type Limits struct {
	Wall         time.Duration // wall clock, the first meter; 0 = 30 s
	CPU          time.Duration // CPU time, the second meter (whole seconds, rounded up); 0 = Wall
	MemoryBytes  int64         // address space (process), cgroup memory (container); 0 = 512 MiB
	MaxProcesses int           // 0 = 64
	MaxOpenFiles int           // 0 = 256
	MaxFileBytes int64         // largest file the job may write; 0 = 64 MiB
	MaxOutput    int64         // stdout and stderr, each; 0 = 1 MiB; beyond it the job is killed
	CPUShares    int           // cgroup cpu.shares (container); 0 = leave the host default
}

func (l Limits) withDefaults() Limits {
	if l.Wall <= 0 {
		l.Wall = 30 * time.Second
	}
	if l.CPU <= 0 {
		l.CPU = l.Wall
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = 512 << 20
	}
	if l.MaxProcesses <= 0 {
		l.MaxProcesses = 64
	}
	if l.MaxOpenFiles <= 0 {
		l.MaxOpenFiles = 256
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 64 << 20
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = 1 << 20
	}
	return l
}

// Network is a job's way out. The only route is the egress proxy: the job
// gets a fresh network namespace whose one listener (127.0.0.1:3128,
// announced in HTTP_PROXY) is served by Proxy with Policy.
type Network struct {
	Policy egress.Policy // Mode Deny: the namespace has no listener at all
	Proxy  *egress.Proxy // required unless Policy.Mode is Deny
	// Credentials are bound to this job's proxy registration; the job sees
	// only their placeholders.
	Credentials []egress.Credential
}

// enabled reports whether the job gets a way out; any mode but Allowlist
// and AllowAll (the zero Mode too) denies.
func (n Network) enabled() bool {
	return n.Policy.Mode == egress.Allowlist || n.Policy.Mode == egress.AllowAll
}

// Config is one sandbox profile: what every job run in it may do.
type Config struct {
	Level   Level
	Mounts  []Mount // the workspace and any other declared paths
	Network Network
	Limits  Limits
	// RequireAllLimits makes a limit the host cannot apply (a missing cgroup
	// controller) a refusal instead of a note in the report.
	RequireAllLimits bool
}

// Job is one command run in a sandbox.
type Job struct {
	Argv  []string // Argv[0] is an absolute path or a name looked up in /usr/bin:/bin
	Env   []string // KEY=VALUE, the whole environment; nothing is inherited
	Dir   string   // working directory; "" = the first mount, or /
	Stdin []byte
}

// Outcome is how a job ended.
type Outcome string

const (
	Exited  Outcome = "exited"  // it exited on its own (any status)
	Killed  Outcome = "killed"  // a meter, a limit or a signal ended it
	Refused Outcome = "refused" // it never started: the sandbox could not be built as asked
)

// Meter names what stopped a job.
type Meter string

const (
	MeterWall       Meter = "wall_clock"
	MeterCPU        Meter = "cpu_time"
	MeterMemory     Meter = "memory"
	MeterOutput     Meter = "output"
	MeterFileSize   Meter = "file_size"
	MeterProcesses  Meter = "processes"
	MeterFuel       Meter = "fuel"
	MeterCapability Meter = "capability" // a refused capability (network, filesystem)
)

// Report is what happened to one job. Stdout and Stderr are not part of
// the JSON form: the report is for operators and audit, the output for the
// caller.
type Report struct {
	Level      Level    `json:"level"`
	Outcome    Outcome  `json:"outcome"`
	ExitCode   int      `json:"exit_code"`            // -1 when killed by a signal or refused
	Signal     string   `json:"signal,omitempty"`     // e.g. "killed", "CPU time limit exceeded"
	Meter      Meter    `json:"meter,omitempty"`      // what ended the job, if a meter or limit did
	Hit        []Meter  `json:"limits_hit,omitempty"` // every limit the job ran into
	Reason     string   `json:"reason,omitempty"`     // human words for a refusal or a meter
	WallMS     int64    `json:"wall_ms"`
	CPUMS      int64    `json:"cpu_ms"`
	PeakMemory int64    `json:"peak_memory_bytes"`
	Unapplied  []string `json:"unapplied_limits,omitempty"` // limits this host could not apply
	// NetworkRefusals are the egress proxy's reasons for each request it
	// refused this job (a capability refusal, whatever the job then did).
	NetworkRefusals []string `json:"network_refusals,omitempty"`
	Stdout          []byte   `json:"-"`
	Stderr          []byte   `json:"-"`
	Truncated       bool     `json:"output_truncated,omitempty"`
}

// Sandbox runs jobs under one Config. Implementations are safe for
// concurrent use; each Run builds a fresh sandbox and tears it down.
type Sandbox interface {
	Level() Level
	// Run runs job to its end. An error means the job could not be judged
	// (ctx cancelled before start, the host failed); a job the sandbox
	// refused or stopped is a Report with that Outcome and a nil error.
	Run(ctx context.Context, job Job) (*Report, error)
}

// ErrUnavailable wraps a refusal to build a sandbox this host cannot give.
var ErrUnavailable = errors.New("sandbox level unavailable")

// New returns the sandbox for cfg.Level, or an error wrapping
// ErrUnavailable when this host cannot provide it. LevelNone and LevelWASM
// run in the kernel's process and are built by their own packages; asking
// for them here is an error.
func New(cfg Config) (Sandbox, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.Limits = cfg.Limits.withDefaults()
	switch cfg.Level {
	case LevelProcess:
		return newProcess(cfg)
	case LevelContainer:
		return newContainer(cfg)
	case LevelVM:
		return nil, fmt.Errorf("%w: level vm needs a micro-VM monitor, which this build does not have; choose container or process", ErrUnavailable)
	}
	return nil, fmt.Errorf("sandbox: level %q does not run external commands", cfg.Level)
}

func (c Config) check() error {
	for _, m := range c.Mounts {
		if !filepath.IsAbs(m.Path) || filepath.Clean(m.Path) != m.Path {
			return fmt.Errorf("sandbox: mount %q must be an absolute, clean path", m.Path)
		}
		if m.Path == "/" {
			return errors.New("sandbox: mounting / would expose the whole host")
		}
	}
	if c.Network.enabled() && c.Network.Proxy == nil {
		return errors.New("sandbox: a network policy other than deny needs the egress proxy")
	}
	return nil
}
