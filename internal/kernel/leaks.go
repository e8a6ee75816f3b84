package kernel

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/scan"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// leakScan applies policy secret_scanning: arguments leaving through a tool
// (input) and tool output returning to the agent (output) are scanned for
// secrets. Output is redacted, blocked or only noted; input can only be
// blocked or noted, since silently altering a request would change what
// the tool does.
//
// The detector knows provider formats and generic secrets; it does not yet
// know the tenant's vault values (the kernel has no vault handle yet).
type leakScan struct {
	det           *scan.Detector // never nil
	input, output bool
	action        string // redact | block | warn
}

// knownValues reads the credentials' values once, so that secret_scanning
// also finds the tenant's own secrets (raw and encoded) in arguments and
// outputs. The detector keeps only their encoded forms; the caller wipes
// what this returns. For basic credentials the password alone is known
// too, since it may leak without the user name.
func knownValues(creds []egress.Credential) ([][]byte, error) {
	var out [][]byte
	for _, c := range creds {
		sec, err := c.Secret()
		if err != nil {
			return nil, fmt.Errorf("kernel: credential %q: %w", c.Name, err)
		}
		out = append(out, append([]byte(nil), sec.UnsafeBytes()...))
		if sec.Type() == vault.Basic {
			if _, pw, err := sec.Basic(); err == nil {
				out = append(out, append([]byte(nil), pw.UnsafeBytes()...))
				pw.Wipe()
			}
		}
		sec.Wipe()
	}
	return out, nil
}

// compileLeakScan returns the first enabled secret_scanning setting, or nil.
func compileLeakScan(policies []manifest.Policy) *leakScan {
	for _, p := range policies {
		s := p.SecretScanning
		if s == nil || !s.Enabled {
			continue
		}
		l := &leakScan{det: scan.NewDetector(nil), action: s.Action}
		if l.action == "" {
			l.action = "redact"
		}
		switch s.Scope {
		case "input":
			l.input = true
		case "output":
			l.output = true
		default:
			l.input, l.output = true, true
		}
		return l
	}
	return nil
}

func kinds(fs []scan.Finding) string {
	var ks []string
	for _, f := range fs {
		if !slices.Contains(ks, f.Kind) {
			ks = append(ks, f.Kind)
		}
	}
	return strings.Join(ks, ",")
}

// checkInput refuses arguments that carry a secret, unless the action is
// warn. The error names the kinds found, never the text.
func (l *leakScan) checkInput(tool string, args json.RawMessage) *Error {
	if l == nil || !l.input || l.action == "warn" {
		return nil
	}
	if fs := l.det.Scan(args); len(fs) > 0 {
		e := refuse(ckp.CodeSandboxDenied, LayerSandbox, tool, "", "arguments carry what looks like a secret (%s); secret scanning blocks it", kinds(fs))
		e.Extra = map[string]any{"secret_kinds": kinds(fs)}
		return e
	}
	return nil
}

// checkOutput redacts or blocks secrets in a tool's output; detail records
// what was found (kinds only).
func (l *leakScan) checkOutput(tool, text string, detail map[string]string) (string, *Error) {
	if l == nil || !l.output {
		return text, nil
	}
	fs := l.det.Scan([]byte(text))
	if len(fs) == 0 {
		return text, nil
	}
	detail["secret_kinds"] = kinds(fs)
	switch l.action {
	case "warn":
		return text, nil
	case "block":
		return "", refuse(ckp.CodeSandboxDenied, LayerSandbox, tool, "", "tool output carried what looks like a secret (%s); secret scanning blocks it", kinds(fs))
	default:
		detail["redacted"] = "true"
		return string(l.det.Redact([]byte(text))), nil
	}
}
