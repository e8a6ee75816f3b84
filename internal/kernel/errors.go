package kernel

import (
	"fmt"

	"github.com/clawkeep/clawkeep/internal/ckp"
)

// Layer names the gate that refused a call; it travels in error data.
type Layer string

const (
	LayerQuota    Layer = "provider"
	LayerAbility  Layer = "ability"
	LayerPolicy   Layer = "policy"
	LayerIdentity Layer = "identity"
	LayerSandbox  Layer = "sandbox"
	LayerTool     Layer = "tool"
	LayerApproval Layer = "approval"
	LayerKernel   Layer = "kernel"
)

// Error is a refused or failed call. Its message and data are safe to show
// to the caller: they name gates, rules and tools, never argument values
// the kernel did not receive from the caller, and never secrets.
type Error struct {
	Code  int // a CKP error code
	Layer Layer
	Tool  string
	Rule  string // or ""
	Msg   string
	Extra map[string]any // or nil
}

// Error returns the message alone: it is what the caller sees on the wire.
func (e *Error) Error() string { return e.Msg }

// CKPCode implements ckp.Coded.
func (e *Error) CKPCode() int { return e.Code }

// CKPData implements ckp.Coded.
func (e *Error) CKPData() map[string]any {
	d := map[string]any{"layer": string(e.Layer)}
	if e.Tool != "" {
		d["tool"] = e.Tool
	}
	if e.Rule != "" {
		d["rule_id"] = e.Rule
	}
	for k, v := range e.Extra {
		d[k] = v
	}
	return d
}

var _ ckp.Coded = (*Error)(nil)

func refuse(code int, layer Layer, tool, rule, format string, args ...any) *Error {
	return &Error{Code: code, Layer: layer, Tool: tool, Rule: rule, Msg: fmt.Sprintf(format, args...)}
}
