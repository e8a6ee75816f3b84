// Package egress decides which network destinations a tool may reach and
// dials only the addresses it checked.
//
// # Threat model
//
// A tool's arguments come from an agent that may be steered by hostile
// content. The attacker controls URLs (any encoding), DNS answers for names
// it owns (including rebinding: a public answer first, loopback second) and
// redirects from servers it runs. The guard must keep every connection off
// loopback, private, link-local (cloud metadata), CGNAT, multicast and other
// special-purpose ranges, and off hosts the sandbox's allowlist does not name.
//
// # Guarantees
//
// The address check runs in the dialer's Control hook, on the IP the socket
// is about to connect to, after name resolution: whatever a URL or a resolver
// says, a connection to a refused address is never opened, and the address
// that was checked is the one connected to (no second lookup). Every redirect
// goes through the same URL check and the same dialer.
//
// This is the kernel's first cut of the guard; encodings are handled by
// checking the resolved address rather than by parsing every exotic form.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// ErrBlocked is wrapped by every refusal. Callers map it to a sandbox denial.
var ErrBlocked = errors.New("egress: blocked")

// Mode is a sandbox network mode. The zero Mode is invalid and denies.
type Mode uint8

const (
	Deny Mode = iota + 1
	Allowlist
	AllowAll
)

// ParseMode parses a manifest network mode.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "deny":
		return Deny, nil
	case "allowlist":
		return Allowlist, nil
	case "allow-all":
		return AllowAll, nil
	}
	return 0, fmt.Errorf("egress: unknown network mode %q", s)
}

// Policy is what one sandbox may reach.
type Policy struct {
	Mode Mode
	// Hosts are allowed host names for Allowlist: "api.example.com" exactly,
	// or "*.example.com" for any name below example.com (not example.com itself).
	Hosts []string
	// Exempt are operator exceptions to the special-range refusal, for example
	// 127.0.0.1/32 for an API that runs beside the kernel. Cloud metadata
	// addresses are refused even when exempted.
	Exempt []netip.Prefix
}

// refused lists the special-purpose ranges no tool may reach (IANA special
// registries). IPv4-mapped, NAT64 and 6to4 forms are unwrapped before the
// check, so an embedded private IPv4 address is refused too.
var refused = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "::/96", "100::/64", "2001::/23", "2001:db8::/32",
	"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

// metadata lists cloud metadata endpoints; never exempt.
var metadata = mustPrefixes("169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "fd00:ec2::254/128")

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// unwrap returns the IPv4 address embedded in IPv4-mapped, NAT64 (64:ff9b::/96)
// and 6to4 (2002::/16) IPv6 addresses, or a itself.
func unwrap(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	b := a.As16()
	switch {
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && isZero(b[4:12]):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	case b[0] == 0x20 && b[1] == 0x02:
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	return a
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// CheckAddr reports whether p lets a connection go to a. It does not
// allocate on the allow path.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if p.Mode != Allowlist && p.Mode != AllowAll {
		return fmt.Errorf("%w: network access is denied by the sandbox", ErrBlocked)
	}
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlocked)
	}
	a = unwrap(a.WithZone(""))
	for _, m := range metadata {
		if m.Contains(a) {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrBlocked, a)
		}
	}
	for _, e := range p.Exempt {
		if e.Contains(a) {
			return nil
		}
	}
	for _, r := range refused {
		if r.Contains(a) {
			return fmt.Errorf("%w: %s is in the special-purpose range %s", ErrBlocked, a, r)
		}
	}
	return nil
}

// CheckURL checks everything that can be known before resolving: scheme,
// userinfo, host allowlist and literal addresses. The dial-time check on the
// resolved address still applies afterwards.
func (p *Policy) CheckURL(u *url.URL) error {
	if p.Mode != Allowlist && p.Mode != AllowAll {
		return fmt.Errorf("%w: network access is denied by the sandbox", ErrBlocked)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q is not http or https", ErrBlocked, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URLs with user information are refused", ErrBlocked)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return fmt.Errorf("%w: URL has no host", ErrBlocked)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
	} else if numericHost(host) {
		// Browsers and libc read "127.1", "0x7f000001" and "2130706433" as
		// IPv4 addresses; refuse every form but the canonical dotted quad
		// rather than hand them to a resolver.
		return fmt.Errorf("%w: host %q is a non-canonical IPv4 address", ErrBlocked, host)
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") ||
		host == "metadata.google.internal" || host == "metadata" {
		return fmt.Errorf("%w: host %q is internal", ErrBlocked, host)
	}
	if p.Mode == Allowlist && !p.hostAllowed(host) {
		return fmt.Errorf("%w: host %q is not in the sandbox allowlist", ErrBlocked, host)
	}
	return nil
}

// numericHost reports whether the last label of host is a number (decimal,
// or hex with 0x), which makes URL parsers treat the whole host as IPv4.
func numericHost(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		last = h
		for _, c := range last {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (p *Policy) hostAllowed(host string) bool {
	for _, h := range p.Hosts {
		h = strings.ToLower(h)
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}
