package ckp

import (
	"errors"
	"fmt"
)

// Error codes on the wire. The JSON-RPC 2.0 codes come first; the -320xx
// range is reserved for CKP (spec §9.4 and the runtime profile's catalogue).
const (
	CodeParseError          = -32700
	CodeInvalidRequest      = -32600
	CodeMethodNotFound      = -32601
	CodeInvalidParams       = -32602
	CodeInternal            = -32603
	CodeVersionNotSupported = -32001
	CodeSandboxDenied       = -32010
	CodePolicyDenied        = -32011
	CodeApprovalTimeout     = -32012
	CodeApprovalDenied      = -32013
	CodeToolTimeout         = -32014
	CodeQuotaExceeded       = -32021
	CodeManifestInvalid     = -32060
)

// Error is a JSON-RPC error object as sent to the peer. Everything in it is
// shown to the peer: Message and Data must never hold a secret.
type Error struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("ckp: %s (code %d)", e.Message, e.Code) }

// Coded is implemented by errors (from the kernel, manifest loader, ...)
// that carry a CKP code. Their Error text and CKPData are sent to the peer
// as they are, so an implementation promises both are safe to show.
type Coded interface {
	error
	CKPCode() int
	CKPData() map[string]any
}

// ErrorFrom is the one place a Go error becomes a wire error. An *Error in
// err's chain passes through and a Coded one maps to its code and data.
// Anything else becomes -32603 "internal error" with no detail from err:
// internal errors may carry paths, queries or secrets. A zero code, which
// no peer could act on, is treated as internal too (fail closed).
func ErrorFrom(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Code != 0 {
		if e.Message == "" {
			return &Error{Code: e.Code, Message: codeName(e.Code), Data: e.Data}
		}
		return e
	}
	var c Coded
	if errors.As(err, &c) && c.CKPCode() != 0 {
		return &Error{Code: c.CKPCode(), Message: c.Error(), Data: c.CKPData()}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// codeName is the standard message for a code, for errors built without one.
func codeName(code int) string {
	switch code {
	case CodeParseError:
		return "parse error"
	case CodeInvalidRequest:
		return "invalid request"
	case CodeMethodNotFound:
		return "method not found"
	case CodeInvalidParams:
		return "invalid params"
	case CodeVersionNotSupported:
		return "protocol version not supported"
	case CodeSandboxDenied:
		return "sandbox denied"
	case CodePolicyDenied:
		return "policy denied"
	case CodeApprovalTimeout:
		return "approval timeout"
	case CodeApprovalDenied:
		return "approval denied"
	case CodeToolTimeout:
		return "tool execution timeout"
	case CodeQuotaExceeded:
		return "provider quota exceeded"
	case CodeManifestInvalid:
		return "manifest invalid"
	case CodeInternal:
		return "internal error"
	}
	return "error"
}

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
