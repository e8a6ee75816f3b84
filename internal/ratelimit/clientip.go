package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Proxy says which reverse proxies in front of the server are believed
// about the client's address.
//
// A forwarding header is a claim anyone can make; it is only as good as the
// host that added it. Trusting a header from a peer that is not a proxy you
// run lets any client choose whose budget it spends, or pick a fresh
// address for every request.
type Proxy struct {
	// Trusted lists the proxies' own addresses. A request whose RemoteAddr
	// is in none of them is taken at its RemoteAddr. IPv4 proxies match
	// both IPv4 and IPv4-mapped prefixes.
	Trusted []netip.Prefix
	// Header is where the trusted proxies put the client's address:
	// "X-Forwarded-For" (the default when empty) and "Forwarded" (RFC 7239)
	// are lists, read right to left; any other name, such as "X-Real-IP",
	// must hold exactly one address the proxy sets, overwriting any the
	// client sent.
	Header string
}

// ErrBadRemoteAddr is wrapped when a request's RemoteAddr is not an
// address and port, as on a Unix-socket listener; the caller answers 400
// or fixes its listener.
var ErrBadRemoteAddr = errors.New("ratelimit: RemoteAddr is not ip:port")

// ErrBadForwardedHeader is wrapped when a trusted proxy's header does not
// name the client's address; the caller answers 400.
var ErrBadForwardedHeader = errors.New("ratelimit: malformed client address header")

// ClientIP returns the address r came from, the key to rate-limit it by.
//
// Without p, or when RemoteAddr is not one of p.Trusted, it is RemoteAddr's
// host, and X-Forwarded-For, Forwarded, X-Real-IP and the like are ignored.
// From a trusted proxy it is read from p.Header only. In a list, each proxy
// appends the address it received from, so the entries a client cannot
// forge are at the right: the answer is the right-most entry that is not
// itself a trusted proxy (or the left-most, if all are). Entries left of
// that one are the client's own claims and are not even parsed. A trusted
// proxy that sent no header is itself the client.
//
// IPv4-mapped addresses come back as IPv4, and zones are dropped from
// RemoteAddr; a header entry with a zone, a port-only or empty entry, an
// "unknown" or obfuscated Forwarded node, or a repeated single-value header
// is an error wrapping [ErrBadForwardedHeader].
func ClientIP(r *http.Request, p *Proxy) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrBadRemoteAddr, clip(r.RemoteAddr))
	}
	remote := ap.Addr().Unmap().WithZone("")
	if p == nil || !p.trusts(remote) {
		return remote, nil
	}
	name := "X-Forwarded-For"
	if p.Header != "" {
		name = textproto.CanonicalMIMEHeaderKey(p.Header)
	}
	lines := r.Header.Values(name)
	if len(lines) == 0 {
		return remote, nil
	}
	switch name {
	case "X-Forwarded-For":
		return p.rightmostUntrusted(name, lines, parseNode)
	case "Forwarded":
		return p.rightmostUntrusted(name, lines, parseForwardedElement)
	default:
		if len(lines) != 1 {
			return netip.Addr{}, fmt.Errorf("%w: %s appears %d times", ErrBadForwardedHeader, name, len(lines))
		}
		a, ok := parseNode(lines[0])
		if !ok {
			return netip.Addr{}, badEntry(name, lines[0])
		}
		return a, nil
	}
}

// rightmostUntrusted walks the comma-separated elements of lines from the
// right and returns the first address that p does not trust.
func (p *Proxy) rightmostUntrusted(name string, lines []string, parse func(string) (netip.Addr, bool)) (netip.Addr, error) {
	var leftmost netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for {
			elem := rest
			j := strings.LastIndexByte(rest, ',')
			if j >= 0 {
				elem = rest[j+1:]
			}
			a, ok := parse(elem)
			if !ok {
				return netip.Addr{}, badEntry(name, elem)
			}
			if !p.trusts(a) {
				return a, nil
			}
			leftmost = a
			if j < 0 {
				break
			}
			rest = rest[:j]
		}
	}
	return leftmost, nil
}

// trusts reports whether a is one of p's proxies.
func (p *Proxy) trusts(a netip.Addr) bool {
	for _, pfx := range p.Trusted {
		if pfx.Contains(a) {
			return true
		}
		// Addresses are unmapped before they get here, so a prefix written
		// as ::ffff:10.0.0.0/104 would otherwise never match.
		if pa := pfx.Addr(); pa.Is4In6() && pfx.Bits() >= 96 {
			if netip.PrefixFrom(pa.Unmap(), pfx.Bits()-96).Contains(a) {
				return true
			}
		}
	}
	return false
}

// parseNode parses one X-Forwarded-For entry: an address, optionally with
// a port ("192.0.2.1:443", "[2001:db8::1]:443"), which some proxies add.
// Surrounding spaces and tabs are allowed. Parsing is netip's: leading
// zeros, octal and hex forms of IPv4 are refused.
func parseNode(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	// A zone names an interface of the machine that wrote it; from another
	// host it means nothing, so the entry is not a client address.
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseForwardedElement returns the for= node of one RFC 7239 element,
// such as `for=192.0.2.60;proto=http` or `for="[2001:db8::17]:4711"`.
// Elements are split at commas before this, so a quoted comma makes the
// header malformed: no proxy puts one in a node that is an address.
func parseForwardedElement(elem string) (netip.Addr, bool) {
	var node string
	found := false
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.Trim(pair, " \t"), "=")
		if !ok {
			return netip.Addr{}, false
		}
		if !strings.EqualFold(k, "for") {
			continue
		}
		if found {
			return netip.Addr{}, false // two for= in one element: ambiguous
		}
		found = true
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
			if strings.ContainsAny(v, "\\\"") {
				return netip.Addr{}, false
			}
		}
		node = v
	}
	if !found {
		return netip.Addr{}, false
	}
	// RFC 7239 brackets IPv6 even without a port.
	if len(node) > 2 && node[0] == '[' && node[len(node)-1] == ']' {
		node = node[1 : len(node)-1]
		if !strings.Contains(node, ":") {
			return netip.Addr{}, false
		}
	}
	return parseNode(node)
}

func badEntry(name, entry string) error {
	return fmt.Errorf("%w: %s entry %q", ErrBadForwardedHeader, name, clip(strings.Trim(entry, " \t")))
}

// clip shortens attacker-supplied text quoted in errors, which end up in
// logs.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Refuse answers a request that Allow or LoginAllowed refused: status 429
// with Retry-After in whole seconds.
func Refuse(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int64(roundUp(retryAfter) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	http.Error(w, "too many requests", http.StatusTooManyRequests)
}
