package ratelimit

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP checks ClientIP's promises for any header and peer: it
// never panics; an untrusted peer is always answered with its own address;
// otherwise the answer is a valid address without zone or IPv4 mapping
// that the peer or the header named, or a typed error.
func FuzzClientIP(f *testing.F) {
	for _, s := range []struct{ remote, header, value string }{
		{"10.0.0.1:443", "X-Forwarded-For", "203.0.113.250, 192.0.2.1, 10.9.9.9"},
		{"10.0.0.1:443", "X-Forwarded-For", "[2001:db8::5]:4711, ::ffff:192.0.2.1"},
		{"10.0.0.1:443", "Forwarded", `for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.43`},
		{"10.0.0.1:443", "X-Real-IP", "192.0.2.9"},
		{"198.51.100.7:5555", "X-Forwarded-For", "192.0.2.66"},
		{"[fe80::1%eth0]:80", "X-Forwarded-For", "fe80::2%eth1"},
		{"@", "Forwarded", "for=unknown"},
	} {
		f.Add(s.remote, s.header, s.value)
	}
	f.Fuzz(func(t *testing.T, remote, header, value string) {
		r := request(remote)
		r.Header["X-Forwarded-For"] = []string{value}
		r.Header["Forwarded"] = []string{value}
		r.Header["X-Real-Ip"] = []string{value}
		for _, name := range []string{"", "Forwarded", "X-Real-IP", header} {
			p := &Proxy{Trusted: behindProxy.Trusted, Header: name}
			got, err := ClientIP(r, p)
			ap, perr := netip.ParseAddrPort(remote)
			peer := ap.Addr().Unmap().WithZone("")
			switch {
			case perr != nil:
				if !errors.Is(err, ErrBadRemoteAddr) {
					t.Fatalf("RemoteAddr %q: err = %v", remote, err)
				}
			case !p.trusts(peer):
				if err != nil || got != peer {
					t.Fatalf("untrusted peer %q: %v, %v", remote, got, err)
				}
			case err != nil:
				if !errors.Is(err, ErrBadForwardedHeader) {
					t.Fatalf("untyped error %v", err)
				}
			default:
				if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
					t.Fatalf("answer %v not canonical", got)
				}
				if got != peer && !mentions(value, got) {
					t.Fatalf("answer %v neither the peer %v nor in %q", got, peer, value)
				}
			}
		}
	})
}

// mentions reports whether s plausibly contains a. It is loose on purpose
// (compressed and expanded IPv6 forms differ) and only catches answers
// invented from nothing.
func mentions(s string, a netip.Addr) bool {
	if strings.Contains(s, a.String()) || strings.Contains(s, a.StringExpanded()) {
		return true
	}
	// Any token that parses to a, in whatever form (an IPv4-mapped
	// "::ffff:0:0" names 0.0.0.0).
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" ,;=\"\t", r) }) {
		tok = strings.TrimPrefix(strings.TrimPrefix(tok, "for"), "FOR")
		if ap, err := netip.ParseAddrPort(tok); err == nil && ap.Addr().Unmap().WithZone("") == a {
			return true
		}
		if x, err := netip.ParseAddr(strings.Trim(tok, "[]")); err == nil && x.Unmap().WithZone("") == a {
			return true
		}
	}
	if a.Is4() {
		return strings.Contains(s, netip.AddrFrom16(a.As16()).String())
	}
	return strings.ContainsRune(s, ':')
}
