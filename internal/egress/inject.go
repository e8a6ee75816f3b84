package egress

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/clawkeep/clawkeep/internal/vault"
)

// placeholderPrefix starts the text a sandbox writes where a credential
// belongs: "{{cred:NAME}}". The sandbox never holds the value itself.
const placeholderPrefix = "{{cred:"

// Placeholder returns the text a sandbox sends in place of the credential
// named name: "{{cred:NAME}}".
func Placeholder(name string) string { return placeholderPrefix + name + "}}" }

type placementKind uint8

const (
	placeHeader placementKind = iota + 1
	placeQuery
	placeBasic
)

// Placement says where the proxy writes a credential. The zero Placement is
// invalid; only HeaderPlacement, QueryPlacement and BasicPlacement make one.
type Placement struct {
	kind   placementKind
	name   string // canonical header name, or query parameter name
	prefix string // header value before the secret
	suffix string // header value after the secret
}

// IsValid reports whether p was made by one of the constructors.
func (p Placement) IsValid() bool { return p.kind != 0 }

// HeaderPlacement writes the credential in header name, formatted by
// format, which holds exactly one "%s" (for example "Bearer %s"). The
// sandbox sends the header with the value Placeholder(NAME).
func HeaderPlacement(name, format string) (Placement, error) {
	if !validToken(name) {
		return Placement{}, errors.New("egress: invalid credential header name")
	}
	cn := http.CanonicalHeaderKey(name)
	if isHopHeader(cn) || cn == "Host" || strings.HasPrefix(cn, "Proxy-") {
		return Placement{}, fmt.Errorf("egress: header %q cannot carry a credential", cn)
	}
	if strings.Count(format, "%s") != 1 || strings.Count(format, "%") != 1 || strings.ContainsAny(format, "\r\n\x00") {
		return Placement{}, errors.New("egress: credential header format must hold exactly one %s and no other % or control characters")
	}
	pre, suf, _ := strings.Cut(format, "%s")
	return Placement{kind: placeHeader, name: cn, prefix: pre, suffix: suf}, nil
}

// QueryPlacement writes the credential as the value of query parameter
// param. The sandbox sends param=Placeholder(NAME).
func QueryPlacement(param string) (Placement, error) {
	if param == "" || strings.ContainsAny(param, "&=#?%+ \r\n") || strings.Contains(param, placeholderPrefix) {
		return Placement{}, errors.New("egress: invalid credential query parameter name")
	}
	return Placement{kind: placeQuery, name: param}, nil
}

// BasicPlacement writes a vault.Basic secret as "Authorization: Basic ...".
// The sandbox sends "Authorization: " + Placeholder(NAME).
func BasicPlacement() Placement {
	return Placement{kind: placeBasic, name: "Authorization"}
}

// Credential is a secret the proxy writes into a sandbox's plain-HTTP
// requests to the hosts it is bound to. The sandbox sends its placeholder;
// the value never enters the sandbox.
type Credential struct {
	// Name is what the placeholder names: letters, digits, '-', '_', '.'.
	Name string
	// Hosts the credential may be sent to: "api.example.com" exactly, or
	// "*.example.com" for names below example.com. A literal address
	// matches only a request written with that literal.
	Hosts []string
	// PathPrefix, if not empty, limits the credential to request paths equal
	// to it or below it on a '/' boundary ("/v1" matches "/v1/x", not
	// "/v10"). Paths with dot segments, empty segments or an encoded '/'
	// never match.
	PathPrefix string
	// Placement says where the value goes; it must be valid.
	Placement Placement
	// Secret returns the value for one request; the proxy wipes it once the
	// request is written. Must not be nil.
	Secret func() (*vault.Secret, error)
	// AllowConnect lets the sandbox open a CONNECT tunnel to the bound
	// hosts. A tunnel is TLS end to end, so the proxy cannot inject into it;
	// by default such a CONNECT is refused so that a sandbox learns at once
	// that it must send plain http:// (or absolute https://) requests to the
	// proxy instead, rather than reaching the API unauthenticated through a
	// path nobody audits.
	AllowConnect bool
}

// CredentialUse records that the proxy wrote a credential into a request.
// It never holds the value.
type CredentialUse struct {
	Sandbox string
	Name    string
	Host    string
}

func validCredName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validToken reports whether s is an HTTP token (RFC 9110 field name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// checkCredential validates c and returns a copy the caller cannot change.
func checkCredential(c Credential) (Credential, error) {
	if !validCredName(c.Name) {
		return Credential{}, fmt.Errorf("egress: invalid credential name %q", c.Name)
	}
	if !c.Placement.IsValid() {
		return Credential{}, fmt.Errorf("egress: credential %q has no placement", c.Name)
	}
	if c.Secret == nil {
		return Credential{}, fmt.Errorf("egress: credential %q has no secret source", c.Name)
	}
	if len(c.Hosts) == 0 {
		return Credential{}, fmt.Errorf("egress: credential %q is bound to no host", c.Name)
	}
	for _, h := range c.Hosts {
		name := strings.TrimPrefix(h, "*.")
		if _, err := ParseHost(name, 80); err != nil || strings.ContainsAny(name, ":[]") {
			return Credential{}, fmt.Errorf("egress: credential %q has an invalid host pattern %q", c.Name, h)
		}
	}
	if c.PathPrefix != "" && (c.PathPrefix[0] != '/' || !cleanPath(c.PathPrefix)) {
		return Credential{}, fmt.Errorf("egress: credential %q has an invalid path prefix", c.Name)
	}
	c.Hosts = append([]string(nil), c.Hosts...)
	return c, nil
}

// cleanPath reports whether p has no dot segments and no empty segments
// (other than a trailing '/').
func cleanPath(p string) bool {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if i == 0 {
			continue
		}
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

// bound reports whether c may be sent to host (canonical, from ParseHost).
func (c *Credential) bound(host string) bool {
	p := Policy{Hosts: c.Hosts}
	return p.hostAllowed(host)
}

// matches reports whether c may be sent to u, whose host is host.
func (c *Credential) matches(host string, u *url.URL) bool {
	if !c.bound(host) {
		return false
	}
	if c.PathPrefix == "" {
		return true
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	if !cleanPath(p) {
		return false
	}
	if raw := strings.ToLower(u.RawPath); strings.Contains(raw, "%2f") || strings.Contains(raw, "%2e") || strings.Contains(raw, "%5c") {
		return false
	}
	if strings.HasSuffix(c.PathPrefix, "/") {
		return strings.HasPrefix(p, c.PathPrefix)
	}
	return p == c.PathPrefix || strings.HasPrefix(p, c.PathPrefix+"/")
}

// parsePlaceholder returns NAME if v is exactly "{{cred:NAME}}".
func parsePlaceholder(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, placeholderPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "}}")
	if !ok || !validCredName(name) {
		return "", false
	}
	return name, true
}

// injection is one credential to write into an outgoing request.
type injection struct {
	cred   *Credential
	header string // header name, for header and basic placements
	qi     int    // index of the query pair, for query placements
}

// planInjections finds every placeholder in r's headers, query and path
// and pairs it with a credential bound to host and u's path. Any
// placeholder the proxy will not fill is a refusal: it would otherwise be
// forwarded, telling the destination which credential the sandbox wanted.
// pairs is u.RawQuery split on '&'.
func planInjections(creds []Credential, host string, u *url.URL, h http.Header, pairs []string) ([]injection, error) {
	if strings.Contains(u.Path, placeholderPrefix) || strings.Contains(u.RawPath, placeholderPrefix) || strings.Contains(u.Fragment, placeholderPrefix) {
		return nil, fmt.Errorf("%w: credential placeholder in the URL path", ErrBlocked)
	}
	find := func(name string, kind placementKind, key string) (*Credential, error) {
		for i := range creds {
			c := &creds[i]
			if c.Name != name {
				continue
			}
			if c.Placement.kind != kind || c.Placement.name != key {
				return nil, fmt.Errorf("%w: credential placeholder %q is not in the credential's place", ErrBlocked, name)
			}
			if !c.matches(host, u) {
				return nil, fmt.Errorf("%w: credential placeholder %q is not bound to host %q or this path", ErrBlocked, name, host)
			}
			return c, nil
		}
		return nil, fmt.Errorf("%w: credential placeholder %q names no credential of this sandbox", ErrBlocked, name)
	}
	var out []injection
	for k, vs := range h {
		if strings.Contains(k, placeholderPrefix) {
			return nil, fmt.Errorf("%w: credential placeholder in a header name", ErrBlocked)
		}
		for _, v := range vs {
			if !strings.Contains(v, placeholderPrefix) {
				continue
			}
			name, ok := parsePlaceholder(v)
			if !ok || len(vs) != 1 {
				return nil, fmt.Errorf("%w: credential placeholder in header %q is not the whole value", ErrBlocked, k)
			}
			kind := placeHeader
			if k == "Authorization" {
				// Either placement may use Authorization; the credential decides.
				for i := range creds {
					if creds[i].Name == name && creds[i].Placement.kind == placeBasic {
						kind = placeBasic
					}
				}
			}
			c, err := find(name, kind, k)
			if err != nil {
				return nil, err
			}
			out = append(out, injection{cred: c, header: k})
		}
	}
	for i, pair := range pairs {
		k, v, _ := strings.Cut(pair, "=")
		uk, kerr := url.QueryUnescape(k)
		uv, verr := url.QueryUnescape(v)
		if strings.Contains(k, placeholderPrefix) || (kerr == nil && strings.Contains(uk, placeholderPrefix)) {
			return nil, fmt.Errorf("%w: credential placeholder in a query parameter name", ErrBlocked)
		}
		if !strings.Contains(v, placeholderPrefix) && (verr != nil || !strings.Contains(uv, placeholderPrefix)) {
			continue
		}
		name, ok := parsePlaceholder(uv)
		if verr != nil || kerr != nil || !ok {
			return nil, fmt.Errorf("%w: credential placeholder in a query value is not the whole value", ErrBlocked)
		}
		c, err := find(name, placeQuery, uk)
		if err != nil {
			return nil, err
		}
		out = append(out, injection{cred: c, qi: i})
	}
	return out, nil
}

// apply writes s into out as inj says. The strings it builds (a header
// value, a query) are copies Wipe cannot reach; see vault's Memory section.
func (inj injection) apply(out *http.Request, pairs []string, s *vault.Secret) error {
	pl := inj.cred.Placement
	switch pl.kind {
	case placeHeader:
		b := s.UnsafeBytes()
		if !headerSafe(b) {
			return fmt.Errorf("egress: credential %q cannot be written in a header", inj.cred.Name)
		}
		out.Header[inj.header] = []string{pl.prefix + string(b) + pl.suffix}
	case placeQuery:
		k, _, _ := strings.Cut(pairs[inj.qi], "=")
		pairs[inj.qi] = k + "=" + url.QueryEscape(string(s.UnsafeBytes()))
	case placeBasic:
		user, pw, err := s.Basic()
		if err != nil {
			return fmt.Errorf("egress: credential %q is not a basic secret", inj.cred.Name)
		}
		defer pw.Wipe()
		raw := make([]byte, 0, len(user)+1+pw.Len())
		raw = append(append(append(raw, user...), ':'), pw.UnsafeBytes()...)
		out.Header[inj.header] = []string{"Basic " + base64.StdEncoding.EncodeToString(raw)}
		clear(raw)
	default:
		return fmt.Errorf("egress: internal error: placement kind %d", pl.kind)
	}
	return nil
}

// headerSafe reports whether b may appear in a header value unchanged.
func headerSafe(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
