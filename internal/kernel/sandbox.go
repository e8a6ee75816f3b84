package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"time"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/policy"
	sbx "github.com/clawkeep/clawkeep/internal/sandbox"
	"github.com/clawkeep/clawkeep/internal/tools"
)

// grant is what the manifest's sandbox allows tools: the in-process level
// enforces it on built-ins, internal/sandbox on exec and wasm tools.
type grant struct {
	level  sbx.Level
	limits sbx.Limits // resource_limits, for exec tools
	// requireAll makes a limit the host cannot apply (a missing cgroup
	// controller) refuse the job instead of being noted in its report.
	requireAll bool
	shell      shellRules
	net        egress.Policy
	http       *egress.Client // or nil when the network is denied
	fsMode     string         // deny | read-only | scoped | full
	mounts     []manifest.Mount
	denied     []string
	timeout    time.Duration // 0 = none
	maxOutput  int64
}

// LabelRequireAllLimits on a sandbox ("true") makes resource limits the
// host cannot apply fatal: the tool is refused rather than run with the
// limit named in the audit's unapplied_limits.
const LabelRequireAllLimits = "clawkeep.dev/require-all-limits"

// NetworkPolicy is the egress policy a manifest sandbox grants; a nil
// sandbox grants no network.
func NetworkPolicy(s *manifest.Sandbox) (egress.Policy, error) {
	if s == nil {
		return egress.Policy{Mode: egress.Deny}, nil
	}
	mode, err := egress.ParseMode(s.Network.Mode)
	if err != nil {
		return egress.Policy{}, fmt.Errorf("kernel: sandbox: %w", err)
	}
	return egress.Policy{Mode: mode, Hosts: s.Network.AllowedHosts}, nil
}

// newSandbox refuses levels this build cannot provide: running a tool with
// weaker isolation than the manifest asks for is never done silently.
func newSandbox(s *manifest.Sandbox, exempt []netip.Prefix) (grant, error) {
	var err error
	box := grant{level: sbx.LevelNone, net: egress.Policy{Mode: egress.Deny}, fsMode: "deny", maxOutput: defaultMaxOutput, shell: shellRules{mode: "deny"}}
	if s == nil {
		return box, nil // absent sandbox: the most restrictive one
	}
	if box.level, err = sbx.ParseLevel(s.Level); err != nil {
		return box, fmt.Errorf("kernel: %w", err)
	}
	if box.level == sbx.LevelProcess || box.level == sbx.LevelContainer || box.level == sbx.LevelVM {
		// Probe the host now: a level it cannot provide fails the
		// manifest, never a call, and is never downgraded.
		if _, err := sbx.New(sbx.Config{Level: box.level}); err != nil {
			return box, fmt.Errorf("kernel: sandbox level %q: %w; clawkeep never runs a tool with weaker isolation than the manifest asks for", s.Level, err)
		}
	}
	if box.shell, err = newShellRules(s.Shell); err != nil {
		return box, err
	}
	switch v := s.Labels[LabelRequireAllLimits]; v {
	case "", "false":
	case "true":
		box.requireAll = true
	default:
		return box, fmt.Errorf("kernel: sandbox label %s: want true or false, not %q", LabelRequireAllLimits, v)
	}
	l := s.Limits
	box.limits = sbx.Limits{
		MemoryBytes: l.MemoryMB << 20, CPUShares: int(l.CPUShares), MaxProcesses: int(l.MaxProcesses),
		MaxOpenFiles: int(l.MaxOpenFiles), MaxOutput: l.MaxOutputBytes,
	}
	if box.net, err = NetworkPolicy(s); err != nil {
		return box, err
	}
	box.net.Exempt = exempt
	mode := box.net.Mode
	switch s.FS.Mode {
	case "deny", "read-only", "scoped", "full":
		box.fsMode = s.FS.Mode
	default:
		return box, fmt.Errorf("kernel: sandbox: unknown filesystem mode %q", s.FS.Mode)
	}
	box.mounts, box.denied = s.FS.MountPaths, s.FS.DeniedPaths
	if s.Limits.TimeoutMS > 0 {
		box.timeout = time.Duration(s.Limits.TimeoutMS) * time.Millisecond
	}
	if s.Limits.MaxOutputBytes > 0 {
		box.maxOutput = s.Limits.MaxOutputBytes
	}
	if mode != egress.Deny {
		box.http = egress.NewClient(box.net, egress.Limits{MaxBodyBytes: box.maxOutput})
	}
	return box, nil
}

// admit is the sandbox gate: what the tool needs must be granted, and the
// literal parts of its arguments (URL, path) must be inside the grant. The
// egress dialer checks resolved addresses again at connect time.
func (b *grant) admit(t *tool, args map[string]any, argsRaw json.RawMessage, workspace string) *Error {
	deny := func(format string, a ...any) *Error {
		return refuse(ckp.CodeSandboxDenied, LayerSandbox, t.name, "", format, a...)
	}
	if t.job != nil {
		if t.job.argv == nil {
			return nil
		}
		a, err := parseJobArgs(argsRaw)
		if err != nil {
			return refuse(ckp.CodeInvalidParams, LayerTool, t.name, "", "%v", err)
		}
		if err := b.shell.check(append(append([]string{}, t.job.argv...), a.Args...)); err != nil {
			return deny("%v", err)
		}
		return nil
	}
	n := t.builtin.Needs
	if (n.Network && !t.narrow.network) || ((n.ReadFiles || n.WriteFiles) && t.narrow.fs == fsNone) {
		return deny("the skills that use this tool do not permit what it needs")
	}
	if n.WriteFiles && t.narrow.fs < fsWrite {
		return deny("the skills that use this tool permit only reading files")
	}
	if n.Network {
		if b.http == nil {
			return deny("the sandbox denies network access")
		}
		if t.builtin.URLArg != "" {
			if s, ok := args[t.builtin.URLArg].(string); ok {
				u, err := url.Parse(s)
				if err != nil {
					return deny("invalid URL")
				}
				if err := b.net.CheckURL(u); err != nil {
					return deny("%s", trimPrefix(err))
				}
			}
		}
	}
	if n.ReadFiles || n.WriteFiles {
		switch {
		case b.fsMode == "deny":
			return deny("the sandbox denies filesystem access")
		case n.WriteFiles && b.fsMode == "read-only":
			return deny("the sandbox filesystem is read-only")
		}
		if t.builtin.PathArg != "" {
			if s, ok := args[t.builtin.PathArg].(string); ok && s != "" {
				if err := b.admitPath(s, n.WriteFiles, workspace); err != nil {
					return deny("%s", err)
				}
			}
		}
	}
	return nil
}

// admitPath applies denied_paths and, in scoped mode, mount_paths. Paths in
// the manifest are relative to the workspace.
func (b *grant) admitPath(p string, write bool, workspace string) error {
	resolved, err := policy.ResolvePath(workspace, p)
	if err != nil {
		return fmt.Errorf("path %q: %v", p, err)
	}
	if !policy.Within(workspace, resolved) {
		return fmt.Errorf("path %q is outside the workspace", p)
	}
	abs := func(m string) string {
		if filepath.IsAbs(m) {
			return filepath.Clean(m)
		}
		return filepath.Join(workspace, m)
	}
	for _, d := range b.denied {
		if policy.Within(abs(d), resolved) {
			return fmt.Errorf("path %q is in a denied path", p)
		}
	}
	if b.fsMode != "scoped" {
		return nil
	}
	for _, m := range b.mounts {
		if policy.Within(abs(m.Path), resolved) && (!write || m.Permissions == "rw") {
			return nil
		}
	}
	return fmt.Errorf("path %q is not inside a mount that allows this access", p)
}

func trimPrefix(err error) string {
	s := err.Error()
	const p = "egress: blocked: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// execute runs the tool under its deadline and records the outcome. The
// outcome record joins the next group commit: the decision before it is
// already durable.
func (k *Kernel) execute(ctx context.Context, p ckp.ToolCallParams, t *tool, rec audit.Record) (*ckp.ToolCallResult, error) {
	if t.job != nil {
		return k.runJob(ctx, p, t, rec)
	}
	env := &tools.Env{HTTP: k.box.http, MaxOutputBytes: k.box.maxOutput}
	if k.box.fsMode != "deny" {
		env.Workspace = k.root
	}
	runCtx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	start := time.Now()
	text, err := t.builtin.Run(runCtx, env, p.Arguments)
	elapsed := time.Since(start)

	rec.Event, rec.Decision, rec.CostTokens = "outcome", "", 0
	rec.Detail = map[string]string{"duration_ms": fmt.Sprint(elapsed.Milliseconds())}
	var refusal *Error
	result := &ckp.ToolCallResult{}
	switch {
	case err == nil:
		rec.Outcome = "ok"
		var leak *Error
		if text, leak = k.leaks.checkOutput(t.name, text, rec.Detail); leak != nil {
			rec.Outcome, refusal = "secret-blocked", leak
			break
		}
		if int64(len(text)) > k.box.maxOutput {
			text = text[:k.box.maxOutput] + "\n[output truncated at max_output_bytes]"
			rec.Detail["truncated"] = "true"
		}
		var inj *Error
		if text, inj = k.inspectOutput(ctx, t, text, rec); inj != nil {
			rec.Outcome, refusal = "injection-blocked", inj
			break
		}
		result.Content = []ckp.Content{{Type: "text", Text: text}}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		rec.Outcome = "timeout"
		refusal = refuse(ckp.CodeToolTimeout, LayerTool, t.name, rec.Rule, "tool exceeded its timeout of %s", t.timeout)
		refusal.Extra = map[string]any{"timeout_ms": t.timeout.Milliseconds()}
	case ctx.Err() != nil:
		rec.Outcome = "cancelled"
		k.audit.AppendAsync(rec)
		return nil, errCancelled
	case errors.Is(err, egress.ErrBlocked) || errors.Is(err, tools.ErrSandbox):
		rec.Outcome = "sandbox-denied"
		refusal = refuse(ckp.CodeSandboxDenied, LayerSandbox, t.name, rec.Rule, "%s", trimPrefix(err))
	case errors.Is(err, tools.ErrInvalidArgs):
		rec.Outcome = "invalid-arguments"
		refusal = refuse(ckp.CodeInvalidParams, LayerTool, t.name, rec.Rule, "%s", err.Error())
	default:
		rec.Outcome = "error"
		msg, leak := k.leaks.checkOutput(t.name, err.Error(), rec.Detail)
		if leak != nil {
			rec.Outcome, refusal = "secret-blocked", leak
			break
		}
		result.IsError = true
		result.Content = []ckp.Content{{Type: "text", Text: msg}}
	}
	if refusal != nil {
		rec.Detail["reason"] = refusal.Msg
	}
	k.audit.AppendAsync(rec)
	if refusal != nil {
		return nil, refusal
	}
	return result, nil
}
