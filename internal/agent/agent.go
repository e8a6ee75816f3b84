// Package agent serves one agent over a CKP connection: it settles which
// manifest the connection runs, builds the agent's kernel and hands every
// tool call and approval decision to it.
//
// # Threat model
//
// The peer on the connection is the operator (it sends claw.initialize) and
// also relays the agent's tool calls and a human's approvals. A manifest the
// runtime was started with is the operator's and wins: a peer cannot swap in
// its own policy. A manifest sent inline is parsed with no filesystem
// access, so it cannot make the runtime read local files through refs.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clawkeep/clawkeep/internal/ability"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/kernel"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

// Config is what a Handler serves with. The stores belong to the caller.
type Config struct {
	Tenant    string          // never empty
	DataDir   string          // never empty; workspaces live under DataDir/workspace
	Manifest  *manifest.Claw  // the manifest the operator pinned at start (--manifest), or nil
	Default   *manifest.Claw  // without a pinned manifest: what a claw:// URI naming it selects, or nil
	Audit     *audit.Log      // never nil
	Approvals *approval.Store // never nil
	// Decider is who approvals decided on this connection are attributed
	// to, e.g. "operator (stdio)". Empty means the peer may not decide: a
	// remote agent's connection must never approve its own calls.
	Decider   string
	Exempt    []netip.Prefix    // egress exceptions for the operator's own services, or nil
	Secrets   kernel.SecretFunc // the tenant's vault, for credentials the manifest binds; or nil
	Abilities *ability.Set      // what the organisation granted the agent; nil when abilities are not in use
	Now       func() time.Time
}

// noPeerDecisions refuses claw.tool.approve and claw.tool.deny from a
// peer that is the agent itself.
func noPeerDecisions() error {
	return &ckp.Error{Code: ckp.CodePolicyDenied, Message: "approvals are decided by people through the API, not on the agent's connection", Data: map[string]any{"layer": "approval"}}
}

// Handler implements ckp.Handler for one connection.
type Handler struct {
	cfg Config

	mu     sync.Mutex
	kernel *kernel.Kernel // guarded by mu; nil until Initialize succeeds
}

var _ ckp.Handler = (*Handler)(nil)

// New returns a handler; nothing is loaded until claw.initialize.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// Initialize settles the manifest and builds the kernel.
func (h *Handler) Initialize(ctx context.Context, p ckp.InitializeParams) (ckp.Agent, error) {
	claw, err := h.settle(p.Manifest)
	if err != nil {
		return ckp.Agent{}, h.refused(ctx, err)
	}
	workspace := filepath.Join(h.cfg.DataDir, "workspace", claw.Identity.Name)
	k, err := kernel.New(kernel.Config{
		Tenant: h.cfg.Tenant, Claw: claw, Workspace: workspace,
		Audit: h.cfg.Audit, Approvals: h.cfg.Approvals, Exempt: h.cfg.Exempt, Now: h.cfg.Now,
		Secrets: h.cfg.Secrets, Abilities: h.cfg.Abilities,
	})
	if err != nil {
		return ckp.Agent{}, h.refused(ctx, &ckp.Error{Code: ckp.CodeManifestInvalid, Message: "manifest cannot be enforced: " + strings.TrimPrefix(err.Error(), "kernel: ")})
	}
	h.mu.Lock()
	if h.kernel != nil {
		h.mu.Unlock()
		k.Close()
		return ckp.Agent{}, &ckp.Error{Code: ckp.CodeInvalidRequest, Message: "already initialized"}
	}
	h.kernel = k
	h.mu.Unlock()
	a := ckp.Agent{Info: ckp.AgentInfo{Name: claw.Name, Version: claw.Version}, Heartbeat: heartbeat(claw)}
	if a.Info.Version == "" {
		a.Info.Version = "0.0.0"
	}
	if len(claw.Tools) > 0 {
		a.Capabilities = []string{"tools"}
	}
	return a, nil
}

// refused records a manifest the runtime would not run (a module whose
// sha256 is not the pinned one, a level the host cannot give) and returns
// err. The reason is cut short: it names fields and hashes, not contents.
func (h *Handler) refused(ctx context.Context, err error) error {
	reason := err.Error()
	if len(reason) > 1024 {
		reason = reason[:1024] + "..."
	}
	// If the chain cannot record it, the refusal still stands.
	h.cfg.Audit.Append(context.WithoutCancel(ctx), audit.Record{
		Tenant: h.cfg.Tenant, Event: "manifest", Decision: "refused", Detail: map[string]string{"reason": reason},
	})
	return err
}

// settle decides which manifest this connection runs. A pinned manifest
// always wins; without one the operator's inline manifest is used, or the
// default one when the peer names it by URI.
func (h *Handler) settle(raw json.RawMessage) (*manifest.Claw, error) {
	pinned := h.cfg.Manifest
	var uri string
	if json.Unmarshal(raw, &uri) == nil {
		named := pinned
		if named == nil {
			named = h.cfg.Default
		}
		if named == nil {
			return nil, &ckp.Error{Code: ckp.CodeInvalidParams, Message: "this runtime has no manifest to name: send it inline in claw.initialize"}
		}
		if name, ok := clawURIName(uri); !ok || name != named.Name {
			return nil, &ckp.Error{Code: ckp.CodeInvalidParams, Message: fmt.Sprintf("manifest %q does not name the manifest this runtime runs (claw://local/claw/%s)", uri, named.Name)}
		}
		return named, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, &ckp.Error{Code: ckp.CodeInvalidParams, Message: "manifest must be an inline Claw object or a claw:// URI"}
	}
	claw, err := manifest.Parse(raw, manifest.Options{File: "initialize.manifest"})
	if err != nil {
		return nil, manifestError(err)
	}
	if pinned == nil {
		return claw, nil
	}
	if claw.Name != pinned.Name {
		return nil, &ckp.Error{Code: ckp.CodeInvalidParams, Message: fmt.Sprintf("inline manifest %q is not the manifest this runtime was started with (%q)", claw.Name, pinned.Name)}
	}
	return pinned, nil
}

// manifestError reports every loader error to the peer; they name fields
// and positions in the peer's own document, never local files.
func manifestError(err error) error {
	var list *manifest.ErrorList
	msgs := []string{err.Error()}
	if errors.As(err, &list) {
		msgs = msgs[:0]
		for _, e := range *list {
			msgs = append(msgs, e.Error())
		}
	}
	return &ckp.Error{Code: ckp.CodeManifestInvalid, Message: "manifest invalid: " + msgs[0], Data: map[string]any{"errors": msgs}}
}

// clawURIName returns NAME from claw://local/claw/NAME[@v] or claw://claw/NAME.
func clawURIName(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, "claw://")
	if !ok {
		return "", false
	}
	rest = strings.TrimPrefix(rest, "local/")
	name, ok := strings.CutPrefix(rest, "claw/")
	if !ok {
		return "", false
	}
	name, _, _ = strings.Cut(name, "@")
	return name, name != "" && !strings.Contains(name, "/")
}

// heartbeat reads metadata.annotations.heartbeat_interval_ms (a number or
// a numeric string); the protocol default is 30 s.
func heartbeat(c *manifest.Claw) time.Duration {
	var ms float64
	switch v := c.Annotations["heartbeat_interval_ms"].(type) {
	case int:
		ms = float64(v)
	case int64:
		ms = float64(v)
	case float64:
		ms = v
	case string:
		ms, _ = strconv.ParseFloat(v, 64)
	}
	if ms < 100 || ms > 3_600_000 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func (h *Handler) k() (*kernel.Kernel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kernel == nil {
		return nil, &ckp.Error{Code: ckp.CodeInvalidRequest, Message: "not initialized"}
	}
	return h.kernel, nil
}

// ToolCall hands the call to the kernel: the one door.
func (h *Handler) ToolCall(ctx context.Context, p ckp.ToolCallParams) (*ckp.ToolCallResult, error) {
	k, err := h.k()
	if err != nil {
		return nil, err
	}
	return k.Call(ctx, p)
}

// ToolApprove approves a pending call.
func (h *Handler) ToolApprove(ctx context.Context, p ckp.DecisionParams) error {
	k, err := h.k()
	if err != nil {
		return err
	}
	if h.cfg.Decider == "" {
		return noPeerDecisions()
	}
	return k.Decide(ctx, p.RequestID, true, h.cfg.Decider, p.Reason)
}

// ToolDeny denies a pending call.
func (h *Handler) ToolDeny(ctx context.Context, p ckp.DecisionParams) error {
	k, err := h.k()
	if err != nil {
		return err
	}
	if h.cfg.Decider == "" {
		return noPeerDecisions()
	}
	return k.Decide(ctx, p.RequestID, false, h.cfg.Decider, p.Reason)
}

// Close releases the kernel; the stores stay open for the caller to close.
func (h *Handler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kernel == nil {
		return nil
	}
	err := h.kernel.Close()
	h.kernel = nil
	return err
}

// Recover settles approvals left pending by an earlier process: those past
// their deadline are expired and audited now; the rest stay decidable, and
// a retried call with the same request_id resumes them.
func Recover(ctx context.Context, tenant string, log *audit.Log, approvals *approval.Store) error {
	expired, err := approvals.Recover()
	if err != nil {
		return fmt.Errorf("recovering approvals: %w", err)
	}
	for _, r := range expired {
		rec := audit.Record{
			Tenant: tenant, Agent: r.Agent, Tool: r.Tool, RequestID: r.ID,
			Event: "approval", Decision: "expired", Outcome: "expired",
			Detail: map[string]string{"by": "timeout", "note": "expired while the runtime was down"},
		}
		if r.OnTimeout == approval.Approved {
			// The call itself is gone with the old process; nothing runs.
			rec.Outcome = "expired-default-allow"
			rec.Detail["note"] = "expired while the runtime was down; the call must be retried to run"
		}
		if _, err := log.Append(ctx, rec); err != nil {
			return fmt.Errorf("recovering approvals: %w", err)
		}
	}
	return nil
}
