package ckp

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClientInfo names the operator's client in claw.initialize.
type ClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// InitializeParams are the params of claw.initialize.
type InitializeParams struct {
	ProtocolVersion string                     `json:"protocolVersion"`
	ClientInfo      ClientInfo                 `json:"clientInfo"`
	Manifest        json.RawMessage            `json:"manifest"` // a JSON object (inline Claw) or a string (claw:// URI)
	Capabilities    map[string]json.RawMessage `json:"capabilities"`
}

// AgentInfo names the agent in the claw.initialize result.
type AgentInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Agent is what Handler.Initialize returns.
type Agent struct {
	Info         AgentInfo
	Heartbeat    time.Duration // 0 = the protocol default of 30 s
	Capabilities []string      // groups supported: "tools", "swarm", "memory"
}

// ToolCallContext is the context member of claw.tool.call.
type ToolCallContext struct {
	RequestID string          `json:"request_id,omitempty"`
	Identity  string          `json:"identity,omitempty"`
	Sandbox   json.RawMessage `json:"sandbox,omitempty"`
	Policy    json.RawMessage `json:"policy,omitempty"`
}

// ToolCallParams are the params of claw.tool.call.
type ToolCallParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Context   ToolCallContext `json:"context"`
}

// Content is one MCP-style content block of a tool result.
type Content struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Data     string `json:"data,omitempty"`
	MimeType string `json:"mimeType,omitempty"`
	URI      string `json:"uri,omitempty"`
}

// ToolCallResult is the result of claw.tool.call. A tool that ran and
// failed is a result with IsError set, not a JSON-RPC error.
type ToolCallResult struct {
	Content []Content `json:"content"`
	IsError bool      `json:"isError,omitempty"`
}

// DecisionParams are the params of claw.tool.approve and claw.tool.deny.
type DecisionParams struct {
	RequestID string `json:"request_id"`
	Reason    string `json:"reason,omitempty"`
}

// shutdownParams are the params of claw.shutdown.
type shutdownParams struct {
	reason  string
	timeout time.Duration
}

const (
	defaultShutdownTimeout = 10 * time.Second
	maxShutdownTimeoutMS   = 300_000
)

// Params are decoded by hand rather than with DisallowUnknownFields so
// that every refusal names its field by path, duplicated members are
// refused (two readers of one document must not see different values),
// null is never silently read as a zero value, and MCP's "_meta" is
// allowed in every object this package defines but not inside the opaque
// values (manifest, arguments, ...) it passes on untouched.

// members decodes raw into its members; raw must be a JSON object, from a
// line that passed decodeFrame's checks. known lists the members allowed;
// nil allows any.
func members(raw json.RawMessage, path string, known []string) (map[string]json.RawMessage, *Error) {
	m := make(map[string]json.RawMessage)
	if len(raw) == 0 {
		return m, nil
	}
	ms, ok := objectMembers(raw)
	if !ok {
		return nil, wrongType(path, "an object")
	}
	for _, mb := range ms {
		if _, dup := m[mb.key]; dup {
			return nil, errorf(CodeInvalidParams, "invalid params: duplicate field %s", quoteField(path, mb.key))
		}
		if mb.key != "_meta" && known != nil && !slices.Contains(known, mb.key) {
			return nil, errorf(CodeInvalidParams, "invalid params: unknown field %s", quoteField(path, mb.key))
		}
		m[mb.key] = mb.value
	}
	delete(m, "_meta")
	return m, nil
}

// quoteField names a field for an error message; peer-chosen names are
// quoted and cut short so a message stays small.
func quoteField(path, key string) string {
	if len(key) > 64 {
		key = key[:64] + "..."
	}
	return strconv.Quote(path + key)
}

func wrongType(field, want string) *Error {
	if field == "" {
		return errorf(CodeInvalidParams, "invalid params: params must be %s", want)
	}
	return errorf(CodeInvalidParams, "invalid params: %s must be %s", strings.TrimSuffix(field, "."), want)
}

func missing(names ...string) *Error {
	e := errorf(CodeInvalidParams, "invalid params: missing %s", strings.Join(names, ", "))
	e.Data = map[string]any{"missing": names}
	return e
}

// requireAll reports the members of m that are absent.
func requireAll(m map[string]json.RawMessage, path string, names ...string) *Error {
	var absent []string
	for _, n := range names {
		if _, ok := m[n]; !ok {
			absent = append(absent, path+n)
		}
	}
	if absent != nil {
		return missing(absent...)
	}
	return nil
}

// str decodes an optional string member; absent gives "".
func str(m map[string]json.RawMessage, path, key string) (string, *Error) {
	raw, ok := m[key]
	if !ok {
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", wrongType(path+key, "a string")
	}
	return s, nil
}

func decodeInitialize(raw json.RawMessage) (InitializeParams, *Error) {
	var p InitializeParams
	m, e := members(raw, "", []string{"protocolVersion", "clientInfo", "manifest", "capabilities"})
	if e != nil {
		return p, e
	}
	if e := requireAll(m, "", "protocolVersion", "clientInfo", "manifest", "capabilities"); e != nil {
		return p, e
	}
	if p.ProtocolVersion, e = str(m, "", "protocolVersion"); e != nil {
		return p, e
	}
	ci, e := members(m["clientInfo"], "clientInfo.", []string{"name", "version"})
	if e != nil {
		return p, e
	}
	if e := requireAll(ci, "clientInfo.", "name", "version"); e != nil {
		return p, e
	}
	if p.ClientInfo.Name, e = str(ci, "clientInfo.", "name"); e != nil {
		return p, e
	}
	if p.ClientInfo.Version, e = str(ci, "clientInfo.", "version"); e != nil {
		return p, e
	}
	if c := m["manifest"][0]; c != '{' && c != '"' {
		return p, wrongType("manifest", "an object (inline Claw) or a string (claw:// URI)")
	}
	p.Manifest = m["manifest"]
	// Unknown capability groups are ignored, as the spec asks.
	if p.Capabilities, e = members(m["capabilities"], "capabilities.", nil); e != nil {
		return p, e
	}
	return p, nil
}

func decodeToolCall(raw json.RawMessage) (ToolCallParams, *Error) {
	var p ToolCallParams
	m, e := members(raw, "", []string{"name", "arguments", "context"})
	if e != nil {
		return p, e
	}
	if e := requireAll(m, "", "name"); e != nil {
		return p, e
	}
	if p.Name, e = str(m, "", "name"); e != nil {
		return p, e
	}
	if p.Name == "" {
		return p, errorf(CodeInvalidParams, "invalid params: name must not be empty")
	}
	if args, ok := m["arguments"]; ok {
		if args[0] != '{' {
			return p, wrongType("arguments", "an object")
		}
		p.Arguments = args
	}
	c, e := members(m["context"], "context.", []string{"request_id", "identity", "sandbox", "policy"})
	if e != nil {
		return p, e
	}
	if p.Context.RequestID, e = str(c, "context.", "request_id"); e != nil {
		return p, e
	}
	if p.Context.Identity, e = str(c, "context.", "identity"); e != nil {
		return p, e
	}
	p.Context.Sandbox, p.Context.Policy = c["sandbox"], c["policy"]
	return p, nil
}

func decodeDecision(raw json.RawMessage) (DecisionParams, *Error) {
	var p DecisionParams
	m, e := members(raw, "", []string{"request_id", "reason"})
	if e != nil {
		return p, e
	}
	if e := requireAll(m, "", "request_id"); e != nil {
		return p, e
	}
	if p.RequestID, e = str(m, "", "request_id"); e != nil {
		return p, e
	}
	if p.Reason, e = str(m, "", "reason"); e != nil {
		return p, e
	}
	return p, nil
}

func decodeShutdown(raw json.RawMessage) (shutdownParams, *Error) {
	p := shutdownParams{timeout: defaultShutdownTimeout}
	m, e := members(raw, "", []string{"reason", "timeout_ms"})
	if e != nil {
		return p, e
	}
	if p.reason, e = str(m, "", "reason"); e != nil {
		return p, e
	}
	if raw, ok := m["timeout_ms"]; ok {
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || ms < 0 || ms > maxShutdownTimeoutMS {
			e := wrongType("timeout_ms", "an integer from 0 to 300000")
			e.Data = map[string]any{"max": maxShutdownTimeoutMS}
			return p, e
		}
		p.timeout = time.Duration(ms) * time.Millisecond
	}
	return p, nil
}

// decodeEmpty checks the params of methods that take none but "_meta".
func decodeEmpty(raw json.RawMessage) *Error {
	_, e := members(raw, "", []string{})
	return e
}
