package kernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/clawkeep/clawkeep/internal/ability"
	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// LabelCredentialPrefix, followed by a credential's vault name, binds that
// credential on a sandbox (the official schema has no field for it):
//
//	clawkeep.dev/credential.github: '{"hosts": ["api.github.com"], "path_prefix": "/repos",
//	    "header": "Authorization", "format": "Bearer %s"}'
//
// Exactly one placement: "header" (with "format", default "%s"),
// "query" (a parameter name) or "basic": true. Tools put {{cred:NAME}}
// where the value belongs; the egress proxy writes it only into requests
// whose checked destination matches.
const LabelCredentialPrefix = "clawkeep.dev/credential."

type bindingSpec struct {
	Hosts        []string `json:"hosts"`
	PathPrefix   string   `json:"path_prefix"`
	Header       string   `json:"header"`
	Format       string   `json:"format"`
	Query        string   `json:"query"`
	Basic        bool     `json:"basic"`
	AllowConnect bool     `json:"allow_connect"`
}

// SecretFunc returns a credential's current value from the tenant's vault.
type SecretFunc func(name string) (*vault.Secret, error)

// credentialBindings reads a sandbox's credential labels, in name order.
// secret resolves values at use time; nil only validates.
func credentialBindings(s *manifest.Sandbox, secret SecretFunc) ([]egress.Credential, error) {
	if s == nil {
		return nil, nil
	}
	var names []string
	for k := range s.Labels {
		if name, ok := strings.CutPrefix(k, LabelCredentialPrefix); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []egress.Credential
	for _, name := range names {
		var b bindingSpec
		dec := json.NewDecoder(bytes.NewReader([]byte(s.Labels[LabelCredentialPrefix+name])))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("kernel: sandbox label %s%s: %v", LabelCredentialPrefix, name, err)
		}
		c, err := b.credential(name, secret)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// abilityBindings binds the credentials an agent's abilities name.
func abilityBindings(set *ability.Set, secret SecretFunc) ([]egress.Credential, error) {
	if set == nil {
		return nil, nil
	}
	var out []egress.Credential
	for _, ac := range set.Credentials() {
		b := bindingSpec{Hosts: ac.Hosts, Header: ac.Header, Format: ac.Format, Query: ac.Query, Basic: ac.Basic}
		c, err := b.credential(ac.Name, secret)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// credential checks one binding and ties it to its secret; secret nil only
// validates.
func (b bindingSpec) credential(name string, secret SecretFunc) (egress.Credential, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kernel: credential %q: "+format, append([]any{name}, a...)...)
	}
	if len(b.Hosts) == 0 {
		return egress.Credential{}, bad("needs hosts it may be sent to")
	}
	var place egress.Placement
	var err error
	switch {
	case b.Header != "" && b.Query == "" && !b.Basic:
		if b.Format == "" {
			b.Format = "%s"
		}
		place, err = egress.HeaderPlacement(b.Header, b.Format)
	case b.Query != "" && b.Header == "" && !b.Basic && b.Format == "":
		place, err = egress.QueryPlacement(b.Query)
	case b.Basic && b.Header == "" && b.Query == "" && b.Format == "":
		place = egress.BasicPlacement()
	default:
		return egress.Credential{}, bad("needs exactly one placement: header (with format), query or basic")
	}
	if err != nil {
		return egress.Credential{}, bad("%v", err)
	}
	c := egress.Credential{Name: name, Hosts: b.Hosts, PathPrefix: b.PathPrefix, Placement: place, AllowConnect: b.AllowConnect}
	if secret != nil {
		c.Secret = func() (*vault.Secret, error) { return secret(name) }
	} else {
		c.Secret = func() (*vault.Secret, error) { return nil, fmt.Errorf("no vault") }
	}
	return c, nil
}
