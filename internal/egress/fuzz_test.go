package egress

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// looseIPv4 is a slow reference for what inet_aton and WHATWG URL parsers
// read as an IPv4 address: one to four parts, each decimal, octal (leading
// 0) or hex (0x), the last part filling the remaining bytes.
func looseIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(strings.ToLower(p), "0x"):
			p, base = p[2:], 16
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func TestLooseIPv4Reference(t *testing.T) {
	for in, want := range map[string]string{
		"127.1": "127.0.0.1", "0x7f000001": "127.0.0.1", "2130706433": "127.0.0.1",
		"0177.0.0.1": "127.0.0.1", "0x7f.1": "127.0.0.1", "10.0.258": "10.0.1.2",
	} {
		if a, ok := looseIPv4(in); !ok || a.String() != want {
			t.Errorf("looseIPv4(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
}

// FuzzCheckURL asserts: CheckURL never panics; whatever it accepts has a
// host that no lenient parser reads as an IPv4 address other than the one
// CheckURL checked, is ASCII, and (if literal) passes CheckAddr.
func FuzzCheckURL(f *testing.F) {
	for _, tc := range ssrfCorpus() {
		f.Add(tc.url)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if open.CheckURL(u) != nil {
			return
		}
		h, err := ParseHost(u.Host, 80)
		if err != nil {
			t.Fatalf("CheckURL accepted %q but ParseHost refuses its host: %v", raw, err)
		}
		for i := 0; i < len(h.Name()); i++ {
			if h.Name()[i] >= 0x80 {
				t.Fatalf("accepted a non-ASCII host %q", h.Name())
			}
		}
		if loose, ok := looseIPv4(h.Name()); ok && loose != h.Addr() {
			t.Fatalf("accepted %q, which lenient parsers read as %s", raw, loose)
		}
		if h.Addr().IsValid() && open.CheckAddr(h.Addr()) != nil {
			t.Fatalf("accepted %q with a refused address", raw)
		}
	})
}

// FuzzParseHost asserts a round trip: an accepted authority, rewritten in
// canonical form, parses to the same Host.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.:443", "[::1]:80", "127.0.0.1", "0x7f.1", "a..b", "[fe80::1%eth0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHost(s, 80)
		if err != nil {
			return
		}
		if !h.IsValid() || h.Port() == 0 || h.Name() == "" {
			t.Fatalf("ParseHost(%q) accepted an invalid Host %+v", s, h)
		}
		canon := h.Name()
		if h.Addr().Is6() {
			canon = "[" + canon + "]"
		}
		canon += ":" + strconv.Itoa(int(h.Port()))
		h2, err := ParseHost(canon, 1)
		if err != nil || h2 != h {
			t.Fatalf("ParseHost(%q) = %+v, but its canonical form %q gives %+v, %v", s, h, canon, h2, err)
		}
	})
}
