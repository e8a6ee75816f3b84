package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var loopbackExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// rebinder answers public first and loopback afterwards, as a rebinding
// attacker's DNS server with TTL 0 does.
type rebinder struct {
	calls  atomic.Int32
	first  []netip.Addr
	second []netip.Addr
}

func (r *rebinder) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return r.first, nil
	}
	return r.second, nil
}

func TestDNSRebindingConnectsOnlyToCheckedAddress(t *testing.T) {
	rb := &rebinder{first: addrs("93.184.216.34"), second: addrs("127.0.0.1")}
	c := NewClient(open, Limits{Resolver: rb.lookup})
	rec := &recorder{}
	c.connect = rec.connect

	_, err := c.Do(context.Background(), "GET", "http://rebind.attacker.com/", nil)
	if !errors.Is(err, errRecorded) {
		t.Fatalf("first request: %v", err)
	}
	seen := rec.take()
	want := netip.MustParseAddrPort("93.184.216.34:80")
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("connected to %v, want exactly the checked %v", seen, want)
	}
	if n := rb.calls.Load(); n != 1 {
		t.Fatalf("resolved %d times for one connection: a second lookup could rebind", n)
	}

	_, err = c.Do(context.Background(), "GET", "http://rebind.attacker.com/", nil)
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("second request (loopback answer): %v", err)
	}
	if seen := rec.take(); len(seen) != 0 {
		t.Fatalf("connected to %v after a loopback answer", seen)
	}
}

// TestDNSRebindingToLoopbackNeverReachesServer uses the real dialer and a
// real server on 127.0.0.1 (not exempted, its port allowed): whatever the
// resolver answers, the server is not reached.
func TestDNSRebindingToLoopbackNeverReachesServer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := uint16(srv.Listener.Addr().(*net.TCPAddr).Port)
	for _, answer := range [][]netip.Addr{
		addrs("127.0.0.1"),                  // plain rebinding
		addrs("::ffff:127.0.0.1"),           // mapped
		addrs("93.184.216.34", "127.0.0.1"), // public first in the same answer
		addrs("127.0.0.1", "93.184.216.34"), // loopback first
		addrs("64:ff9b::7f00:1"),            // NAT64 form
		addrs("0.0.0.0"),                    // "this host" reaches loopback listeners on Linux
	} {
		rb := &rebinder{first: answer, second: answer}
		c := NewClient(Policy{Mode: AllowAll, Ports: []uint16{port}}, Limits{Resolver: rb.lookup})
		_, err := c.Do(context.Background(), "GET", fmt.Sprintf("http://rebind.attacker.com:%d/", port), nil)
		if !errors.Is(err, ErrBlocked) {
			t.Errorf("answer %v: %v", answer, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
}

// redirector serves on 127.0.0.1 (exempted by the tests): /hop/N redirects
// to /hop/N-1, /hop/0 to the "to" query parameter, /final answers "final".
func redirector(t *testing.T, hits *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch {
		case r.URL.Path == "/final":
			io.WriteString(w, "final")
		case r.URL.Path == "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			var n int
			fmt.Sscanf(r.URL.Path, "/hop/%d", &n)
			if n > 0 {
				http.Redirect(w, r, fmt.Sprintf("/hop/%d?%s", n-1, r.URL.RawQuery), http.StatusFound)
				return
			}
			w.Header().Set("Location", r.URL.Query().Get("to"))
			w.WriteHeader(http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRedirectChainToPrivateTargetRefusedAtHop(t *testing.T) {
	var hits atomic.Int32
	srv := redirector(t, &hits)
	c := NewClient(Policy{Mode: AllowAll, Exempt: loopbackExempt}, Limits{Resolver: fakeLookup, MaxRedirects: 10})
	for _, to := range []string{
		"http://169.254.169.254/latest/meta-data/", // metadata
		"http://[fd00:ec2::254]/",                  // AWS IPv6 metadata
		"http://metadata.google.internal/",         // metadata name
		"http://10.0.0.1/",                         // private
		"http://[::1]/",                            // IPv6 loopback is not exempted
		"http://[::ffff:a9fe:a9fe]/",               // mapped metadata
		"http://0x7f000001/",                       // hex loopback
		"http://2130706433/",                       // decimal loopback
		"http://127.1/",                            // short loopback
		"http://localhost/",                        // loopback name
		"http://good.com@10.0.0.1/",                // userinfo
		"http:\\\\10.0.0.1/",                       // backslashes
		"gopher://127.0.0.1:6379/_FLUSHALL",        // scheme
		"file:///etc/passwd",                       // scheme
		"http://private.attacker.com/",             // name resolving to 10/8
		"http://meta.attacker.com/",                // name resolving to metadata
		"http://example.com:6379/",                 // port
		"http://１２７.０.０.１/",                        // full-width
	} {
		for _, hops := range []int{0, 3} {
			hits.Store(0)
			u := fmt.Sprintf("%s/hop/%d?to=%s", srv.URL, hops, url.QueryEscape(to))
			_, err := c.Do(context.Background(), "GET", u, nil)
			if !errors.Is(err, ErrBlocked) {
				t.Errorf("redirect after %d hops to %s: %v", hops, to, err)
			}
			if got := hits.Load(); got != int32(hops+1) {
				t.Errorf("redirect to %s: server saw %d requests, want %d", to, got, hops+1)
			}
		}
	}
	// Control: a redirect to the exempted server itself is followed.
	resp, err := c.Do(context.Background(), "GET", srv.URL+"/hop/2?to="+url.QueryEscape(srv.URL+"/final"), nil)
	if err != nil || string(resp.Body) != "final" {
		t.Fatalf("redirect to an allowed target: %v %v", resp, err)
	}
}

func TestRedirectLoopIsBounded(t *testing.T) {
	var hits atomic.Int32
	srv := redirector(t, &hits)
	c := NewClient(Policy{Mode: AllowAll, Exempt: loopbackExempt}, Limits{MaxRedirects: 3})
	_, err := c.Do(context.Background(), "GET", srv.URL+"/loop", nil)
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("redirect loop: %v", err)
	}
	if got := hits.Load(); got != 4 {
		t.Fatalf("server saw %d requests, want 4 (1 + 3 redirects)", got)
	}
}

func TestSlowBodyHitsTotalDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select { // a slow-loris body: never finishes on its own
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := NewClient(Policy{Mode: AllowAll, Exempt: loopbackExempt}, Limits{Total: 50 * time.Millisecond})
	_, err := c.Do(context.Background(), "GET", srv.URL, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow body: %v", err)
	}
}

func TestSlowConnectHitsConnectTimeout(t *testing.T) {
	c := NewClient(open, Limits{Resolver: fakeLookup, ConnectTimeout: 20 * time.Millisecond, Total: time.Hour})
	c.connect = func(ctx context.Context, _ string, _ netip.AddrPort) (net.Conn, error) {
		<-ctx.Done() // a black-holed SYN
		return nil, ctx.Err()
	}
	_, err := c.Do(context.Background(), "GET", "http://example.com/", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow connect: %v", err)
	}
}

func TestChunkedBodyIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 100 { // no Content-Length: chunked
			w.Write([]byte(strings.Repeat("y", 1000)))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c := NewClient(Policy{Mode: AllowAll, Exempt: loopbackExempt}, Limits{MaxBodyBytes: 1500})
	resp, err := c.Do(context.Background(), "GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Body) != 1500 || !resp.Truncated {
		t.Fatalf("body %d bytes, truncated=%v", len(resp.Body), resp.Truncated)
	}
}

func TestEnvironmentProxyIsIgnored(t *testing.T) {
	var proxyHits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxyHits.Add(1) }))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	c, rec := newTestClient(open)
	_, err := c.Do(context.Background(), "GET", "http://example.com/", nil)
	if !errors.Is(err, errRecorded) || proxyHits.Load() != 0 {
		t.Fatalf("request went through the environment proxy: %v, %d", err, proxyHits.Load())
	}
	if seen := rec.take(); len(seen) != 1 || seen[0] != netip.MustParseAddrPort("93.184.216.34:80") {
		t.Fatalf("connected to %v", seen)
	}
}

func TestURLSecretsNotInErrors(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	var hits atomic.Int32
	srv := redirector(t, &hits)
	c, _ := newTestClient(open)
	cx := NewClient(Policy{Mode: AllowAll, Exempt: loopbackExempt}, Limits{Resolver: fakeLookup, Total: 50 * time.Millisecond})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
		} else if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
			t.Errorf("%s: error leaks the secret: %v", what, err)
		}
	}
	for _, raw := range []string{
		"http://user:" + secret + "@example.com/",
		"http://" + secret + "@10.0.0.1/",
		"ftp://example.com/?token=" + secret,
		"http://10.0.0.1/" + secret + "?k=" + secret,
		"http://example.com:6379/?k=" + secret,
	} {
		u, _ := url.Parse(raw)
		check("CheckURL "+strings.ReplaceAll(raw, secret, "S"), open.CheckURL(u))
		_, err := c.Do(context.Background(), "GET", raw, nil)
		check("Do "+strings.ReplaceAll(raw, secret, "S"), err)
	}
	_, err := c.Do(context.Background(), "GET", "http://example.com/path-"+secret+"?token="+secret, nil)
	check("failed connection", err)
	_, err = c.Do(context.Background(), "GET", "http://nxdomain.attacker.com/?token="+secret, nil)
	check("failed lookup", err)
	_, err = cx.Do(context.Background(), "GET", srv.URL+"/hop/1?to="+url.QueryEscape("http://169.254.169.254/?token="+secret), nil)
	check("refused redirect", err)
	_, err = cx.Do(context.Background(), "GET", slow.URL+"/?token="+secret, nil)
	check("timeout", err)
	_, err = c.Do(context.Background(), "GET", "http://exa mple.com/?token="+secret, nil)
	check("unparsable URL", err)
}
