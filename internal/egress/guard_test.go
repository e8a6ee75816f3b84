package egress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

var open = Policy{Mode: AllowAll}

func TestCheckAddrRefusesSpecialRanges(t *testing.T) {
	for _, s := range []string{
		"127.0.0.1", "127.255.255.254", // loopback
		"0.0.0.0", "0.1.2.3", // "this network"
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // RFC 1918
		"100.64.0.1", "100.127.255.255", // CGNAT
		"169.254.169.254", "169.254.0.1", // link-local, metadata
		"100.100.100.200",                          // Alibaba metadata
		"192.0.2.1", "198.51.100.1", "203.0.113.1", // documentation
		"198.18.0.1", "198.19.255.255", // benchmarking
		"224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", // multicast, reserved, broadcast
		"::", "::1", "fe80::1", "fc00::1", "fd00:ec2::254", "fec0::1", "ff02::1", // IPv6 specials
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", // IPv4-mapped
		"::127.0.0.1",                           // IPv4-compatible
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 with private v4 inside
		"2002:7f00:1::", "2002:a9fe:a9fe::1", // 6to4 with private v4 inside
		"2001::1", "2001:db8::1", // Teredo, documentation
		"fe80::1%eth0", // zoned link-local
	} {
		a := netip.MustParseAddr(s)
		if err := open.CheckAddr(a); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s allowed", s)
		}
	}
}

func TestCheckAddrAllowsPublicAddresses(t *testing.T) {
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"} {
		if err := open.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
}

func TestMetadataAddressCannotBeExempted(t *testing.T) {
	p := Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("0.0.0.0/0")}}
	if err := p.CheckAddr(netip.MustParseAddr("169.254.169.254")); !errors.Is(err, ErrBlocked) {
		t.Fatal("metadata address exempted")
	}
	if err := p.CheckAddr(netip.MustParseAddr("169.254.1.1")); err != nil {
		t.Fatalf("exempted link-local refused: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	allow := Policy{Mode: Allowlist, Hosts: []string{"api.example.com", "*.example.org"}}
	cases := []struct {
		p   Policy
		url string
		ok  bool
	}{
		{open, "https://example.com/x", true},
		{open, "ftp://example.com/", false},                 // scheme
		{open, "file:///etc/passwd", false},                 // scheme
		{open, "gopher://127.0.0.1:6379/_INFO", false},      // scheme
		{open, "http://good.com@10.0.0.1/", false},          // userinfo
		{open, "http://localhost/", false},                  // name of loopback
		{open, "http://LOCALHOST./", false},                 // case and trailing dot
		{open, "http://a.localhost/", false},                // *.localhost
		{open, "http://metadata.google.internal/", false},   // GCP metadata name
		{open, "http://[::1]/", false},                      // literal v6 loopback
		{open, "http://169.254.169.254/latest/", false},     // literal metadata
		{open, "http:///nohost", false},                     // no host
		{Policy{Mode: Deny}, "https://example.com/", false}, // deny mode
		{Policy{}, "https://example.com/", false},           // zero policy denies
		{allow, "https://api.example.com/v1", true},
		{allow, "https://API.EXAMPLE.COM./v1", true},
		{allow, "https://evil.com/", false},
		{allow, "https://api.example.com.evil.com/", false},
		{allow, "https://x.example.org/", true},
		{allow, "https://example.org/", false}, // *.suffix does not match the apex
		{allow, "https://xexample.org/", false},
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.url)
		if err != nil {
			if tc.ok {
				t.Errorf("%s: %v", tc.url, err)
			}
			continue
		}
		err = tc.p.CheckURL(u)
		if (err == nil) != tc.ok {
			t.Errorf("%s (mode %d): got %v, want ok=%v", tc.url, tc.p.Mode, err, tc.ok)
		}
	}
}

// TestDialRefusesResolvedLoopback checks the address check that runs in the
// dialer, on the address the socket is about to connect to: it is what
// stops a name that resolves to loopback (rebinding). The dialer is called
// directly so no resolver is involved.
func TestDialRefusesResolvedLoopback(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := NewClient(open, Limits{})
	dial := c.http.Transport.(*http.Transport).DialContext
	if conn, err := dial(context.Background(), "tcp", srv.Listener.Addr().String()); !errors.Is(err, ErrBlocked) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("dialer connected to loopback: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("server reached")
	}
}

func TestNonCanonicalIPv4IsRefusedWithoutResolving(t *testing.T) {
	for _, h := range []string{"127.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.0.0.0x1", "10.1", "0X7F.1", "1.2.3.4.5"} {
		u := &url.URL{Scheme: "http", Host: h}
		if err := open.CheckURL(u); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s allowed", h)
		}
	}
	for _, h := range []string{"example.com", "1.example.com", "x0x.com", "api.v2"} {
		if err := open.CheckURL(&url.URL{Scheme: "https", Host: h}); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
}

func TestResponseBodyIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 10_000)))
	}))
	defer srv.Close()
	c := NewClient(Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, Limits{MaxBodyBytes: 100})
	resp, err := c.Do(context.Background(), "GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Body) != 100 || !resp.Truncated {
		t.Fatalf("body %d bytes, truncated=%v", len(resp.Body), resp.Truncated)
	}
}

func BenchmarkCheckAddr(b *testing.B) {
	a := netip.MustParseAddr("93.184.216.34")
	b.ReportAllocs()
	for b.Loop() {
		if open.CheckAddr(a) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckURLLiteral(b *testing.B) {
	u, _ := url.Parse("https://93.184.216.34/path")
	b.ReportAllocs()
	for b.Loop() {
		if open.CheckURL(u) != nil {
			b.Fatal("refused")
		}
	}
}

func TestTeredoObfuscatedClientIsUnwrapped(t *testing.T) {
	// Teredo is refused as a range; the embedded client must still be
	// found so an exemption of the range cannot reach metadata.
	p := Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("2001::/32")}}
	if err := p.CheckAddr(teredoAddr("65.54.227.120", "169.254.169.254")); !errors.Is(err, ErrBlocked) {
		t.Fatal("Teredo address with an obfuscated metadata client allowed")
	}
	if err := p.CheckAddr(teredoAddr("65.54.227.120", "127.0.0.1")); !errors.Is(err, ErrBlocked) {
		t.Fatal("Teredo address with an obfuscated loopback client allowed")
	}
	if err := p.CheckAddr(teredoAddr("65.54.227.120", "8.8.8.8")); err != nil {
		t.Fatalf("exempted Teredo with public endpoints refused: %v", err)
	}
}

func TestEgressRejectsNonWebPortsByDefault(t *testing.T) {
	for _, ap := range []string{"93.184.216.34:22", "93.184.216.34:25", "93.184.216.34:6379", "[2606:4700:4700::1111]:5432"} {
		if err := open.CheckAddrPort(netip.MustParseAddrPort(ap)); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s allowed", ap)
		}
	}
	for _, ap := range []string{"93.184.216.34:80", "93.184.216.34:443"} {
		if err := open.CheckAddrPort(netip.MustParseAddrPort(ap)); err != nil {
			t.Errorf("%s refused: %v", ap, err)
		}
	}
	p := Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if err := p.CheckAddrPort(netip.MustParseAddrPort("127.0.0.1:8123")); err != nil {
		t.Errorf("exempted address on its own port refused: %v", err)
	}
}

func TestPolicyChangesAfterNewClientDoNotApply(t *testing.T) {
	p := Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Ports: []uint16{80}}
	c, rec := newTestClient(p)
	p.Exempt[0] = netip.MustParsePrefix("127.0.0.0/8") // caller mutates its slice afterwards
	p.Ports[0] = 6379
	if _, err := c.Do(context.Background(), "GET", "http://10.0.0.1/", nil); !errors.Is(err, errRecorded) {
		t.Fatalf("client lost its copy of the exemption: %v", err)
	}
	if _, err := c.Do(context.Background(), "GET", "http://127.0.0.1:6379/", nil); !errors.Is(err, ErrBlocked) {
		t.Fatalf("client follows the caller's mutated slices: %v", err)
	}
	rec.take()
}

func TestCheckURLLiteralDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, raw := range []string{"https://93.184.216.34/path", "http://[2606:4700:4700::1111]:443/", "https://www.example.com/x"} {
		u, _ := url.Parse(raw)
		if n := testing.AllocsPerRun(100, func() { _ = open.CheckURL(u) }); n != 0 {
			t.Errorf("CheckURL(%s) allocates %v times", raw, n)
		}
	}
	a := netip.MustParseAddr("64:ff9b::808:808")
	if n := testing.AllocsPerRun(100, func() { _ = open.CheckAddr(a) }); n != 0 {
		t.Errorf("CheckAddr allocates %v times", n)
	}
}

func BenchmarkCheckURLName(b *testing.B) {
	u, _ := url.Parse("https://api.example.com:443/v1/things?x=1")
	b.ReportAllocs()
	for b.Loop() {
		if open.CheckURL(u) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckURLLiteral6(b *testing.B) {
	u, _ := url.Parse("https://[2606:4700:4700::1111]/path")
	b.ReportAllocs()
	for b.Loop() {
		if open.CheckURL(u) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckAddrNAT64(b *testing.B) {
	a := netip.MustParseAddr("64:ff9b::808:808")
	b.ReportAllocs()
	for b.Loop() {
		if open.CheckAddr(a) != nil {
			b.Fatal("refused")
		}
	}
}
