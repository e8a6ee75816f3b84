// Package egress decides which network destinations a tool may reach and
// dials only the addresses it checked. Built-in tools use Client in
// process; sandboxed processes reach the same checks through Proxy, an
// authenticated HTTP forward proxy that is also the only place a credential
// is attached to a request (see Proxy and Credential).
//
// # Threat model
//
// A tool's arguments come from an agent that may be steered by hostile
// content. The attacker controls URLs (any encoding: decimal, octal, hex and
// short IPv4 forms, IPv6 with embedded IPv4, zones, percent-encoding,
// full-width digits, userinfo and fragment tricks, backslashes), DNS answers
// for names it owns (including rebinding: a public answer first, loopback
// second, or both in one answer) and redirects from servers it runs. The
// guard must keep every connection off loopback, private, link-local, CGNAT,
// multicast and other special-purpose ranges, off cloud metadata services,
// off ports the policy does not list and off hosts the sandbox's allowlist
// does not name.
//
// The attacker does not control the operator's Policy (modes, hosts, ports,
// exemptions) nor the resolver the operator injects.
//
// # Guarantees
//
//   - CheckURL accepts a host only in one canonical form: a dotted-quad IPv4
//     address, a bracketed IPv6 address without a zone, or an ASCII name of
//     letters, digits, '-', '_' and '.' (at most one trailing dot). Every other
//     form (numeric IPv4 variants, non-ASCII, percent signs, backslashes,
//     '@') is refused before any resolution, as are schemes other than http
//     and https, userinfo, opaque URLs, single-label names and reserved
//     internal names (localhost, *.internal, metadata.google.internal, ...).
//   - CheckAddr unwraps IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96 and
//     64:ff9b:1::/48), 6to4, Teredo (de-obfuscated client) and ISATAP forms
//     and refuses the address if the outer or any embedded address is
//     special. Outside IPv4, only global unicast (2000::/3, minus its
//     special blocks) and 64:ff9b::/96 are allowed. Cloud metadata addresses
//     are refused even when exempted.
//   - The Client resolves each name once per connection, refuses the name if
//     any answer is refused, and connects only to the addresses it checked
//     (no second lookup); the dialer's Control hook checks the socket's
//     address again. Every redirect goes through CheckURL and the same
//     dialer. Bodies, redirects, connect time and total time are bounded.
//   - Refusals wrap ErrBlocked and name the host, never the URL's userinfo,
//     path or query.
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
	// Matching ignores ASCII case and one trailing dot.
	Hosts []string
	// Exempt are operator exceptions to the special-range refusal, for example
	// 127.0.0.1/32 for an API that runs beside the kernel. An exempted
	// address may be reached on any port. Cloud metadata addresses are
	// refused even when exempted.
	Exempt []netip.Prefix
	// Ports are the destination ports allowed for addresses that are not
	// exempted; empty means 80 and 443. Without this, a public-looking URL
	// could reach SMTP, Redis or a database on a public host. CheckURL
	// applies it to every name (it cannot know the address yet), so an
	// exempted service on another port is reached by its literal address.
	Ports []uint16
}

// refused4 lists the special-purpose IPv4 ranges no tool may reach (IANA
// special registry), unless exempted.
var refused4 = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)

// refused6 lists the special blocks inside 2000::/3; everything outside
// 2000::/3 except 64:ff9b::/96 is refused by globalUnicast.
var refused6 = mustPrefixes(
	"2001::/23",     // IETF protocol assignments: Teredo, benchmarking, ORCHID, ...
	"2001:db8::/32", // documentation
	"3fff::/20",     // documentation (RFC 9637)
)

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	teredo        = netip.MustParsePrefix("2001::/32")
	compat        = netip.MustParsePrefix("::/96")
)

// metadata lists cloud metadata endpoints; never exempt. 169.254.169.254
// serves AWS, GCP, Azure, DigitalOcean, OpenStack and others.
var metadata = mustPrefixes(
	"169.254.169.254/32", // AWS, GCP, Azure, DigitalOcean, Oracle (v2), OpenStack
	"169.254.170.2/32",   // AWS ECS task credentials
	"169.254.170.23/32",  // AWS EKS pod identity
	"169.254.0.23/32",    // Tencent Cloud
	"100.100.100.200/32", // Alibaba Cloud
	"168.63.129.16/32",   // Azure wire server (a public address)
	"192.0.0.192/32",     // Oracle Cloud (v1)
	"fd00:ec2::/64",      // AWS IPv6 metadata, DNS, NTP, pod identity
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// embedded stores in out the IPv4 addresses that a carries inside it (the
// forms a relay or translator would connect to) and returns how many. a
// must be unmapped and zoneless.
func embedded(a netip.Addr, out *[4]netip.Addr) int {
	if !a.Is6() {
		return 0
	}
	b := a.As16()
	v4 := func(i, j, k, l int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}) }
	n := 0
	switch {
	case nat64.Contains(a), compat.Contains(a):
		out[n] = v4(12, 13, 14, 15)
		n++
	case nat64Local.Contains(a):
		// RFC 6052 layouts a local-use NAT64 prefix may use: /48, /56, /64
		// and /96 (byte 8 is the reserved u octet).
		out[0], out[1], out[2], out[3] = v4(6, 7, 9, 10), v4(7, 9, 10, 11), v4(9, 10, 11, 12), v4(12, 13, 14, 15)
		n = 4
	case sixToFour.Contains(a):
		out[n] = v4(2, 3, 4, 5)
		n++
	case teredo.Contains(a):
		out[n] = v4(4, 5, 6, 7) // server
		n++
		out[n] = netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}) // client, obfuscated
		n++
	}
	// ISATAP interface identifier (::0:5efe:a.b.c.d or ::200:5efe:a.b.c.d)
	// under any prefix.
	if (b[8]|0x02) == 0x02 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe && n < len(out) {
		out[n] = v4(12, 13, 14, 15)
		n++
	}
	return n
}

// CheckAddr reports whether p lets a connection go to a (on an allowed
// port; see CheckAddrPort). It does not allocate on the allow path.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if p.Mode != Allowlist && p.Mode != AllowAll {
		return fmt.Errorf("%w: network access is denied by the sandbox", ErrBlocked)
	}
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlocked)
	}
	a = a.WithZone("").Unmap()
	var inner [4]netip.Addr
	n := embedded(a, &inner)
	if err := isMetadata(a); err != nil {
		return err
	}
	for _, x := range inner[:n] {
		if err := isMetadata(x); err != nil {
			return err
		}
	}
	if err := p.special(a); err != nil {
		return err
	}
	for _, x := range inner[:n] {
		if err := p.special(x); err != nil {
			return fmt.Errorf("%w (embedded in %s)", err, a)
		}
	}
	return nil
}

// CheckAddrPort is CheckAddr plus the port check: a port outside p.Ports
// (80 and 443 if empty) is refused unless the address is exempted.
func (p *Policy) CheckAddrPort(ap netip.AddrPort) error {
	if err := p.CheckAddr(ap.Addr()); err != nil {
		return err
	}
	if !p.portAllowed(ap.Port()) && !p.exempt(ap.Addr().WithZone("").Unmap()) {
		return fmt.Errorf("%w: port %d is not allowed", ErrBlocked, ap.Port())
	}
	return nil
}

func isMetadata(a netip.Addr) error {
	for _, m := range metadata {
		if m.Contains(a) {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrBlocked, a)
		}
	}
	return nil
}

func (p *Policy) exempt(a netip.Addr) bool {
	for _, e := range p.Exempt {
		if e.Contains(a) {
			return true
		}
	}
	return false
}

// special refuses a if it is in a special-purpose range and not exempted.
func (p *Policy) special(a netip.Addr) error {
	if p.exempt(a) {
		return nil
	}
	if a.Is4() {
		for _, r := range refused4 {
			if r.Contains(a) {
				return fmt.Errorf("%w: %s is in the special-purpose range %s", ErrBlocked, a, r)
			}
		}
		return nil
	}
	if nat64.Contains(a) {
		return nil // the embedded address is what counts
	}
	if !globalUnicast.Contains(a) {
		return fmt.Errorf("%w: %s is not a global unicast address", ErrBlocked, a)
	}
	for _, r := range refused6 {
		if r.Contains(a) {
			return fmt.Errorf("%w: %s is in the special-purpose range %s", ErrBlocked, a, r)
		}
	}
	return nil
}

func (p *Policy) portAllowed(port uint16) bool {
	if len(p.Ports) == 0 {
		return port == 80 || port == 443
	}
	for _, q := range p.Ports {
		if q == port {
			return true
		}
	}
	return false
}

// CheckURL checks everything that can be known before resolving: scheme,
// userinfo, the host's form, internal names, the port and the host
// allowlist, and the address itself for literal hosts. The dial-time check
// on the resolved address still applies afterwards. It does not allocate
// on the allow path.
func (p *Policy) CheckURL(u *url.URL) error {
	if p.Mode != Allowlist && p.Mode != AllowAll {
		return fmt.Errorf("%w: network access is denied by the sandbox", ErrBlocked)
	}
	var defPort uint16
	switch u.Scheme {
	case "http":
		defPort = 80
	case "https":
		defPort = 443
	default:
		return fmt.Errorf("%w: scheme is not http or https", ErrBlocked)
	}
	if u.User != nil {
		// The message must not echo the userinfo: it may be a password.
		return fmt.Errorf("%w: URLs with user information are refused", ErrBlocked)
	}
	if u.Opaque != "" {
		// "http:\\10.0.0.1" and "http:10.0.0.1" parse as opaque URLs that
		// other parsers read as a host.
		return fmt.Errorf("%w: opaque URLs are refused", ErrBlocked)
	}
	h, err := ParseHost(u.Host, defPort)
	if err != nil {
		return err
	}
	if h.addr.IsValid() {
		if err := p.CheckAddrPort(netip.AddrPortFrom(h.addr, h.port)); err != nil {
			return err
		}
	} else if !p.portAllowed(h.port) {
		return fmt.Errorf("%w: port %d is not allowed", ErrBlocked, h.port)
	}
	if p.Mode == Allowlist && !p.hostAllowed(h.name) {
		return fmt.Errorf("%w: host %q is not in the sandbox allowlist", ErrBlocked, h.name)
	}
	return nil
}

// Host is a URL authority in canonical form. The zero Host is invalid;
// only ParseHost makes one.
type Host struct {
	name string     // never empty in a valid Host; no trailing dot, no brackets
	addr netip.Addr // valid for literal hosts
	port uint16     // never 0 in a valid Host
}

// IsValid reports whether h was made by ParseHost.
func (h Host) IsValid() bool { return h.port != 0 }

// Name returns the host name or literal address, without brackets or a
// trailing dot, in the case it was written.
func (h Host) Name() string { return h.name }

// Addr returns the literal address, or the zero Addr for a name.
func (h Host) Addr() netip.Addr { return h.addr }

// Port returns the port, the scheme's default if the authority had none.
func (h Host) Port() uint16 { return h.port }

// ParseHost parses a URL authority (url.URL.Host) strictly, with defPort for
// an absent port. It refuses, wrapping ErrBlocked: every IPv4 form but the
// dotted quad, zones, non-ASCII (use the Punycode xn-- form), percent signs,
// backslashes and other characters outside [A-Za-z0-9._-], empty or
// over-long labels, single-label names and reserved internal names.
func ParseHost(authority string, defPort uint16) (Host, error) {
	if authority == "" {
		return Host{}, fmt.Errorf("%w: URL has no host", ErrBlocked)
	}
	var name, port string
	if authority[0] == '[' {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return Host{}, fmt.Errorf("%w: unterminated IPv6 literal", ErrBlocked)
		}
		name, port = authority[1:end], authority[end+1:]
		if port != "" {
			if port[0] != ':' {
				return Host{}, fmt.Errorf("%w: text after an IPv6 literal", ErrBlocked)
			}
			port = port[1:]
		}
		if strings.IndexByte(name, '%') >= 0 {
			return Host{}, fmt.Errorf("%w: IPv6 zone identifiers are refused", ErrBlocked)
		}
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is6() {
			return Host{}, fmt.Errorf("%w: invalid IPv6 literal", ErrBlocked)
		}
		pn, err := parsePort(port, defPort)
		if err != nil {
			return Host{}, err
		}
		return Host{name: name, addr: a, port: pn}, nil
	}
	name = authority
	if i := strings.IndexByte(authority, ':'); i >= 0 {
		name, port = authority[:i], authority[i+1:]
	}
	pn, err := parsePort(port, defPort)
	if err != nil {
		return Host{}, err
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return Host{}, fmt.Errorf("%w: URL has no host", ErrBlocked)
	}
	if digitsAndDots(name) { // only then can it be a literal; a failed ParseAddr allocates
		if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
			return Host{name: name, addr: a, port: pn}, nil
		}
	}
	if err := checkName(name); err != nil {
		return Host{}, err
	}
	return Host{name: name, port: pn}, nil
}

func digitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

func parsePort(s string, def uint16) (uint16, error) {
	if s == "" {
		return def, nil
	}
	if len(s) > 5 || s[0] == '0' {
		// "0080" is 80 to some parsers and refused by others: one form only.
		return 0, fmt.Errorf("%w: invalid port", ErrBlocked)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: invalid port", ErrBlocked)
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || n > 65535 {
		return 0, fmt.Errorf("%w: invalid port", ErrBlocked)
	}
	return uint16(n), nil
}

// internalNames are names that reach the host itself, its network or a
// cloud metadata service; internalSuffixes are reserved for private use
// (RFC 6761, RFC 6762 appendix G, RFC 8375, ICANN's .internal).
var (
	internalNames = []string{
		"metadata.google.internal", "metadata.goog", "metadata.tencentyun.com",
		"instance-data", "metadata", "localhost",
	}
	internalSuffixes = []string{
		"localhost", "internal", "local", "localdomain", "arpa", "intranet",
		"private", "corp", "home", "lan", "test", "invalid", "onion",
		"home.arpa", "svc",
	}
)

// checkName checks a host name that is not a literal address; name has no
// trailing dot.
func checkName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("%w: host name too long", ErrBlocked)
	}
	label := 0
	labels := 1
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return fmt.Errorf("%w: host %q has an empty label", ErrBlocked, name)
			}
			label = 0
			labels++
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case c >= 0x80:
			// Full-width digits and dots (U+FF10-FF19, U+FF0E, U+3002)
			// become an IPv4 address under IDNA mapping; refuse all
			// non-ASCII rather than normalise differently from a resolver.
			return fmt.Errorf("%w: non-ASCII host; use the Punycode (xn--) form", ErrBlocked)
		default:
			return fmt.Errorf("%w: host has an invalid character %q", ErrBlocked, c)
		}
		label++
		if label > 63 {
			return fmt.Errorf("%w: host %q has a label over 63 bytes", ErrBlocked, name)
		}
	}
	if label == 0 {
		return fmt.Errorf("%w: host %q has an empty label", ErrBlocked, name)
	}
	if numericHost(name) {
		// Browsers and libc read "127.1", "0x7f000001", "2130706433" and
		// "0177.0.0.1" as IPv4 addresses; refuse every form but the
		// canonical dotted quad rather than hand them to a resolver.
		return fmt.Errorf("%w: host %q is a non-canonical IPv4 address", ErrBlocked, name)
	}
	for _, n := range internalNames {
		if strings.EqualFold(name, n) {
			return fmt.Errorf("%w: host %q is internal", ErrBlocked, name)
		}
	}
	for _, s := range internalSuffixes {
		if hasLabelSuffixFold(name, s) {
			return fmt.Errorf("%w: host %q is under the reserved domain %q", ErrBlocked, name, s)
		}
	}
	if labels == 1 {
		// A single label is completed by the resolver's search domains
		// ("kubernetes", "intranet"): it names something local.
		return fmt.Errorf("%w: single-label host %q", ErrBlocked, name)
	}
	return nil
}

// hasLabelSuffixFold reports whether name ends in the labels of suffix,
// ignoring ASCII case: "a.Internal" has suffix "internal", "xinternal" does not.
func hasLabelSuffixFold(name, suffix string) bool {
	if len(name) <= len(suffix) || name[len(name)-len(suffix)-1] != '.' {
		return false
	}
	return strings.EqualFold(name[len(name)-len(suffix):], suffix)
}

// numericHost reports whether the last label of host is a number (decimal,
// octal, or hex with 0x), which makes URL parsers treat the whole host as IPv4.
func numericHost(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			c := last[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func (p *Policy) hostAllowed(host string) bool {
	for _, h := range p.Hosts {
		h = strings.TrimSuffix(h, ".")
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if hasLabelSuffixFold(host, suffix) {
				return true
			}
		} else if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}
