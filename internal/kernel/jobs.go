package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/manifest"
	sbx "github.com/clawkeep/clawkeep/internal/sandbox"
	"github.com/clawkeep/clawkeep/internal/sandbox/wasm"
)

// job is an exec or wasm tool: it runs outside the kernel's own code, in
// the sandbox level the manifest asks for, never a weaker one.
type job struct {
	network bool        // the job can reach the network
	argv    []string    // exec: the command and leading arguments
	box     sbx.Sandbox // exec: process or container
	module  *wasm.Module
	fn      string
	call    wasm.Call // wasm: the template each run copies
	engine  *wasm.Engine
}

// jobArgs is what a call passes to an exec or wasm tool.
type jobArgs struct {
	Args  []string `json:"args"`
	Stdin string   `json:"stdin"`
}

func parseJobArgs(raw json.RawMessage) (jobArgs, error) {
	var a jobArgs
	if len(raw) == 0 {
		return a, nil
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, errors.New(`arguments of an exec or wasm tool are {"args": [strings], "stdin": string}`)
	}
	if len(a.Args) > 256 {
		return a, errors.New("more than 256 arguments")
	}
	for _, s := range a.Args {
		if strings.ContainsRune(s, 0) {
			return a, errors.New("an argument holds NUL")
		}
	}
	return a, nil
}

// shells are the programs capabilities.shell governs.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "fish": true, "csh": true, "tcsh": true, "busybox": true}

// shellRules is capabilities.shell: deny keeps every shell out of an exec
// tool's command line; restricted refuses blocked commands (any word whose
// base name is listed) and blocked patterns (regular expressions over the
// whole command line, words joined by spaces).
type shellRules struct {
	mode     string // deny | restricted | full
	commands map[string]bool
	patterns []*regexp.Regexp
}

func newShellRules(s manifest.ShellCaps) (shellRules, error) {
	r := shellRules{mode: s.Mode, commands: map[string]bool{}}
	switch s.Mode {
	case "", "deny":
		r.mode = "deny"
	case "restricted", "full":
	default:
		return r, fmt.Errorf("kernel: sandbox: unknown shell mode %q", s.Mode)
	}
	for _, c := range s.BlockedCommands {
		r.commands[c] = true
	}
	for _, p := range s.BlockedPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return r, fmt.Errorf("kernel: sandbox: blocked pattern %q: %v", p, err)
		}
		r.patterns = append(r.patterns, re)
	}
	return r, nil
}

// words splits a command line into the words a shell could run.
func words(argv []string) []string {
	var out []string
	for _, a := range argv {
		out = append(out, strings.FieldsFunc(a, func(r rune) bool {
			return strings.ContainsRune(" \t\n;|&()<>`$'\"{}", r)
		})...)
	}
	return out
}

// check refuses a command line the shell capability does not allow.
func (r shellRules) check(argv []string) error {
	if r.mode == "full" {
		return nil
	}
	for _, w := range words(argv) {
		base := filepath.Base(w)
		if r.mode == "deny" && shells[base] {
			return fmt.Errorf("the sandbox denies shells, and the command line runs %s", base)
		}
		if r.commands[base] {
			return fmt.Errorf("command %s is blocked by the sandbox", base)
		}
	}
	line := strings.Join(argv, " ")
	for _, re := range r.patterns {
		if re.MatchString(line) {
			return fmt.Errorf("the command line matches blocked pattern %q", re.String())
		}
	}
	return nil
}

// runJob runs an exec or wasm tool and records the outcome. A wall-clock,
// CPU or fuel meter is -32014; a memory, process, output or file-size
// limit and a network refusal are -32010; either way the data and the
// audit record say which meter fired.
func (k *Kernel) runJob(ctx context.Context, p ckp.ToolCallParams, t *tool, rec audit.Record) (*ckp.ToolCallResult, error) {
	a, err := parseJobArgs(p.Arguments)
	if err != nil {
		return nil, refuse(ckp.CodeInvalidParams, LayerTool, t.name, rec.Rule, "%v", err)
	}
	start := time.Now()
	var rep *sbx.Report
	if t.job.box != nil {
		argv := append(append([]string{}, t.job.argv...), a.Args...)
		rep, err = t.job.box.Run(ctx, sbx.Job{Argv: argv, Env: jobEnv, Stdin: []byte(a.Stdin)}) // starts in its first mount
		switch {
		case ctx.Err() != nil:
			rep = nil
		case err != nil:
			rep = &sbx.Report{Outcome: sbx.Refused, ExitCode: -1, Reason: "the sandbox failed: " + err.Error()}
		}
	} else {
		c := t.job.call
		c.Function, c.Args, c.Stdin = t.job.fn, append([]string{t.name}, a.Args...), []byte(a.Stdin)
		var res *wasm.Result
		if res, err = t.job.engine.Run(ctx, t.job.module, c); err == nil {
			rep = sbx.FromWASM(res, t.timeout)
		} else if ctx.Err() == nil {
			rep = &sbx.Report{Outcome: sbx.Refused, ExitCode: -1, Reason: err.Error()}
		}
	}
	if rep == nil {
		rec.Event, rec.Outcome = "outcome", "cancelled"
		k.audit.AppendAsync(rec)
		return nil, errCancelled
	}
	stdout, stderr, meter, reason, refusals := rep.Stdout, rep.Stderr, rep.Meter, rep.Reason, rep.NetworkRefusals
	failed := rep.Outcome != sbx.Exited || rep.ExitCode != 0
	if rep.Outcome == sbx.Refused {
		meter = sbx.MeterCapability
	}
	detail := map[string]string{
		"exit_code": strconv.Itoa(rep.ExitCode), "cpu_ms": strconv.FormatInt(rep.CPUMS, 10),
		"peak_memory_bytes": strconv.FormatInt(rep.PeakMemory, 10),
	}
	if len(rep.Unapplied) > 0 {
		detail["unapplied_limits"] = strings.Join(rep.Unapplied, "; ")
	}
	rec.Event, rec.Decision, rec.CostTokens = "outcome", "", 0
	detail["duration_ms"] = strconv.FormatInt(time.Since(start).Milliseconds(), 10)
	if meter != "" {
		detail["meter"] = string(meter)
	}
	if len(refusals) > 0 {
		detail["network_refusals"] = strings.Join(refusals, "; ")
	}
	rec.Detail = detail
	var refusal *Error
	switch {
	case meter == sbx.MeterWall || meter == sbx.MeterCPU || meter == sbx.MeterFuel:
		rec.Outcome = "timeout"
		refusal = refuse(ckp.CodeToolTimeout, LayerSandbox, t.name, rec.Rule, "%s", reason)
		refusal.Extra = map[string]any{"meter": string(meter), "timeout_ms": t.timeout.Milliseconds()}
	case meter != "":
		rec.Outcome = "sandbox-denied"
		refusal = refuse(ckp.CodeSandboxDenied, LayerSandbox, t.name, rec.Rule, "%s", reason)
		refusal.Extra = map[string]any{"meter": string(meter)}
	case failed && len(refusals) > 0:
		rec.Outcome = "sandbox-denied"
		refusal = refuse(ckp.CodeSandboxDenied, LayerSandbox, t.name, rec.Rule, "network access refused: %s", refusals[0])
		refusal.Extra = map[string]any{"meter": string(sbx.MeterCapability)}
	}
	if refusal != nil {
		detail["reason"] = refusal.Msg
		k.audit.AppendAsync(rec)
		return nil, refusal
	}
	text := string(stdout)
	if failed {
		text += string(stderr)
		if reason != "" {
			text += "\n" + reason
		}
	}
	rec.Outcome = "ok"
	if failed {
		rec.Outcome = "error"
	}
	text, leak := k.leaks.checkOutput(t.name, text, detail)
	if leak != nil {
		rec.Outcome = "secret-blocked"
		detail["reason"] = leak.Msg
		k.audit.AppendAsync(rec)
		return nil, leak
	}
	text, inj := k.inspectOutput(ctx, t, text, rec)
	if inj != nil {
		rec.Outcome = "injection-blocked"
		detail["reason"] = inj.Msg
		k.audit.AppendAsync(rec)
		return nil, inj
	}
	k.audit.AppendAsync(rec)
	return &ckp.ToolCallResult{IsError: failed, Content: []ckp.Content{{Type: "text", Text: text}}}, nil
}

// jobEnv is the whole environment of an exec tool: nothing of the
// kernel's is inherited.
var jobEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8", "TMPDIR=/tmp"}

// compileJob binds an exec or wasm tool to its sandbox, narrowed by the
// permissions of the skills that use it.
func (k *Kernel) compileJob(mt manifest.Tool, t *tool, n narrowing) error {
	b := k.box
	switch {
	case mt.Exec != nil:
		if b.level != sbx.LevelProcess && b.level != sbx.LevelContainer {
			return fmt.Errorf("kernel: exec tool %q needs sandbox level process or container, not %q", mt.Name, b.level)
		}
		if err := b.shell.check(mt.Exec); err != nil {
			return fmt.Errorf("kernel: exec tool %q: %v", mt.Name, err)
		}
		cfg := sbx.Config{Level: b.level, Limits: b.limits, RequireAllLimits: b.requireAll}
		cfg.Limits.Wall = t.timeout
		mounts, err := b.jobMounts(n, k.rootDir)
		if err != nil {
			return fmt.Errorf("kernel: exec tool %q: %v", mt.Name, err)
		}
		cfg.Mounts = mounts
		if b.netEnabled() && n.network {
			cfg.Network = sbx.Network{Policy: b.net, Proxy: k.proxy, Credentials: k.creds}
		}
		box, err := sbx.New(cfg)
		if err != nil {
			return fmt.Errorf("kernel: exec tool %q: %w", mt.Name, err)
		}
		t.job = &job{argv: mt.Exec, box: box, network: cfg.Network.Policy.Mode == egress.Allowlist || cfg.Network.Policy.Mode == egress.AllowAll}
	case mt.WASM != nil:
		if b.level != sbx.LevelWASM {
			return fmt.Errorf("kernel: wasm tool %q needs sandbox level wasm, not %q", mt.Name, b.level)
		}
		m, err := k.wasm.Load(mt.WASM.Code, mt.WASM.SHA256)
		if err != nil {
			return fmt.Errorf("kernel: wasm tool %q: %w", mt.Name, err)
		}
		call := wasm.Call{Limits: wasm.Limits{
			Deadline:       t.timeout,
			Fuel:           uint64(t.timeout.Seconds()+1) * fuelPerSecond,
			MemoryBytes:    b.limits.MemoryBytes,
			MaxOutputBytes: b.maxOutput,
		}}
		if b.fsMode == "scoped" || len(b.denied) > 0 {
			return fmt.Errorf("kernel: wasm tool %q: scoped mounts and denied_paths are not supported at level wasm; use read-only or full", mt.Name)
		}
		if writable, ok := b.workspaceMount(n); ok {
			call.Workspace, call.ReadOnlyWorkspace = k.rootDir, !writable
		}
		if b.http != nil && n.network {
			call.HTTP = b.http
		}
		t.job = &job{module: m, fn: mt.WASM.Function, call: call, engine: k.wasm, network: call.HTTP != nil}
	}
	return nil
}

// fuelPerSecond makes fuel a second meter just behind the wall clock: a
// module that could run about this many instructions a second exhausts
// its fuel soon after its deadline, so either meter alone stops it.
const fuelPerSecond = 4_000_000_000

// narrowing is what the skills that use a tool allow it: upper bounds that
// can only take rights away from the sandbox.
type narrowing struct {
	network  bool
	fs       int // fsNone < fsReadOnly < fsWrite < fsFull
	approval string
}

const (
	fsNone = iota
	fsReadOnly
	fsWrite
	fsFull
)

func narrowFor(c *manifest.Claw, tool string) narrowing {
	n := narrowing{network: true, fs: fsFull}
	for _, s := range c.Skills {
		uses := false
		for _, r := range s.ToolsRequired {
			uses = uses || r == tool
		}
		if !uses {
			continue
		}
		p := s.Permissions
		if p.Network != nil && !*p.Network {
			n.network = false
		}
		level := map[string]int{"none": fsNone, "read-only": fsReadOnly, "write-workspace": fsWrite, "full": fsFull, "": fsFull}[p.Filesystem]
		n.fs = min(n.fs, level)
		if p.ApprovalRequired != nil && *p.ApprovalRequired && n.approval == "" {
			n.approval = s.Name
		}
	}
	return n
}

// workspaceMount says whether the workspace is shown to a job and
// whether it is writable: the sandbox's filesystem mode narrowed by n.
func (b *grant) workspaceMount(n narrowing) (writable, ok bool) {
	if b.fsMode == "deny" || n.fs == fsNone {
		return false, false
	}
	return b.fsMode != "read-only" && n.fs >= fsWrite, true
}

// jobMounts are the host paths an exec tool sees: the workspace, or in
// scoped mode its declared mount_paths (relative to the workspace, which
// they must stay inside). denied_paths inside a mount cannot be carved out
// of a Landlock or bind-mount grant, so they are refused rather than
// ignored.
func (b *grant) jobMounts(n narrowing, workspace string) ([]sbx.Mount, error) {
	writable, ok := b.workspaceMount(n)
	if !ok {
		return nil, nil
	}
	if len(b.denied) > 0 {
		return nil, errors.New("denied_paths cannot be enforced for exec tools; list what they may see in scoped mount_paths instead")
	}
	if b.fsMode != "scoped" {
		return []sbx.Mount{{Path: workspace, Writable: writable}}, nil
	}
	var out []sbx.Mount
	for _, m := range b.mounts {
		p := filepath.Clean(filepath.Join(workspace, m.Path))
		if filepath.IsAbs(m.Path) {
			p = filepath.Clean(m.Path)
		}
		if p != workspace && !strings.HasPrefix(p, workspace+string(filepath.Separator)) {
			return nil, fmt.Errorf("mount path %q is outside the workspace", m.Path)
		}
		out = append(out, sbx.Mount{Path: p, Writable: writable && m.Permissions == "rw"})
	}
	return out, nil
}

func (b *grant) netEnabled() bool {
	return b.net.Mode == egress.Allowlist || b.net.Mode == egress.AllowAll
}
