package kernel

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/policy"
)

// LabelRisk on a tool sets the risk its approval requests carry (low,
// medium, high or critical) instead of the one its hints imply: a payment
// tool is critical whatever its annotations say.
const LabelRisk = "clawkeep.dev/risk"

// approve blocks the call until a human decides or the request expires. The
// request is persisted first, so a restart neither loses nor silently
// grants it; a retry with the same request_id after a restart resumes it.
func (k *Kernel) approve(ctx context.Context, p ckp.ToolCallParams, fp [32]byte, t *tool, d policy.Decision, why string, rec audit.Record) error {
	id := p.Context.RequestID
	if id == "" {
		return k.deny(ctx, rec, refuse(ckp.CodeInvalidParams, LayerApproval, t.name, rec.Rule, "this call needs approval, which needs context.request_id"))
	}
	timeout, onTimeout := policy.DefaultApprovalTimeout, approval.Denied
	if d.Action == policy.RequireApproval && d.Rule != nil {
		if d.Rule.ApprovalTimeout > 0 {
			timeout = d.Rule.ApprovalTimeout
		}
		if d.Rule.DefaultIfTimeout == policy.Allow {
			onTimeout = approval.Approved
		}
	}
	now := k.now()
	req, err := k.approvals.Submit(ctx, approval.Request{
		ID: id, Tenant: k.tenant, Agent: k.agent, Tool: t.name,
		Summary:     summarize(t.name, p.Arguments),
		Risk:        t.risk,
		Why:         why,
		Fingerprint: hex.EncodeToString(fp[:]),
		Created:     now,
		Deadline:    now.Add(timeout),
		OnTimeout:   onTimeout,
	})
	if errors.Is(err, approval.ErrConflict) {
		return k.deny(ctx, rec, refuse(ckp.CodeInvalidParams, LayerApproval, t.name, rec.Rule, "request_id %q already has an approval request for a different call", id))
	}
	if err != nil {
		return k.deny(ctx, rec, refuse(ckp.CodeInternal, LayerApproval, t.name, rec.Rule, "approval store unavailable"))
	}
	pending := rec
	pending.Event, pending.Decision = "decision", "approval-required"
	pending.CostTokens = 0
	pending.Detail = map[string]string{"why": why, "risk": req.Risk.String(), "deadline": req.Deadline.UTC().Format(time.RFC3339)}
	if _, err := k.audit.Append(ctx, pending); err != nil {
		return refuse(ckp.CodeInternal, LayerKernel, t.name, rec.Rule, "audit log unavailable; refusing to run tools")
	}
	k.announceSubmitted()

	dec, err := k.approvals.Wait(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			// The request stays pending in the store: it is decided or
			// expired later, and a retry resumes it.
			return errCancelled
		}
		return refuse(ckp.CodeInternal, LayerApproval, t.name, rec.Rule, "approval store unavailable")
	}
	out := rec
	out.Event = "approval"
	out.Detail = map[string]string{"by": dec.By}
	if dec.Reason != "" {
		out.Detail["reason"] = dec.Reason
	}
	var refusal *Error
	switch dec.Outcome {
	case approval.Approved:
		out.Decision, out.Outcome = "allow", "approved"
		if dec.TimedOut {
			out.Outcome = "expired-allowed"
		}
	case approval.Denied, approval.Expired:
		out.Decision, out.CostTokens = "deny", 0
		if dec.TimedOut || dec.Outcome == approval.Expired {
			out.Outcome = "expired"
			refusal = refuse(ckp.CodeApprovalTimeout, LayerApproval, t.name, rec.Rule, "approval timed out after %s", timeout)
		} else {
			out.Outcome = "denied"
			refusal = refuse(ckp.CodeApprovalDenied, LayerApproval, t.name, rec.Rule, "denied by %s", dec.By)
			if dec.Reason != "" {
				refusal.Extra = map[string]any{"reason": dec.Reason}
			}
		}
	default:
		out.Decision, out.Outcome, out.CostTokens = "deny", "invalid", 0
		refusal = refuse(ckp.CodeApprovalDenied, LayerApproval, t.name, rec.Rule, "approval ended without a valid outcome")
	}
	if refusal == nil {
		if err := k.approvals.Consume(id); errors.Is(err, approval.ErrConsumed) {
			out.Decision, out.Outcome, out.CostTokens = "deny", "approval-already-used", 0
			refusal = refuse(ckp.CodeInvalidParams, LayerApproval, t.name, rec.Rule, "request_id %q was approved once and that approval was already used; send a new request_id", id)
		} else if err != nil {
			return refuse(ckp.CodeInternal, LayerApproval, t.name, rec.Rule, "approval store unavailable")
		}
	}
	if _, err := k.audit.Append(context.WithoutCancel(ctx), out); err != nil {
		return refuse(ckp.CodeInternal, LayerKernel, t.name, rec.Rule, "audit log unavailable; refusing to run tools")
	}
	if refusal != nil {
		return refusal
	}
	return nil
}

func (k *Kernel) announceSubmitted() {
	k.mu.Lock()
	close(k.submitted)
	k.submitted = make(chan struct{})
	k.mu.Unlock()
}

// Decide approves or denies the pending call with request_id id. by names
// who decided (it is audited). If the call has not reached the approval
// gate yet, Decide waits a moment for it.
func (k *Kernel) Decide(ctx context.Context, id string, approve bool, by, reason string) error {
	if id == "" {
		return refuse(ckp.CodeInvalidParams, LayerApproval, "", "", "request_id is required")
	}
	reason = oneLine(reason)
	deadline := time.NewTimer(approveGrace)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		next := k.submitted
		k.mu.Unlock()
		_, err := k.approvals.Decide(id, approve, by, reason)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, approval.ErrDecided):
			return refuse(ckp.CodeInvalidParams, LayerApproval, "", "", "request %q was already decided or expired", id)
		case !errors.Is(err, approval.ErrNotFound):
			return refuse(ckp.CodeInternal, LayerApproval, "", "", "approval store unavailable")
		}
		select {
		case <-next:
		case <-deadline.C:
			return refuse(ckp.CodeInvalidParams, LayerApproval, "", "", "no pending approval for request_id %q", id)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// summarize is the one line a human sees: the tool and its top-level
// arguments, values cut short. Keys are sorted so the line is stable.
func summarize(name string, raw []byte) string {
	args := decodeArgs(raw)
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, key := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := oneLine(fmt.Sprint(args[key]))
		if r := []rune(v); len(r) > 40 {
			v = string(r[:40]) + "…"
		}
		fmt.Fprintf(&b, "%s=%q", key, v)
	}
	b.WriteByte(')')
	return b.String()
}
