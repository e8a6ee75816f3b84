package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clawkeep/clawkeep/internal/vault"
)

// testSecretValue is the credential the upstream must see and nothing else may.
const testSecretValue = "sk-live-7f3a9c1e5b2d4f6a8c0e"

// syncBuffer is a log sink safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proxyNames is the test resolver: every name is a real 127.0.0.1 server
// or a hostile answer. No test resolves a real name.
var proxyNames = map[string][]netip.Addr{
	"api.example.com":    addrs("127.0.0.1"),
	"other.example.net":  addrs("127.0.0.1"),
	"rebind.example.org": addrs("127.0.0.1"),
	"meta.example.org":   addrs("169.254.169.254"),
}

func proxyLookup(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := proxyNames[strings.ToLower(host)]; ok {
		return a, nil
	}
	return nil, errors.New("test: no such host")
}

// upstream is a real server on 127.0.0.1 recording what it received.
type upstream struct {
	*httptest.Server
	port uint16
	hits atomic.Int32
	mu   sync.Mutex
	seen []string // dumps of received requests
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
		r.Header.Write(&b)
		u.mu.Lock()
		u.seen = append(u.seen, b.String())
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	u.port = uint16(u.Listener.Addr().(*net.TCPAddr).Port)
	return u
}

func (u *upstream) received() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.seen, "\n")
}

type proxyEnv struct {
	proxy *Proxy
	addr  string // proxy listener host:port
	logs  *syncBuffer
	mu    sync.Mutex
	uses  []CredentialUse
}

func (e *proxyEnv) usesDump() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("%+v %#v", e.uses, e.uses)
}

func newProxyEnv(t testing.TB, opts ProxyOptions) *proxyEnv {
	e := &proxyEnv{logs: &syncBuffer{}}
	opts.Resolver = proxyLookup
	opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.OnUse = func(u CredentialUse) {
		e.mu.Lock()
		e.uses = append(e.uses, u)
		e.mu.Unlock()
	}
	e.proxy = NewProxy(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go e.proxy.Serve(l)
	t.Cleanup(func() { e.proxy.Close() })
	return e
}

// client returns an HTTP client that uses the proxy with token and follows
// no redirects.
func (e *proxyEnv) client(token string) *http.Client {
	pu := &url.URL{Scheme: "http", Host: e.addr, User: url.UserPassword("sandbox", token)}
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func testPolicy(ports ...uint16) Policy {
	return Policy{Mode: Allowlist, Hosts: []string{"api.example.com", "other.example.net", "rebind.example.org", "meta.example.org", "127.0.0.1"}, Exempt: loopbackExempt, Ports: ports}
}

// vaultSecret stores value in a fresh vault and returns a source that reads
// it, as the kernel would.
func vaultSecret(t testing.TB, typ vault.Type, value []byte) func() (*vault.Secret, error) {
	v, err := vault.Open(t.TempDir(), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Put("tenant-a", "cred", typ, value); err != nil {
		t.Fatal(err)
	}
	return func() (*vault.Secret, error) { return v.Get("tenant-a", "cred") }
}

func bearerCred(t testing.TB) Credential {
	pl, err := HeaderPlacement("Authorization", "Bearer %s")
	if err != nil {
		t.Fatal(err)
	}
	return Credential{Name: "api", Hosts: []string{"api.example.com"}, PathPrefix: "/v1", Placement: pl, Secret: vaultSecret(t, vault.Bearer, []byte(testSecretValue))}
}

func get(t *testing.T, c *http.Client, rawURL string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET through proxy: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// rawProxy sends raw bytes to the proxy and returns the status line.
func rawProxy(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading status: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestProxyUnauthenticatedRequestGets407(t *testing.T) {
	up := newUpstream(t, nil)
	e := newProxyEnv(t, ProxyOptions{})
	if _, err := e.proxy.Register("sb1", testPolicy(up.port), nil); err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/", up.port)
	resp, _ := get(t, &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: e.addr})}}, target, nil)
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("status %d, want 407", resp.StatusCode)
	}
	if line := rawProxy(t, e.addr, "CONNECT "+fmt.Sprintf("127.0.0.1:%d", up.port)+" HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(line, "407") {
		t.Fatalf("unauthenticated CONNECT: %q", line)
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream reached without authentication")
	}
}

func TestProxyWrongTokenGets407(t *testing.T) {
	up := newUpstream(t, nil)
	e := newProxyEnv(t, ProxyOptions{})
	token, err := e.proxy.Register("sb1", testPolicy(up.port), nil)
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/", up.port)
	for _, bad := range []string{
		token[:len(token)-1] + "x", // one character off
		token + "x",                // a longer token with the right prefix
		"",                         // empty password
	} {
		resp, _ := get(t, e.client(bad), target, nil)
		if resp.StatusCode != http.StatusProxyAuthRequired {
			t.Fatalf("token %q: status %d, want 407", bad, resp.StatusCode)
		}
	}
	for _, hdr := range []string{
		"Bearer " + token[:10],
		"Basic " + base64.StdEncoding.EncodeToString([]byte(token)), // no ':' separator
		"Digest " + token,
	} {
		line := rawProxy(t, e.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: "+hdr+"\r\n\r\n")
		if !strings.Contains(line, "407") {
			t.Fatalf("%q: %q", hdr, line)
		}
	}
	// A Bearer token works; an unregistered sandbox's token stops working.
	if line := rawProxy(t, e.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer "+token+"\r\n\r\n"); !strings.Contains(line, "200") {
		t.Fatalf("bearer: %q", line)
	}
	e.proxy.Unregister("sb1")
	if line := rawProxy(t, e.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer "+token+"\r\n\r\n"); !strings.Contains(line, "407") {
		t.Fatalf("after Unregister: %q", line)
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream hit %d times, want 1", up.hits.Load())
	}
	if strings.Contains(e.logs.String(), token[4:]) || strings.Contains(up.received(), token[4:]) {
		t.Fatal("the proxy token reached the logs or the upstream")
	}
}

func TestProxyUnregisterClosesOpenTunnel(t *testing.T) {
	// A raw TCP echo server stands in for a TLS upstream.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	e := newProxyEnv(t, ProxyOptions{})
	token, err := e.proxy.Register("sb1", testPolicy(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n\r\nping", port, token)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("tunnel echo %q, %v (bytes sent with the CONNECT must reach the upstream)", echo, err)
	}
	e.proxy.Unregister("sb1")
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("tunnel did not end cleanly: %v", err)
	}
}

func TestProxyRefusesPrivateAndMetadataTargets(t *testing.T) {
	up := newUpstream(t, nil)
	e := newProxyEnv(t, ProxyOptions{})
	// This sandbox has no loopback exemption: the test server is private.
	strict := Policy{Mode: AllowAll, Ports: []uint16{80, up.port}}
	token, err := e.proxy.Register("strict", strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(token)
	for _, target := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", up.port),                 // loopback literal
		fmt.Sprintf("http://rebind.example.org:%d/", up.port),        // a name resolving to loopback
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", up.port),        // mapped loopback
		"http://169.254.169.254/latest/meta-data/iam/?token=QSECRET", // metadata literal
		"http://meta.example.org/latest/meta-data/",                  // a name resolving to metadata
		fmt.Sprintf("http://localhost:%d/", up.port),                 // internal name
		"http://2130706433/",                                         // decimal loopback
	} {
		resp, body := get(t, c, target, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", target, resp.StatusCode)
		}
		reason := resp.Header.Get(refusalHeader)
		if reason == "" || !strings.Contains(body, reason) {
			t.Fatalf("%s: reason %q, body %q", target, reason, body)
		}
		if strings.Contains(reason, "QSECRET") || strings.Contains(reason, "meta-data") {
			t.Fatalf("reason %q echoes the URL path or query", reason)
		}
	}
	if up.hits.Load() != 0 {
		t.Fatal("a private target was reached through the proxy")
	}
	if strings.Contains(e.logs.String(), "QSECRET") {
		t.Fatal("logs hold the URL query")
	}
}

func TestProxyConnectToRefusedHostGets403(t *testing.T) {
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsUp.Close()
	port := uint16(tlsUp.Listener.Addr().(*net.TCPAddr).Port)
	e := newProxyEnv(t, ProxyOptions{})
	token, err := e.proxy.Register("sb1", Policy{Mode: Allowlist, Hosts: []string{"api.example.com"}, Ports: []uint16{port}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := "Proxy-Authorization: Bearer " + token + "\r\n"
	for _, target := range []string{
		fmt.Sprintf("127.0.0.1:%d", port),         // loopback, not exempted
		fmt.Sprintf("api.example.com:%d", port),   // allowed name, loopback answer
		fmt.Sprintf("other.example.net:%d", port), // not in the allowlist
		"169.254.169.254:443",                     // metadata
		fmt.Sprintf("api.example.com:%d", 25),     // port not allowed
	} {
		line := rawProxy(t, e.addr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n"+auth+"\r\n")
		if !strings.Contains(line, "403") {
			t.Fatalf("CONNECT %s: %q, want 403", target, line)
		}
	}
}

func TestProxyConnectToAllowedTLSServerWorks(t *testing.T) {
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls ok")
	}))
	defer tlsUp.Close()
	port := uint16(tlsUp.Listener.Addr().(*net.TCPAddr).Port)
	e := newProxyEnv(t, ProxyOptions{})
	token, err := e.proxy.Register("sb1", testPolicy(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(token)
	c.Transport.(*http.Transport).TLSClientConfig = tlsUp.Client().Transport.(*http.Transport).TLSClientConfig
	resp, body := get(t, c, fmt.Sprintf("https://127.0.0.1:%d/", port), nil)
	if resp.StatusCode != 200 || body != "tls ok" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestProxyConnectToCredentialHostRefused(t *testing.T) {
	e := newProxyEnv(t, ProxyOptions{})
	cred := bearerCred(t)
	token, err := e.proxy.Register("sb1", testPolicy(443), []Credential{cred})
	if err != nil {
		t.Fatal(err)
	}
	line := rawProxy(t, e.addr, "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Bearer "+token+"\r\n\r\n")
	if !strings.Contains(line, "403") {
		t.Fatalf("CONNECT to a credential host: %q", line)
	}
	if !strings.Contains(e.logs.String(), "CONNECT tunnel cannot carry it") {
		t.Fatalf("refusal reason not clear: %s", e.logs.String())
	}
}

func TestProxyInjectsCredentialWithoutLeakingIt(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// A hostile upstream echoing the header back is its own business;
		// this one answers without it.
		io.WriteString(w, "hello")
	})
	e := newProxyEnv(t, ProxyOptions{})
	cred := bearerCred(t)
	qpl, err := QueryPlacement("key")
	if err != nil {
		t.Fatal(err)
	}
	qcred := Credential{Name: "qkey", Hosts: []string{"*.example.com"}, Placement: qpl, Secret: vaultSecret(t, vault.APIKey, []byte(testSecretValue+"-q"))}
	bcred := Credential{Name: "basic", Hosts: []string{"api.example.com"}, Placement: BasicPlacement(), Secret: vaultSecret(t, vault.Basic, mustBasic(t, "bob", testSecretValue+"-b"))}
	var handed []*vault.Secret // every Secret the proxy was given
	var handedMu sync.Mutex
	for _, c := range []*Credential{&cred, &qcred, &bcred} {
		src := c.Secret
		c.Secret = func() (*vault.Secret, error) {
			s, err := src()
			handedMu.Lock()
			handed = append(handed, s)
			handedMu.Unlock()
			return s, err
		}
	}
	token, err := e.proxy.Register("sb1", testPolicy(up.port), []Credential{cred, qcred, bcred})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(token)
	base := fmt.Sprintf("http://api.example.com:%d", up.port)

	resp, body := get(t, c, base+"/v1/items?x=1", http.Header{"Authorization": {Placeholder("api")}})
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	resp, _ = get(t, c, base+"/other?a=b&key="+url.QueryEscape(Placeholder("qkey"))+"&z=2", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("query placement: status %d", resp.StatusCode)
	}
	resp, _ = get(t, c, base+"/", http.Header{"Authorization": {Placeholder("basic")}})
	if resp.StatusCode != 200 {
		t.Fatalf("basic placement: status %d", resp.StatusCode)
	}

	seen := up.received()
	for _, want := range []string{
		"Authorization: Bearer " + testSecretValue + "\r\n",
		"key=" + url.QueryEscape(testSecretValue+"-q") + "&z=2",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bob:"+testSecretValue+"-b")),
	} {
		if !strings.Contains(seen, want) {
			t.Fatalf("upstream did not see %q in:\n%s", want, seen)
		}
	}
	if strings.Contains(seen, "{{cred:") || strings.Contains(seen, "Proxy-Authorization") {
		t.Fatalf("upstream saw a placeholder or the proxy token:\n%s", seen)
	}
	leaks := map[string]string{
		"response": body,
		"logs":     e.logs.String(),
		"OnUse":    e.usesDump(),
	}
	for where, s := range leaks {
		if strings.Contains(s, "sk-live") || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("bob:"))[:6]) {
			t.Fatalf("%s holds the secret: %s", where, s)
		}
	}
	handedMu.Lock()
	if len(handed) != 3 {
		t.Fatalf("secret source called %d times, want 3", len(handed))
	}
	for _, s := range handed {
		if s.IsValid() {
			t.Fatal("a secret was not wiped after its request was written")
		}
	}
	handedMu.Unlock()
	e.mu.Lock()
	uses := append([]CredentialUse(nil), e.uses...)
	e.mu.Unlock()
	want := []CredentialUse{{"sb1", "api", "api.example.com"}, {"sb1", "qkey", "api.example.com"}, {"sb1", "basic", "api.example.com"}}
	if fmt.Sprint(uses) != fmt.Sprint(want) {
		t.Fatalf("OnUse records %v, want %v", uses, want)
	}
}

func mustBasic(t testing.TB, user, pw string) []byte {
	b, err := vault.BasicValue(user, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyRefusesPlaceholderForNonMatchingDestination(t *testing.T) {
	up := newUpstream(t, nil)
	e := newProxyEnv(t, ProxyOptions{})
	cred := bearerCred(t)
	token, err := e.proxy.Register("sb1", testPolicy(up.port), []Credential{cred})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(token)
	ph := Placeholder("api")
	for _, tc := range []struct {
		url string
		hdr http.Header
		why string
	}{
		{fmt.Sprintf("http://other.example.net:%d/v1/x", up.port), http.Header{"Authorization": {ph}}, "host not bound"},
		{fmt.Sprintf("http://127.0.0.1:%d/v1/x", up.port), http.Header{"Authorization": {ph}}, "same address, other host name"},
		{fmt.Sprintf("http://api.example.com:%d/v2/x", up.port), http.Header{"Authorization": {ph}}, "outside the path prefix"},
		{fmt.Sprintf("http://api.example.com:%d/v10", up.port), http.Header{"Authorization": {ph}}, "prefix without a '/' boundary"},
		{fmt.Sprintf("http://api.example.com:%d/v1/../admin", up.port), http.Header{"Authorization": {ph}}, "dot segment escapes the prefix"},
		{fmt.Sprintf("http://api.example.com:%d/v1%%2F..%%2Fadmin", up.port), http.Header{"Authorization": {ph}}, "encoded slash escapes the prefix"},
		{fmt.Sprintf("http://api.example.com:%d/v1/x", up.port), http.Header{"X-Leak": {ph}}, "wrong header"},
		{fmt.Sprintf("http://api.example.com:%d/v1/x", up.port), http.Header{"Authorization": {"Bearer " + ph}}, "not the whole value"},
		{fmt.Sprintf("http://api.example.com:%d/v1/x?q=%s", up.port, url.QueryEscape(ph)), nil, "query placement not configured"},
		{fmt.Sprintf("http://api.example.com:%d/v1/%s", up.port, url.PathEscape(ph)), nil, "placeholder in the path"},
		{fmt.Sprintf("http://api.example.com:%d/v1/x", up.port), http.Header{"Authorization": {Placeholder("nope")}}, "unknown credential"},
	} {
		resp, body := get(t, c, tc.url, tc.hdr)
		if !strings.Contains(body, "credential placeholder") {
			t.Errorf("%s: refused for another reason: %s", tc.why, body)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", tc.why, resp.StatusCode)
		}
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream reached %d times with a refused placeholder:\n%s", n, up.received())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.uses) != 0 {
		t.Fatalf("OnUse called for refused requests: %v", e.uses)
	}
}

func TestProxyRedirectToOtherHostArrivesWithoutSecret(t *testing.T) {
	other := newUpstream(t, nil)
	api := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://other.example.net:%d/landing", other.port), http.StatusFound)
	})
	e := newProxyEnv(t, ProxyOptions{})
	token, err := e.proxy.Register("sb1", testPolicy(api.port, other.port), []Credential{bearerCred(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(token)
	c.CheckRedirect = nil // the sandbox's client follows redirects itself
	resp, _ := get(t, c, fmt.Sprintf("http://api.example.com:%d/v1/start", api.port), http.Header{"Authorization": {Placeholder("api")}})
	if resp.StatusCode != 200 || other.hits.Load() != 1 {
		t.Fatalf("status %d, other hits %d", resp.StatusCode, other.hits.Load())
	}
	if !strings.Contains(api.received(), testSecretValue) {
		t.Fatal("the bound host did not get the credential")
	}
	if s := other.received(); strings.Contains(s, "sk-live") || strings.Contains(s, "{{cred:") {
		t.Fatalf("redirect target saw the secret or placeholder:\n%s", s)
	}
	// A client that carries the placeholder across the redirect is refused.
	resp, _ = get(t, e.client(token), fmt.Sprintf("http://other.example.net:%d/landing", other.port), http.Header{"Authorization": {Placeholder("api")}})
	if resp.StatusCode != http.StatusForbidden || other.hits.Load() != 1 {
		t.Fatalf("placeholder to redirect target: status %d, hits %d", resp.StatusCode, other.hits.Load())
	}
}

func TestProxyOversizedHeadersAndBody(t *testing.T) {
	up := newUpstream(t, nil)
	e := newProxyEnv(t, ProxyOptions{MaxHeaderBytes: 1 << 10, MaxBodyBytes: 1 << 10})
	token, err := e.proxy.Register("sb1", testPolicy(up.port), nil)
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/", up.port)
	auth := "Proxy-Authorization: Bearer " + token + "\r\n"
	big := strings.Repeat("a", 16<<10)
	if line := rawProxy(t, e.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\n"+auth+"X-Big: "+big+"\r\n\r\n"); !strings.Contains(line, "431") {
		t.Fatalf("oversized header: %q", line)
	}
	body := strings.Repeat("b", 2<<10)
	if line := rawProxy(t, e.addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", target, auth, len(body), body)); !strings.Contains(line, "413") {
		t.Fatalf("oversized body: %q", line)
	}
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	if line := rawProxy(t, e.addr, "POST "+target+" HTTP/1.1\r\nHost: x\r\n"+auth+"Transfer-Encoding: chunked\r\n\r\n"+chunked); !strings.Contains(line, "413") {
		t.Fatalf("oversized chunked body: %q", line)
	}
	if up.hits.Load() != 0 {
		t.Fatal("an oversized request reached the upstream")
	}
	small := "hi"
	if line := rawProxy(t, e.addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", target, auth, len(small), small)); !strings.Contains(line, "200") {
		t.Fatalf("small body: %q", line)
	}
}

func TestProxyServesUnixSocket(t *testing.T) {
	up := newUpstream(t, nil)
	p := NewProxy(ProxyOptions{Resolver: proxyLookup})
	defer p.Close()
	sock := t.TempDir() + "/proxy.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(l)
	token, err := p.Register("sb1", testPolicy(up.port), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n\r\n", up.port, token)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("over a Unix socket: %q", line)
	}
}

func TestProxyRegisterRejectsBadCredentials(t *testing.T) {
	p := NewProxy(ProxyOptions{Resolver: proxyLookup})
	defer p.Close()
	good := bearerCred(t)
	for _, tc := range []struct {
		why    string
		mutate func(*Credential)
	}{
		{"no placement", func(c *Credential) { c.Placement = Placement{} }},
		{"no secret source", func(c *Credential) { c.Secret = nil }},
		{"no host", func(c *Credential) { c.Hosts = nil }},
		{"host pattern with a port", func(c *Credential) { c.Hosts = []string{"api.example.com:443"} }},
		{"bad name", func(c *Credential) { c.Name = "a}}b" }},
		{"path prefix with dot segment", func(c *Credential) { c.PathPrefix = "/v1/../" }},
	} {
		c := good
		tc.mutate(&c)
		if _, err := p.Register("sb-"+tc.why, testPolicy(80), []Credential{c}); err == nil {
			t.Errorf("%s: registered", tc.why)
		}
	}
	if _, err := p.Register("dup", testPolicy(80), []Credential{good, good}); err == nil {
		t.Error("duplicate credential name registered")
	}
	if _, err := p.Register("x", testPolicy(80), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register("x", testPolicy(80), nil); err == nil {
		t.Error("sandbox registered twice")
	}
	for _, bad := range []string{"Bearer", "Bearer %s %s", "Bearer %d %s", "a\r\nb %s"} {
		if _, err := HeaderPlacement("Authorization", bad); err == nil {
			t.Errorf("format %q accepted", bad)
		}
	}
	for _, bad := range []string{"Proxy-Authorization", "Host", "Connection", "Bad Header"} {
		if _, err := HeaderPlacement(bad, "%s"); err == nil {
			t.Errorf("header %q accepted", bad)
		}
	}
}

// FuzzProxyPlaceholderNeverForwarded asserts that whatever headers, query
// and path a sandbox sends, either the request is refused or, once the
// planned credentials are written, no placeholder is left to forward and
// the secret appears only where a credential bound to the host put it.
func FuzzProxyPlaceholderNeverForwarded(f *testing.F) {
	ph := Placeholder("api")
	f.Add("Authorization", ph, "a=1&key="+url.QueryEscape(Placeholder("q")), "/v1/x", "api.example.com")
	f.Add("X-Other", ph, "", "/v1", "api.example.com")
	f.Add("Authorization", "Bearer "+ph, "key=%7B%7Bcred:q%7D%7D", "/v1/x", "other.example.net")
	f.Add("Authorization", ph, "key={{cred:q}}&key={{cred:q}}", "/v1/../x", "API.example.com")
	f.Add("Authorization", Placeholder("basic"), "k%3D={{cred:q}}", "/", "a.example.com")
	pl, _ := HeaderPlacement("Authorization", "Bearer %s")
	qpl, _ := QueryPlacement("key")
	src := vaultSecret(f, vault.Bearer, []byte("S3CR3T"))
	creds := []Credential{
		{Name: "api", Hosts: []string{"api.example.com"}, PathPrefix: "/v1", Placement: pl, Secret: src},
		{Name: "q", Hosts: []string{"*.example.com"}, Placement: qpl, Secret: src},
		{Name: "basic", Hosts: []string{"api.example.com"}, Placement: BasicPlacement(), Secret: src},
	}
	secret, err := src()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hname, hval, rawQuery, path, host string) {
		u, err := url.Parse("http://" + host + path + "?" + rawQuery)
		if err != nil || u.Host != host {
			return
		}
		if !validToken(hname) {
			return
		}
		hdr := http.Header{http.CanonicalHeaderKey(hname): {hval}}
		var pairs []string
		if u.RawQuery != "" {
			pairs = strings.Split(u.RawQuery, "&")
		}
		injs, err := planInjections(creds, u.Hostname(), u, hdr, pairs)
		if err != nil {
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("refusal does not wrap ErrBlocked: %v", err)
			}
			return
		}
		out := &http.Request{Header: hdr.Clone(), URL: u}
		skipped := ""
		for _, inj := range injs {
			if !inj.cred.bound(u.Hostname()) {
				t.Fatalf("credential %q planned for unbound host %q", inj.cred.Name, u.Hostname())
			}
			if inj.cred.Placement.kind == placeBasic {
				skipped = inj.header // the test secret is not a basic secret
				continue
			}
			if err := inj.apply(out, pairs, secret); err != nil {
				t.Fatal(err)
			}
		}
		for k, vs := range out.Header {
			for _, v := range vs {
				if k != skipped && strings.Contains(k+v, placeholderPrefix) {
					t.Fatalf("placeholder forwarded in header %q: %q", k, v)
				}
			}
		}
		for _, p := range pairs {
			if strings.Contains(p, placeholderPrefix) {
				t.Fatalf("placeholder forwarded in query pair %q", p)
			}
			if up, err := url.QueryUnescape(p); err == nil && strings.Contains(up, placeholderPrefix) {
				t.Fatalf("encoded placeholder forwarded in query pair %q", p)
			}
		}
	})
}

func BenchmarkProxyOverhead(b *testing.B) {
	up := newUpstream(b, nil)
	e := newProxyEnv(b, ProxyOptions{})
	token, err := e.proxy.Register("sb1", testPolicy(up.port), nil)
	if err != nil {
		b.Fatal(err)
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/", up.port)
	run := func(b *testing.B, c *http.Client) {
		for b.Loop() {
			resp, err := c.Get(target)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, &http.Client{Transport: &http.Transport{Proxy: nil}})
	})
	b.Run("proxy", func(b *testing.B) {
		run(b, e.client(token))
	})
}
