package ratelimit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// request builds a request as the server would hand it over: RemoteAddr
// set by the listener, headers as sent (each value one header line).
func request(remote string, headers ...string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

var behindProxy = &Proxy{Trusted: []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
}}

func TestSpoofedForwardedForIgnoredWithoutTrustedProxy(t *testing.T) {
	spoofs := []string{
		"X-Forwarded-For", "192.0.2.66",
		"Forwarded", "for=192.0.2.67",
		"X-Real-IP", "192.0.2.68",
		"True-Client-IP", "192.0.2.69",
	}
	for _, p := range []*Proxy{
		nil,                        // no proxy configured
		{},                         // a proxy struct with nothing trusted
		behindProxy,                // proxies configured, but this peer is not one
		{Header: "X-Real-IP"},      // header named, nobody trusted
		{Header: "True-Client-IP"}, // likewise
	} {
		got, err := ClientIP(request("198.51.100.7:5555", spoofs...), p)
		if err != nil || got != ipA {
			t.Errorf("proxy %+v: ClientIP = %v, %v; want the peer %v", p, got, err, ipA)
		}
	}
}

// A malformed header from an untrusted peer is not even read, so it cannot
// be used to make the server answer 400 either.
func TestUntrustedPeerMalformedHeaderIgnored(t *testing.T) {
	got, err := ClientIP(request("198.51.100.7:5555", "X-Forwarded-For", "not-an-ip, ,"), behindProxy)
	if err != nil || got != ipA {
		t.Errorf("ClientIP = %v, %v; want %v", got, err, ipA)
	}
}

func TestTrustedProxyHeaderUsed(t *testing.T) {
	for _, tc := range []struct {
		remote  string
		headers []string
		p       *Proxy
		want    string
	}{
		{"10.1.2.3:80", []string{"X-Forwarded-For", "192.0.2.1"}, behindProxy, "192.0.2.1"},
		{"[fd00::1]:80", []string{"X-Forwarded-For", "2001:db8::5"}, behindProxy, "2001:db8::5"},
		// The proxy's own listener reports the peer IPv4-mapped.
		{"[::ffff:10.1.2.3]:80", []string{"X-Forwarded-For", "192.0.2.1"}, behindProxy, "192.0.2.1"},
		// Trusted prefix written in mapped form still matches.
		{"10.1.2.3:80", []string{"X-Forwarded-For", "192.0.2.1"},
			&Proxy{Trusted: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, "192.0.2.1"},
		// Entries carrying a port, as some proxies write them.
		{"10.1.2.3:80", []string{"X-Forwarded-For", "192.0.2.1:4711"}, behindProxy, "192.0.2.1"},
		{"10.1.2.3:80", []string{"X-Forwarded-For", "[2001:db8::5]:4711"}, behindProxy, "2001:db8::5"},
		// Mapped client addresses come back as IPv4.
		{"10.1.2.3:80", []string{"X-Forwarded-For", "::ffff:192.0.2.1"}, behindProxy, "192.0.2.1"},
		// The header name is case-insensitive in the config.
		{"10.1.2.3:80", []string{"X-Real-Ip", "192.0.2.9"},
			&Proxy{Trusted: behindProxy.Trusted, Header: "x-real-ip"}, "192.0.2.9"},
		// A trusted proxy sending no header is itself the client (a health
		// check, say).
		{"10.1.2.3:80", nil, behindProxy, "10.1.2.3"},
		// Only the configured header counts: X-Real-IP from the proxy is not
		// read when it was told to use X-Forwarded-For.
		{"10.1.2.3:80", []string{"X-Real-IP", "192.0.2.77", "X-Forwarded-For", "192.0.2.1"}, behindProxy, "192.0.2.1"},
	} {
		got, err := ClientIP(request(tc.remote, tc.headers...), tc.p)
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s %q: ClientIP = %v, %v; want %s", tc.remote, tc.headers, got, err, tc.want)
		}
	}
}

// The client controls everything left of what the first proxy appended;
// only the right-most entry that is not a trusted proxy is believed.
func TestForwardedForRightmostUntrustedWins(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		// Client sent a forged entry; the proxy appended the real peer.
		{[]string{"203.0.113.250, 192.0.2.1"}, "192.0.2.1"},
		// Two proxies: the inner one appended the outer one's address.
		{[]string{"203.0.113.250, 192.0.2.1, 10.9.9.9"}, "192.0.2.1"},
		// Forged entries dressed as trusted proxies do not shift the answer.
		{[]string{"10.6.6.6, 192.0.2.1, 10.9.9.9"}, "192.0.2.1"},
		// A forged header line before the proxy's own line.
		{[]string{"203.0.113.250", "192.0.2.1"}, "192.0.2.1"},
		{[]string{"203.0.113.250", "192.0.2.1, 10.1.1.1"}, "192.0.2.1"},
		// Garbage left of the answer is the client's own and unparsed.
		{[]string{"garbage,,;, 192.0.2.1"}, "192.0.2.1"},
		// Every entry a trusted proxy: the left-most is the client.
		{[]string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		// Optional whitespace, tabs included.
		{[]string{"\t192.0.2.1\t,10.9.9.9 "}, "192.0.2.1"},
	} {
		var h []string
		for _, l := range tc.lines {
			h = append(h, "X-Forwarded-For", l)
		}
		got, err := ClientIP(request("10.0.0.1:443", h...), behindProxy)
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%q: ClientIP = %v, %v; want %s", tc.lines, got, err, tc.want)
		}
	}
}

func TestMalformedForwardedForFromTrustedProxyIsError(t *testing.T) {
	for _, tc := range []struct {
		value string
		why   string
	}{
		{"", "empty header: no client named"},
		{"192.0.2.1,", "empty right-most entry"},
		{"192.0.2.1, ", "blank right-most entry"},
		{"unknown", "not an address"},
		{"example.com", "a host name, not an address"},
		{"192.0.2.256", "octet out of range"},
		{"192.0.2.01", "leading zero: octal in some parsers"},
		{"0x7f.0.0.1", "hex IPv4 form"},
		{"2130706433", "decimal IPv4 form"},
		{"fe80::1%eth0", "zone names the proxy's interface, not a host"},
		{"[fe80::1%eth0]:80", "zone with a port"},
		{":80", "port only"},
		{"192.0.2.1:99999", "port out of range"},
		{"[192.0.2.1]", "brackets around IPv4"},
		{"192.0.2.1 192.0.2.2", "two addresses without a comma"},
		{"192.0.2.1, 10.0.0.2, bogus", "malformed among the trusted hops"},
	} {
		_, err := ClientIP(request("10.0.0.1:443", "X-Forwarded-For", tc.value), behindProxy)
		if !errors.Is(err, ErrBadForwardedHeader) {
			t.Errorf("%q (%s): err = %v, want ErrBadForwardedHeader", tc.value, tc.why, err)
		}
	}
}

func TestRFC7239ForwardedHeader(t *testing.T) {
	p := &Proxy{Trusted: behindProxy.Trusted, Header: "Forwarded"}
	for _, tc := range []struct {
		value, want string
	}{
		{"for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"},
		{`For="[2001:db8:cafe::17]:4711"`, "2001:db8:cafe::17"},
		{`for="[2001:db8:cafe::17]"`, "2001:db8:cafe::17"},
		{"for=203.0.113.250, for=192.0.2.43", "192.0.2.43"},
		{"for=192.0.2.43, for=10.1.1.1;by=10.0.0.1", "192.0.2.43"},
		{"proto=https; for=192.0.2.43", "192.0.2.43"},
	} {
		got, err := ClientIP(request("10.0.0.1:443", "Forwarded", tc.value), p)
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%q: ClientIP = %v, %v; want %s", tc.value, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		value, why string
	}{
		{"for=unknown", "the proxy did not know the client"},
		{"for=_hidden", "obfuscated node"},
		{"proto=https", "no for= in the right-most element"},
		{"for=192.0.2.1;for=192.0.2.2", "two for= in one element"},
		{`for="192.0.2.1`, "unterminated quote"},
		{`for="192.0.2.\1"`, "escape in a quoted address"},
		{"for", "parameter without a value"},
		{"for=[::1", "unterminated bracket"},
		{"for=[]", "empty brackets"},
	} {
		_, err := ClientIP(request("10.0.0.1:443", "Forwarded", tc.value), p)
		if !errors.Is(err, ErrBadForwardedHeader) {
			t.Errorf("%q (%s): err = %v, want ErrBadForwardedHeader", tc.value, tc.why, err)
		}
	}
}

// A single-value header sent twice means the proxy did not overwrite what
// the client sent: which one is the proxy's cannot be told.
func TestRepeatedSingleValueHeaderIsError(t *testing.T) {
	p := &Proxy{Trusted: behindProxy.Trusted, Header: "X-Real-IP"}
	for _, h := range [][]string{
		{"X-Real-IP", "192.0.2.1", "X-Real-IP", "192.0.2.2"},
		{"X-Real-IP", "192.0.2.1, 192.0.2.2"},
		{"X-Real-IP", ""},
	} {
		if _, err := ClientIP(request("10.0.0.1:443", h...), p); !errors.Is(err, ErrBadForwardedHeader) {
			t.Errorf("%q: err = %v, want ErrBadForwardedHeader", h, err)
		}
	}
}

func TestBogusRemoteAddrIsError(t *testing.T) {
	for _, remote := range []string{
		"",               // unset
		"@",              // Unix socket peer
		"192.0.2.1",      // no port
		"example.com:80", // a name
		"[::1]",          // no port
		"192.0.2.1:http", // named port
		"300.0.0.1:80",   // not an address
	} {
		if _, err := ClientIP(request(remote), nil); !errors.Is(err, ErrBadRemoteAddr) {
			t.Errorf("RemoteAddr %q: err = %v, want ErrBadRemoteAddr", remote, err)
		}
	}
}

func TestErrorsDoNotEchoLongHeaders(t *testing.T) {
	long := fmt.Sprintf("%01000d", 7)
	_, err := ClientIP(request("10.0.0.1:443", "X-Forwarded-For", long), behindProxy)
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error %d bytes long: %v", len(err.Error()), err)
	}
}

// End to end over a real listener: a client forging X-Forwarded-For is
// counted by its real address and gets 429 with Retry-After.
func TestSpoofedForwardedForCannotEscapeLimitOverHTTP(t *testing.T) {
	l, _ := newTestLimiter(t, Config{PerIP: 1, IPBurst: 50})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, err := ClientIP(r, nil)
		if err != nil {
			http.Error(w, "bad client address", http.StatusBadRequest)
			return
		}
		if ok, wait := l.Allow(ip, "", Read); !ok {
			Refuse(w, wait)
			return
		}
		io.WriteString(w, ip.String())
	}))
	defer srv.Close()

	var last *http.Response
	for i := range 60 {
		req, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i < 50 && (resp.StatusCode != 200 || string(body) != "127.0.0.1") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		last = resp
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("51st+ request: status %d, want 429", last.StatusCode)
	}
	secs, err := strconv.Atoi(last.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", last.Header.Get("Retry-After"))
	}
}

func TestRefuseRoundsRetryAfterUp(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {90 * time.Second, "90"}} {
		w := httptest.NewRecorder()
		Refuse(w, tc.d)
		if w.Code != 429 || w.Header().Get("Retry-After") != tc.want {
			t.Errorf("Refuse(%v): %d Retry-After %q, want 429 %q", tc.d, w.Code, w.Header().Get("Retry-After"), tc.want)
		}
	}
}
