// Package kernel is the one path every tool call takes: quota, policy and
// identity, sandbox, tool and arguments, approval, then execution under a
// deadline, with a durable audit record of the decision before anything runs.
//
// # Threat model
//
// The caller of Call is an agent and may be steered by hostile content: it
// picks tool names, arguments and request ids. The manifest is the
// operator's and is trusted. The kernel assumes the agent will try any tool,
// any argument, retries with altered arguments under a used request_id, and
// approval races.
//
// # Guarantees
//
//   - Call is the only function that runs a tool; transports call it.
//   - A refusal at any gate stops the call; a gate that cannot decide
//     (audit unavailable, approval store failing) refuses: fail closed.
//   - Rights only narrow: a call needs the policy, the identity's autonomy,
//     the sandbox and the tool's own declaration to agree.
//   - The decision record is durable in the audit chain before a tool runs.
//   - A request_id replays its first outcome for at least five minutes and
//     is refused for a different call.
package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/time/rate"

	"github.com/clawkeep/clawkeep/internal/ability"
	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/policy"
	sbx "github.com/clawkeep/clawkeep/internal/sandbox"
	"github.com/clawkeep/clawkeep/internal/sandbox/wasm"
	"github.com/clawkeep/clawkeep/internal/scan"
	"github.com/clawkeep/clawkeep/internal/tools"
)

const (
	defaultToolTimeout = 30 * time.Second
	defaultMaxOutput   = 1 << 20
	idempotencyTTL     = 10 * time.Minute
	idempotencyMax     = 100_000
	// approveGrace is how long an approve waits for its call to reach the
	// approval gate: transports run requests concurrently, so an approve sent
	// right after its call can arrive first.
	approveGrace = 2 * time.Second
)

// Config is everything a kernel needs; the kernel owns none of it.
type Config struct {
	Tenant    string          // never empty
	Claw      *manifest.Claw  // never nil; a loaded, validated manifest
	Workspace string          // the agent's workspace directory; created 0700
	Audit     *audit.Log      // never nil
	Approvals *approval.Store // never nil
	Exempt    []netip.Prefix  // operator exceptions to the egress refusal, or nil
	// Credentials the egress layer may attach to this agent's requests
	// (placeholder {{cred:NAME}} in an http.fetch header), or nil. Their
	// values never reach the agent, the tool's result or the audit.
	Credentials []egress.Credential
	// Secrets resolves the credentials the manifest's sandbox binds with
	// clawkeep.dev/credential.NAME labels (from the tenant's vault), or
	// nil: a manifest that binds credentials is then refused.
	Secrets SecretFunc
	// Abilities, when not nil, is what the organisation granted this
	// agent: every tool call must fall in a granted service's action
	// (zero access otherwise), and an action granted with approval needs
	// a human even where policy allows it. Nil means abilities are not
	// in use (a local run, where the manifest alone decides).
	Abilities *ability.Set
	Now       func() time.Time // test knob; nil = time.Now
}

// Kernel decides, runs and records tool calls for one agent.
type Kernel struct {
	tenant, agent string
	autonomy      manifest.Autonomy
	tools         map[string]*tool // read-only after New
	policy        *policy.Policy   // never nil
	rules         map[string]ruleExtra
	box           grant
	wasm          *wasm.Engine        // level wasm only
	creds         []egress.Credential // bound to exec tools' egress
	root          *os.Root            // the workspace; never nil
	rootDir       string              // resolved workspace path
	audit         *audit.Log
	approvals     *approval.Store
	now           func() time.Time
	quota         *quota
	idem          *idempotency
	callLimit     *rate.Limiter   // or nil: policy rate_limits.tool_calls_per_minute
	leaks         *leakScan       // or nil: policy secret_scanning is off
	inj           *injectionGuard // or nil: policy prompt_injection is off
	taint         taint           // what this agent's session has read
	proxy         *egress.Proxy   // or nil: no exec tool network and no credentials; built-ins dial through box.http directly
	abilities     *ability.Set    // or nil: not in use

	mu        sync.Mutex
	submitted chan struct{} // guarded by mu; closed and replaced whenever an approval is submitted
}

type ruleExtra struct {
	budget budget
}

// tool is a manifest tool bound to its built-in, compiled once.
type tool struct {
	name       string
	builtin    *tools.Builtin
	schema     *jsonschema.Schema // never nil
	hints      policy.Hints
	category   string
	sideEffect bool // not declared read-only
	timeout    time.Duration
	costTokens int64
	costUSD    float64
	risk       approval.Risk
	job        *job      // exec and wasm tools; builtin is nil then
	narrow     narrowing // what the skills that use the tool allow
	service    string    // the ability service and action the tool belongs to
	action     string
}

// New builds a kernel for cfg.Claw. It refuses manifests it cannot enforce
// exactly: an unknown built-in, a sandbox level it cannot provide, a rule it
// cannot compile.
func New(cfg Config) (*Kernel, error) {
	c := cfg.Claw
	if cfg.Tenant == "" || c == nil || cfg.Audit == nil || cfg.Approvals == nil || cfg.Workspace == "" {
		return nil, errors.New("kernel: incomplete config")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	box, err := newSandbox(c.Sandbox, cfg.Exempt)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Workspace, 0o700); err != nil {
		return nil, fmt.Errorf("kernel: workspace: %w", err)
	}
	if box.level == sbx.LevelProcess && os.Geteuid() == 0 {
		// A root kernel's process-level jobs run as nobody: the
		// workspace (not its parents) is theirs.
		if err := os.Chown(cfg.Workspace, sbx.JobUID, sbx.JobUID); err != nil {
			return nil, fmt.Errorf("kernel: workspace: %w", err)
		}
	}
	rootDir, err := filepath.EvalSymlinks(cfg.Workspace)
	if err != nil {
		return nil, fmt.Errorf("kernel: workspace: %w", err)
	}
	if rootDir, err = filepath.Abs(rootDir); err != nil {
		return nil, fmt.Errorf("kernel: workspace: %w", err)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, fmt.Errorf("kernel: workspace: %w", err)
	}
	k := &Kernel{
		tenant:    cfg.Tenant,
		agent:     c.Identity.Name,
		autonomy:  c.Identity.Autonomy,
		abilities: cfg.Abilities,
		tools:     map[string]*tool{},
		rules:     map[string]ruleExtra{},
		box:       box,
		root:      root,
		rootDir:   rootDir,
		audit:     cfg.Audit,
		approvals: cfg.Approvals,
		now:       now,
		idem:      &idempotency{ttl: idempotencyTTL, max: idempotencyMax, entries: map[string]*idemEntry{}},
		submitted: make(chan struct{}),
	}
	fail := func(err error) (*Kernel, error) {
		k.Close()
		return nil, err
	}
	bound, err := credentialBindings(c.Sandbox, cfg.Secrets)
	if err != nil {
		return fail(err)
	}
	granted, err := abilityBindings(cfg.Abilities, cfg.Secrets)
	if err != nil {
		return fail(err)
	}
	bound = append(bound, granted...)
	if len(bound) > 0 && cfg.Secrets == nil {
		return fail(errors.New("kernel: the manifest binds credentials but no vault is open"))
	}
	cfg.Credentials = append(append([]egress.Credential{}, cfg.Credentials...), bound...)
	k.creds = cfg.Credentials
	if k.box.netEnabled() && (len(cfg.Credentials) > 0 || k.box.level == sbx.LevelProcess || k.box.level == sbx.LevelContainer) {
		// Credentials are attached only by the egress proxy, so built-in
		// network tools go through it (in process) like a sandbox would;
		// exec tools reach it from their network namespace.
		k.proxy = egress.NewProxy(egress.ProxyOptions{OnUse: k.credentialUsed})
	}
	if len(cfg.Credentials) > 0 && k.box.http != nil {
		token, err := k.proxy.Register(k.agent, k.box.net, cfg.Credentials)
		if err != nil {
			return fail(fmt.Errorf("kernel: credentials: %w", err))
		}
		k.box.http = egress.NewProxiedClient(k.proxy, token, k.box.net, egress.Limits{MaxBodyBytes: k.box.maxOutput})
	}
	if k.box.level == sbx.LevelWASM {
		if k.wasm, err = wasm.NewEngine(wasm.EngineOptions{}); err != nil {
			return fail(fmt.Errorf("kernel: %w", err))
		}
	}
	if err := k.compile(c, rootDir); err != nil {
		return fail(err)
	}
	if k.leaks != nil && len(cfg.Credentials) > 0 {
		known, err := knownValues(cfg.Credentials)
		if err != nil {
			return fail(err)
		}
		k.leaks.det = scan.NewDetector(known)
		for _, v := range known {
			clear(v)
		}
	}
	// A restart must not reset the daily budget: the audit chain knows
	// what was spent today.
	spent, _, err := k.audit.UsageSince(now().UTC().Truncate(24*time.Hour), k.agent)
	if err != nil {
		return fail(fmt.Errorf("kernel: restoring today's usage: %w", err))
	}
	k.quota.restore(now(), spent)
	return k, nil
}

// Check reports whether c can be enforced by this build, without opening
// anything: the checks New makes before it touches the data directory.
func Check(c *manifest.Claw) error {
	box, err := newSandbox(c.Sandbox, nil)
	if err != nil {
		return err
	}
	if _, err := credentialBindings(c.Sandbox, nil); err != nil {
		return err
	}
	k := &Kernel{box: box, tools: map[string]*tool{}, rules: map[string]ruleExtra{}, rootDir: "/workspace"}
	if box.netEnabled() {
		k.proxy = egress.NewProxy(egress.ProxyOptions{})
		defer k.proxy.Close()
	}
	if box.level == sbx.LevelWASM {
		if k.wasm, err = wasm.NewEngine(wasm.EngineOptions{}); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		defer k.wasm.Close()
	}
	return k.compile(c, "/workspace")
}

// compile binds tools to built-ins and compiles the rules and limits.
func (k *Kernel) compile(c *manifest.Claw, workspace string) error {
	for _, mt := range c.Tools {
		t, err := compileTool(mt, k.box)
		if err != nil {
			return err
		}
		t.narrow = narrowFor(c, mt.Name)
		if err := k.compileJob(mt, t, t.narrow); err != nil {
			return err
		}
		k.tools[t.name] = t
	}
	var rules []policy.Rule
	var callsPerMinute int64
	for _, p := range c.Policies {
		for _, mr := range p.Rules {
			r, extra, err := compileRule(mr, workspace)
			if err != nil {
				return err
			}
			rules = append(rules, r)
			k.rules[r.ID] = extra
		}
		if n := p.RateLimits.ToolCallsPerMinute; n > 0 && (callsPerMinute == 0 || n < callsPerMinute) {
			callsPerMinute = n
		}
	}
	pol, err := policy.Compile(rules)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	k.policy = pol
	if callsPerMinute > 0 {
		k.callLimit = rate.NewLimiter(rate.Limit(float64(callsPerMinute)/60), int(callsPerMinute))
	}
	k.leaks = compileLeakScan(c.Policies)
	inj, err := compileInjection(c.Policies, c.Providers)
	if err != nil {
		return err
	}
	k.inj = inj
	k.quota = &quota{}
	if len(c.Providers) > 0 {
		l := c.Providers[0].Limits
		k.quota.perRequest = l.TokensPerRequest
		k.quota.provider = budget{tokensPerDay: l.TokensPerDay, usdPerDay: l.CostPerDayUSD}
	}
	return nil
}

func compileTool(mt manifest.Tool, box grant) (*tool, error) {
	var b *tools.Builtin
	if mt.Exec == nil && mt.WASM == nil {
		var ok bool
		if b, ok = tools.Lookup(mt.Builtin); !ok {
			return nil, fmt.Errorf("kernel: tool %q: no built-in named %q (have %s)", mt.Name, mt.Builtin, strings.Join(tools.Names(), ", "))
		}
		n := b.Needs
		if box.level != sbx.LevelNone && (n.Network || n.ReadFiles || n.WriteFiles) {
			return nil, fmt.Errorf("kernel: tool %q: built-in %s runs inside the kernel's process, which is weaker than sandbox level %q; declare it as an exec tool, or use level none", mt.Name, b.Name, box.level)
		}
	}
	if mt.MCPSource != nil {
		return nil, fmt.Errorf("kernel: tool %q: mcp_source tools are not supported yet", mt.Name)
	}
	schemaJSON := mt.InputSchema
	if len(schemaJSON) == 0 {
		schemaJSON = json.RawMessage(`{"type":"object"}`)
	}
	sch, err := compileSchema(mt.Name, schemaJSON)
	if err != nil {
		return nil, err
	}
	t := &tool{
		name:       mt.Name,
		builtin:    b,
		schema:     sch,
		category:   mt.Labels[manifest.LabelCategory],
		timeout:    defaultToolTimeout,
		costTokens: mt.CostTokens,
		costUSD:    mt.CostUSD,
	}
	t.service, t.action = ability.Of(mt.Name, mt.Labels)
	a := mt.Annotations
	for _, h := range []struct {
		v    *bool
		hint policy.Hint
	}{{a.ReadOnly, policy.ReadOnly}, {a.Destructive, policy.Destructive}, {a.Idempotent, policy.Idempotent}, {a.OpenWorld, policy.OpenWorld}} {
		if h.v != nil {
			t.hints = t.hints.With(h.hint, *h.v)
		}
	}
	readOnly, _ := t.hints.Get(policy.ReadOnly)
	t.sideEffect = !readOnly
	if b != nil && readOnly && b.Needs.WriteFiles {
		return nil, fmt.Errorf("kernel: tool %q is declared readOnlyHint but its built-in %s writes", mt.Name, b.Name)
	}
	if mt.TimeoutMS > 0 {
		t.timeout = time.Duration(mt.TimeoutMS) * time.Millisecond
	}
	if box.timeout > 0 && box.timeout < t.timeout {
		t.timeout = box.timeout
	}
	switch destructive, _ := t.hints.Get(policy.Destructive); {
	case destructive:
		t.risk = approval.High
	case t.sideEffect:
		t.risk = approval.Medium
	default:
		t.risk = approval.Low
	}
	if s, ok := mt.Labels[LabelRisk]; ok {
		// The operator knows what the tool touches (money, accounts)
		// better than its hints say.
		r, err := approval.ParseRisk(s)
		if err != nil {
			return nil, fmt.Errorf("kernel: tool %q: label %s: want low, medium, high or critical", mt.Name, LabelRisk)
		}
		t.risk = r
	}
	return t, nil
}

// compileSchema compiles a tool's input_schema with no loader: a schema
// that refers to anything outside itself does not compile.
func compileSchema(name string, raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("kernel: tool %q: input_schema: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	loc := "clawkeep:tool/" + name
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("kernel: tool %q: input_schema: %w", name, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("kernel: tool %q: input_schema: %w", name, err)
	}
	return sch, nil
}

func compileRule(mr manifest.Rule, workspace string) (policy.Rule, ruleExtra, error) {
	var r policy.Rule
	var extra ruleExtra
	act, err := policy.ParseAction(mr.Action)
	if err != nil {
		return r, extra, fmt.Errorf("kernel: rule %q: %w", mr.ID, err)
	}
	scope, err := policy.ParseScope(mr.Scope)
	if err != nil {
		return r, extra, fmt.Errorf("kernel: rule %q: %w", mr.ID, err)
	}
	r = policy.Rule{ID: mr.ID, Action: act, Scope: scope, Tools: mr.Match.Tools, Category: mr.Match.Category, Reason: mr.Reason}
	for key, v := range mr.Match.Annotations {
		hint, ok := hintNames[key]
		b, isBool := v.(bool)
		if !ok || !isBool {
			return r, extra, fmt.Errorf("kernel: rule %q: cannot match annotation %q=%v (only boolean readOnlyHint, destructiveHint, idempotentHint, openWorldHint)", mr.ID, key, v)
		}
		r.Hints = r.Hints.With(hint, b)
	}
	if len(mr.Conditions.Extra) > 0 {
		return r, extra, fmt.Errorf("kernel: rule %q: unsupported condition(s); only path_within is enforced", mr.ID)
	}
	if p := mr.Conditions.PathWithin; p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(workspace, p)
		}
		resolved, err := policy.ResolvePath(workspace, p)
		if err != nil {
			return r, extra, fmt.Errorf("kernel: rule %q: path_within: %w", mr.ID, err)
		}
		r.PathWithin = resolved
	}
	if a := mr.Approval; a != nil && act == policy.RequireApproval {
		r.ApprovalTimeout = time.Duration(a.TimeoutSeconds) * time.Second
		if a.DefaultIfTimeout == "allow" {
			r.DefaultIfTimeout = policy.Allow
		} else {
			r.DefaultIfTimeout = policy.Deny
		}
	}
	if rl := mr.RateLimit; rl != nil {
		if rl.TokensPerDay != nil {
			extra.budget.tokensPerDay = *rl.TokensPerDay
		}
		if rl.CostPerDayUSD != nil {
			extra.budget.usdPerDay = *rl.CostPerDayUSD
		}
	}
	return r, extra, nil
}

var hintNames = map[string]policy.Hint{
	"readOnlyHint":    policy.ReadOnly,
	"destructiveHint": policy.Destructive,
	"idempotentHint":  policy.Idempotent,
	"openWorldHint":   policy.OpenWorld,
}

// Close releases the workspace handle and the egress proxy.
func (k *Kernel) Close() error {
	if k.proxy != nil {
		k.proxy.Close()
	}
	if k.wasm != nil {
		k.wasm.Close()
	}
	return k.root.Close()
}

// credentialUsed audits each credential the egress layer attached: which,
// where, for whom; never the value.
func (k *Kernel) credentialUsed(u egress.CredentialUse) {
	k.audit.AppendAsync(audit.Record{
		Tenant: k.tenant, Agent: k.agent, Event: "credential", Decision: "use",
		Detail: map[string]string{"credential": u.Name, "host": u.Host},
	})
}

// Agent returns the name of the agent this kernel serves.
func (k *Kernel) Agent() string { return k.agent }

// Call runs one tool call through every gate. A refusal is an *Error; a
// tool that ran and failed is a result with IsError set.
func (k *Kernel) Call(ctx context.Context, p ckp.ToolCallParams) (*ckp.ToolCallResult, error) {
	if err := validRequestID(p.Context.RequestID); err != nil {
		return nil, err
	}
	fp := fingerprint(p.Name, p.Arguments)
	id := p.Context.RequestID
	if id == "" {
		return k.call(ctx, p, fp)
	}
	for {
		e, owner, ok := k.idem.begin(k.now(), id, fp)
		if !ok {
			return nil, refuse(ckp.CodeInvalidParams, LayerKernel, p.Name, "", "request_id %q was already used for a different call", id)
		}
		if !owner {
			res, err := e.wait(ctx)
			if errors.Is(err, errForgotten) {
				continue // the first attempt was cancelled undecided; run it ourselves
			}
			return res, err
		}
		res, err := k.call(ctx, p, fp)
		if errors.Is(err, errCancelled) {
			k.idem.forget(id, e, errForgotten)
			return nil, err
		}
		k.idem.finish(k.now(), id, e, res, err)
		return res, err
	}
}

var (
	errForgotten = errors.New("kernel: first attempt was cancelled")
	errCancelled = &Error{Code: ckp.CodeInternal, Layer: LayerKernel, Msg: "call cancelled before it completed"}
)

func validRequestID(id string) error {
	if len(id) > 128 {
		return refuse(ckp.CodeInvalidParams, LayerKernel, "", "", "context.request_id is longer than 128 bytes")
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return refuse(ckp.CodeInvalidParams, LayerKernel, "", "", "context.request_id must be printable ASCII without spaces")
		}
	}
	return nil
}

// fingerprint identifies a call for idempotency and approval resumption.
// Arguments are compacted so whitespace differences do not matter.
func fingerprint(name string, args json.RawMessage) [32]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	var buf bytes.Buffer
	if json.Compact(&buf, args) == nil {
		h.Write(buf.Bytes())
	} else {
		h.Write(args)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// call is the gate sequence. Its order is the CKP order: quota, policy,
// sandbox, tool and arguments, approval, execution.
func (k *Kernel) call(ctx context.Context, p ckp.ToolCallParams, fp [32]byte) (*ckp.ToolCallResult, error) {
	if err := k.audit.Err(); err != nil {
		return nil, refuse(ckp.CodeInternal, LayerKernel, p.Name, "", "audit log unavailable; refusing to run tools")
	}
	t := k.tools[p.Name]
	rec := audit.Record{Tenant: k.tenant, Agent: k.agent, Tool: p.Name, RequestID: p.Context.RequestID}

	in := policy.Input{Tool: p.Name}
	var args map[string]any
	if t != nil {
		in.Category, in.Hints = t.category, t.hints
		args = decodeArgs(p.Arguments)
		if t.builtin != nil && t.builtin.PathArg != "" {
			if s, ok := args[t.builtin.PathArg].(string); ok && s != "" && !strings.ContainsRune(s, 0) {
				if resolved, err := policy.ResolvePath(k.rootDir, s); err == nil {
					in.Path = resolved
				}
			}
		}
	}
	d := k.policy.Decide(&in)
	ruleID := ""
	if d.Rule != nil {
		ruleID = d.Rule.ID
	}

	// Gate 1: quota.
	var cost int64
	var usd float64
	if t != nil {
		cost, usd = t.costTokens, t.costUSD
	}
	res, over := k.quota.reserve(k.now(), cost, usd, ruleID, k.rules[ruleID].budget)
	if over != nil {
		err := refuse(ckp.CodeQuotaExceeded, LayerQuota, p.Name, ruleID, "provider quota exceeded: %s limit %v", over.what, over.limit)
		err.Extra = map[string]any{"limit": over.what}
		return nil, k.deny(ctx, rec, err)
	}
	ok := false
	defer func() {
		if !ok {
			res.release()
		}
	}()

	// Gate 2: policy, then the identity's autonomy.
	switch d.Action {
	case policy.Allow, policy.AuditOnly, policy.RequireApproval:
	case policy.Deny:
		msg := "denied by policy"
		if d.Rule == nil {
			msg = "no policy rule allows this tool (default deny)"
		} else if d.Rule.Reason != "" {
			msg = "denied by policy: " + d.Rule.Reason
		}
		err := refuse(ckp.CodePolicyDenied, LayerPolicy, p.Name, ruleID, "%s", msg)
		err.Extra = map[string]any{"action": "deny"}
		return nil, k.deny(ctx, rec, err)
	default:
		return nil, k.deny(ctx, rec, refuse(ckp.CodePolicyDenied, LayerPolicy, p.Name, ruleID, "policy gave no verdict"))
	}
	side := t == nil || t.sideEffect
	switch k.autonomy {
	case manifest.Autonomous, manifest.Supervised:
	case manifest.Observer:
		if side {
			return nil, k.deny(ctx, rec, refuse(ckp.CodePolicyDenied, LayerIdentity, p.Name, "", "identity %q is an observer: tools with side effects are not allowed", k.agent))
		}
	default:
		return nil, k.deny(ctx, rec, refuse(ckp.CodePolicyDenied, LayerIdentity, p.Name, "", "identity has no valid autonomy level"))
	}
	if k.callLimit != nil && !k.callLimit.AllowN(k.now(), 1) {
		return nil, k.deny(ctx, rec, refuse(ckp.CodePolicyDenied, LayerPolicy, p.Name, "rate_limits.tool_calls_per_minute", "tool call rate limit reached"))
	}

	// The organisation's grant narrows further: zero access by default.
	abilityWhy := ""
	if k.abilities != nil && t != nil {
		switch m := k.abilities.Mode(t.service, t.action); m {
		case ability.Automatic:
		case ability.Approval:
			abilityWhy = fmt.Sprintf("ability %s/%s requires approval", t.service, t.action)
		default:
			err := refuse(ckp.CodePolicyDenied, LayerAbility, p.Name, "", "agent %q has no ability granting %s/%s", k.agent, t.service, t.action)
			err.Extra = map[string]any{"service": t.service, "action": t.action}
			return nil, k.deny(ctx, rec, err)
		}
	}

	// Gate 3: sandbox, including secrets leaving in the arguments.
	if t != nil {
		if err := k.box.admit(t, args, p.Arguments, k.rootDir); err != nil {
			return nil, k.deny(ctx, rec, err)
		}
		if err := k.leaks.checkInput(t.name, p.Arguments); err != nil {
			return nil, k.deny(ctx, rec, err)
		}
	}

	// Gate 4: the tool exists and its arguments fit its schema.
	if t == nil {
		return nil, k.deny(ctx, rec, refuse(ckp.CodeInvalidParams, LayerTool, p.Name, "", "unknown tool %q", p.Name))
	}
	if err := validateArgs(t, p.Arguments); err != nil {
		return nil, k.deny(ctx, rec, err)
	}

	// Gate 5: approval.
	why := ""
	switch {
	case d.Action == policy.RequireApproval:
		why = "policy rule " + ruleID + " requires approval"
	case abilityWhy != "":
		why = abilityWhy
	case t.narrow.approval != "":
		why = "skill " + t.narrow.approval + " requires approval for its tools"
	case side && k.inj != nil && k.inj.escalate && k.taint.reason(k.inj.escalateAt) != "":
		why = k.taint.reason(k.inj.escalateAt)
	case k.autonomy == manifest.Supervised && side && !(d.Action == policy.Allow && d.Explicit()):
		why = "supervised identity: side-effecting tools need approval unless a rule allows them by name or category"
	}
	rec.Rule, rec.CostTokens = ruleID, cost
	if why != "" {
		if err := k.approve(ctx, p, fp, t, d, why, rec); err != nil {
			return nil, err
		}
	} else {
		rec.Event, rec.Decision = "decision", "allow"
		if d.Action == policy.AuditOnly {
			rec.Decision = "audit-only"
		}
		if _, err := k.audit.Append(ctx, rec); err != nil {
			return nil, refuse(ckp.CodeInternal, LayerKernel, p.Name, ruleID, "audit log unavailable; refusing to run tools")
		}
	}
	ok = true

	// Execution.
	return k.execute(ctx, p, t, rec)
}

// deny records a refusal durably and returns it.
func (k *Kernel) deny(ctx context.Context, rec audit.Record, e *Error) error {
	rec.Event, rec.Decision, rec.Rule = "decision", "deny", e.Rule
	rec.Outcome = fmt.Sprintf("%d", e.Code)
	rec.Detail = map[string]string{"layer": string(e.Layer), "reason": e.Msg}
	if _, err := k.audit.Append(context.WithoutCancel(ctx), rec); err != nil {
		return refuse(ckp.CodeInternal, LayerKernel, e.Tool, e.Rule, "audit log unavailable; refusing to run tools")
	}
	return e
}

func decodeArgs(raw json.RawMessage) map[string]any {
	var m map[string]any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return m
}

func validateArgs(t *tool, raw json.RawMessage) *Error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return refuse(ckp.CodeInvalidParams, LayerTool, t.name, "", "arguments are not valid JSON")
	}
	if err := t.schema.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		msg := "arguments do not match the tool's input_schema"
		if errors.As(err, &ve) {
			msg += ": " + oneLine(ve.Error())
		}
		return refuse(ckp.CodeInvalidParams, LayerTool, t.name, "", "%s", msg)
	}
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
