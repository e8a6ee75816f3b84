// Package ability holds what an organisation grants one agent: per service,
// per action, whether the kernel runs the action automatically, only after
// a human approves it, or never.
//
// # Threat model
//
// The agent wants to do more than it was granted: call a tool of a service
// nobody granted, or an action of a granted service that is disabled or
// needs approval, by naming it differently. Agents start with zero access:
// a Set answers Disabled for every service and action it does not name, and
// the zero Mode is invalid rather than "allowed". Service and action names
// are exact, case-sensitive strings with a small alphabet, so there is no
// second spelling of a name to slip through.
package ability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
)

// Mode is what an ability grants one action. The zero Mode is invalid.
type Mode uint8

const (
	Disabled Mode = iota + 1
	Approval
	Automatic
)

// ParseMode accepts exactly "automatic", "approval" and "disabled".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "automatic":
		return Automatic, nil
	case "approval":
		return Approval, nil
	case "disabled":
		return Disabled, nil
	}
	return 0, fmt.Errorf("ability: mode %q: want automatic, approval or disabled", s)
}

func (m Mode) String() string {
	switch m {
	case Automatic:
		return "automatic"
	case Approval:
		return "approval"
	case Disabled:
		return "disabled"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// IsValid reports whether m is one of Disabled, Approval or Automatic.
func (m Mode) IsValid() bool { return m >= Disabled && m <= Automatic }

// MarshalText writes the mode's name.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.IsValid() {
		return nil, fmt.Errorf("ability: invalid mode %d", uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText parses a mode's name.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// Credential names the vault credential the egress layer may attach to the
// service's requests, and where. Its value never appears here.
type Credential struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	Header string   `json:"header,omitempty"`
	Format string   `json:"format,omitempty"`
	Query  string   `json:"query,omitempty"`
	Basic  bool     `json:"basic,omitempty"`
}

// Ability grants one agent one service.
type Ability struct {
	Service    string          `json:"service"`
	Actions    map[string]Mode `json:"actions"`
	Credential *Credential     `json:"credential,omitempty"`
	Guidelines string          `json:"guidelines,omitempty"`
}

var (
	serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	actionName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,126}$`)
	secretName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// ErrInvalid is wrapped by every refusal of a malformed ability.
var ErrInvalid = errors.New("ability: invalid")

// MaxActions and MaxGuidelines bound what one ability may hold.
const (
	MaxActions    = 256
	MaxGuidelines = 4096
)

// Validate checks a's names, modes and credential.
func (a *Ability) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if !serviceName.MatchString(a.Service) {
		return bad("service %q: want 1-63 of a-z 0-9 _ -, starting with a letter or digit", a.Service)
	}
	if len(a.Actions) == 0 {
		return bad("service %q: grants no actions", a.Service)
	}
	if len(a.Actions) > MaxActions {
		return bad("service %q: more than %d actions", a.Service, MaxActions)
	}
	for name, m := range a.Actions {
		if !actionName.MatchString(name) {
			return bad("action %q: want 1-127 of a-z 0-9 _ . -, starting with a letter or digit", name)
		}
		if !m.IsValid() {
			return bad("action %q: no valid mode", name)
		}
	}
	if len(a.Guidelines) > MaxGuidelines {
		return bad("guidelines: longer than %d bytes", MaxGuidelines)
	}
	if c := a.Credential; c != nil {
		if !secretName.MatchString(c.Name) {
			return bad("credential name %q", c.Name)
		}
		if len(c.Hosts) == 0 {
			return bad("credential %q: needs the hosts it may be sent to", c.Name)
		}
		places := 0
		if c.Header != "" {
			places++
		}
		if c.Query != "" {
			places++
		}
		if c.Basic {
			places++
		}
		if places != 1 || (c.Format != "" && c.Header == "") {
			return bad("credential %q: needs exactly one placement: header (with format), query or basic", c.Name)
		}
	}
	return nil
}

// Decode parses one ability from JSON, strictly: unknown fields and
// trailing data are refused, and the result is validated.
func Decode(b []byte) (Ability, error) {
	var a Ability
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Ability{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Ability{}, fmt.Errorf("%w: trailing data after the ability", ErrInvalid)
	}
	if err := a.Validate(); err != nil {
		return Ability{}, err
	}
	return a, nil
}

// Set is everything one agent was granted. The zero Set grants nothing.
// A Set is not changed after it is built, so a kernel may keep one.
type Set struct {
	by map[string]Ability
}

// NewSet builds a set from validated abilities; a service named twice is
// refused.
func NewSet(as []Ability) (Set, error) {
	s := Set{by: make(map[string]Ability, len(as))}
	for _, a := range as {
		if err := a.Validate(); err != nil {
			return Set{}, err
		}
		if _, dup := s.by[a.Service]; dup {
			return Set{}, fmt.Errorf("%w: service %q granted twice", ErrInvalid, a.Service)
		}
		s.by[a.Service] = a
	}
	return s, nil
}

// Mode is what s grants service's action: Disabled unless granted.
func (s Set) Mode(service, action string) Mode {
	if a, ok := s.by[service]; ok {
		if m, ok := a.Actions[action]; ok && m.IsValid() {
			return m
		}
	}
	return Disabled
}

// Credentials lists the credentials s names, by service.
func (s Set) Credentials() []Credential {
	var out []Credential
	for _, svc := range s.Services() {
		if c := s.by[svc].Credential; c != nil {
			out = append(out, *c)
		}
	}
	return out
}

// Services lists the granted services in order.
func (s Set) Services() []string {
	out := make([]string, 0, len(s.by))
	for k := range s.by {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tool labels that place a manifest tool in a service's action. Without
// them a tool is action <tool name> of service "local".
const (
	LabelService = "clawkeep.dev/service"
	LabelAction  = "clawkeep.dev/action"
	LocalService = "local"
)

// Of returns the service and action a tool with these labels belongs to.
func Of(tool string, labels map[string]string) (service, action string) {
	service, action = labels[LabelService], labels[LabelAction]
	if service == "" {
		service = LocalService
	}
	if action == "" {
		action = tool
	}
	return service, action
}
