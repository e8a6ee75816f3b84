package egress

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// refusalHeader carries a refusal's reason back to the sandbox.
const refusalHeader = "X-Clawkeep-Refusal"

// ProxyOptions configure a Proxy. Zero fields take the stated defaults.
type ProxyOptions struct {
	MaxHeaderBytes    int           // request header bytes; 0 = 32 KiB (beyond: 431)
	MaxBodyBytes      int64         // request body bytes; 0 = 8 MiB (beyond: 413)
	MaxResponseBytes  int64         // response body bytes relayed; 0 = 64 MiB
	ReadHeaderTimeout time.Duration // 0 = 10 s
	IdleTimeout       time.Duration // keep-alive and tunnel idle time; 0 = 60 s
	ConnectTimeout    time.Duration // per upstream connection attempt; 0 = 5 s
	RequestTimeout    time.Duration // whole plain-HTTP request; 0 = 60 s
	TunnelTimeout     time.Duration // whole CONNECT tunnel; 0 = 10 min
	// Resolver resolves host names for every sandbox; nil uses
	// net.DefaultResolver. Tests inject a fake.
	Resolver LookupFunc
	// Logger receives one record per request: sandbox, method, host,
	// status and refusal reason, never a path, query or credential. Nil
	// discards.
	Logger *slog.Logger
	// OnUse is called once per credential written into a request, before
	// the request is sent (so a use is recorded even if the dialer then
	// refuses the resolved address and nothing leaves); the kernel audits
	// it. It never receives the value. Or nil.
	OnUse func(CredentialUse)
}

// Proxy is an HTTP forward proxy for sandboxes: plain HTTP requests in
// absolute form (http://, or https:// which the proxy itself sends over
// TLS; credentials injected) and CONNECT tunnels (no injection). A sandbox
// reaches it on a loopback or Unix socket listener. Its methods are safe
// for concurrent use. It adds these guarantees to the package's:
//
//   - Every request and tunnel is authenticated by a per-sandbox token
//     (Proxy-Authorization: Bearer TOKEN, or Basic with TOKEN as the
//     password; compared in constant time) and decided by that sandbox's
//     Policy with CheckURL and the same resolving, checking dialer as
//     Client. A refusal is 403 with the reason in the X-Clawkeep-Refusal
//     header and the body; the reason names the host, never the path,
//     query or a credential.
//   - A credential is written only into a request that passed the guard,
//     whose host (and path) it is bound to, where the sandbox put its
//     placeholder. Any other placeholder is refused, never forwarded.
//     Redirects are returned to the sandbox, not followed, so a request to
//     another host starts again without the value.
//   - CONNECT tunnels carry TLS the proxy cannot read, so nothing is
//     injected into them; a CONNECT to a host with a bound credential is
//     refused unless the credential sets AllowConnect. The request body is
//     not searched for placeholders and is forwarded as sent.
//   - The proxy cannot stop a bound host from echoing the credential back
//     in its response (as a debugging endpoint would): bind credentials
//     only to the hosts of the API that needs them, with a PathPrefix.
//   - Header bytes (431), body bytes (413), response bytes, header read,
//     idle and total times are bounded. No environment proxy is used.
type Proxy struct {
	opts ProxyOptions // defaults filled in; constant
	log  *slog.Logger // never nil
	srv  *http.Server // never nil

	mu        sync.Mutex
	sandboxes map[string]*sandbox // guarded by mu; by ID
	closed    bool                // guarded by mu
}

// sandbox is one registered client of the proxy.
type sandbox struct {
	id        string
	onRefuse  func(host, reason string) // or nil
	tokenHash [32]byte
	creds     []Credential    // constant
	client    *Client         // never nil; its dial is the guard
	transport *http.Transport // never nil; never follows redirects

	mu      sync.Mutex
	tunnels map[net.Conn]struct{} // guarded by mu; nil after close
}

// NewProxy returns a proxy with no sandboxes. opts is copied.
func NewProxy(opts ProxyOptions) *Proxy {
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 32 << 10
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 8 << 20
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 64 << 20
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.TunnelTimeout <= 0 {
		opts.TunnelTimeout = 10 * time.Minute
	}
	p := &Proxy{opts: opts, log: opts.Logger, sandboxes: make(map[string]*sandbox)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p
}

// Register adds a sandbox with its policy and credentials and returns the
// token it must present. p and creds are copied; an ID already registered
// is an error.
func (p *Proxy) Register(sandboxID string, pol Policy, creds []Credential) (string, error) {
	return p.RegisterWatched(sandboxID, pol, creds, nil)
}

// RegisterWatched is Register with onRefuse, which is called (if not nil)
// with the host and reason of each request or tunnel the guard refuses
// for this sandbox, so that its runner can report the refusal.
func (p *Proxy) RegisterWatched(sandboxID string, pol Policy, creds []Credential, onRefuse func(host, reason string)) (string, error) {
	if sandboxID == "" || len(sandboxID) > 256 || strings.ContainsAny(sandboxID, "\r\n\x00") {
		return "", errors.New("egress: invalid sandbox ID")
	}
	if pol.Mode != Deny && pol.Mode != Allowlist && pol.Mode != AllowAll {
		return "", fmt.Errorf("egress: sandbox %q has an invalid network mode", sandboxID)
	}
	cs := make([]Credential, 0, len(creds))
	for _, c := range creds {
		c, err := checkCredential(c)
		if err != nil {
			return "", err
		}
		for _, o := range cs {
			if o.Name == c.Name {
				return "", fmt.Errorf("egress: credential %q registered twice", c.Name)
			}
		}
		cs = append(cs, c)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("egress: token: %w", err)
	}
	token := "ckp_" + base64.RawURLEncoding.EncodeToString(raw[:])
	client := NewClient(pol, Limits{ConnectTimeout: p.opts.ConnectTimeout, Total: p.opts.RequestTimeout, Resolver: p.opts.Resolver})
	sb := &sandbox{
		id:        sandboxID,
		onRefuse:  onRefuse,
		tokenHash: sha256.Sum256([]byte(token)),
		creds:     cs,
		client:    client,
		transport: &http.Transport{
			Proxy:                  nil, // an environment proxy would bypass the address check
			DialContext:            client.dial,
			TLSHandshakeTimeout:    p.opts.ConnectTimeout,
			ResponseHeaderTimeout:  p.opts.RequestTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			DisableCompression:     true, // relay bytes as the upstream sent them
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        p.opts.IdleTimeout,
		},
		tunnels: make(map[net.Conn]struct{}),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", fmt.Errorf("egress: proxy: %w", net.ErrClosed)
	}
	if _, ok := p.sandboxes[sandboxID]; ok {
		return "", fmt.Errorf("egress: sandbox %q already registered", sandboxID)
	}
	p.sandboxes[sandboxID] = sb
	return token, nil
}

// Unregister removes a sandbox: its token stops working and its tunnels
// and idle connections are closed. Unknown IDs are ignored.
func (p *Proxy) Unregister(sandboxID string) {
	p.mu.Lock()
	sb := p.sandboxes[sandboxID]
	delete(p.sandboxes, sandboxID)
	p.mu.Unlock()
	if sb != nil {
		sb.close()
	}
}

func (sb *sandbox) close() {
	sb.mu.Lock()
	ts := sb.tunnels
	sb.tunnels = nil
	sb.mu.Unlock()
	for c := range ts {
		c.Close()
	}
	sb.transport.CloseIdleConnections()
}

// Serve accepts sandbox connections on l (a loopback TCP or Unix socket
// listener) until Close. It returns http.ErrServerClosed after Close.
func (p *Proxy) Serve(l net.Listener) error {
	return p.srv.Serve(l)
}

// Close stops every listener, closes every connection and tunnel and
// unregisters every sandbox.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	sbs := p.sandboxes
	p.sandboxes = map[string]*sandbox{}
	p.mu.Unlock()
	err := p.srv.Close()
	for _, sb := range sbs {
		sb.close()
	}
	return err
}

// authenticate returns the sandbox whose token r presents, or nil. Every
// registered token is compared, in constant time, whatever matches.
func (p *Proxy) authenticate(r *http.Request) *sandbox {
	token, ok := proxyToken(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	p.mu.Lock()
	defer p.mu.Unlock()
	var found *sandbox
	for _, sb := range p.sandboxes {
		if subtle.ConstantTimeCompare(h[:], sb.tokenHash[:]) == 1 {
			found = sb
		}
	}
	return found
}

// proxyToken extracts the token from a Proxy-Authorization value: Bearer
// TOKEN, or Basic with TOKEN as the password (the user name is ignored).
func proxyToken(v string) (string, bool) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		return rest, rest != ""
	case "basic":
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pw, ok := strings.Cut(string(b), ":")
		return pw, ok && pw != ""
	}
	return "", false
}

// ServeHTTP handles one proxy request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sb := p.authenticate(r)
	if sb == nil {
		w.Header().Set("Proxy-Authenticate", `Basic realm="clawkeep"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		p.log.Info("egress proxy: unauthenticated request", "method", r.Method, "remote", r.RemoteAddr)
		return
	}
	r.Header.Del("Proxy-Authorization")
	if r.Method == http.MethodConnect {
		p.serveConnect(sb, w, r)
		return
	}
	p.serveHTTP(sb, w, r)
}

// refuse answers 403 with reason, which must not hold a path, query or
// credential (egress refusals name only the host).
func (p *Proxy) refuse(sb *sandbox, w http.ResponseWriter, r *http.Request, host string, err error) {
	reason := strings.TrimPrefix(unwrapBlocked(err).Error(), "egress: ")
	w.Header().Set(refusalHeader, reason)
	http.Error(w, reason, http.StatusForbidden)
	p.log.Info("egress proxy: refused", "sandbox", sb.id, "method", r.Method, "host", host, "reason", reason)
	if sb.onRefuse != nil {
		sb.onRefuse(host, reason)
	}
}

func (p *Proxy) fail(sb *sandbox, w http.ResponseWriter, r *http.Request, host string, status int, msg string, err error) {
	http.Error(w, msg, status)
	attrs := []any{"sandbox", sb.id, "method", r.Method, "host", host, "status", status}
	if err != nil {
		attrs = append(attrs, "err", stripURL(err).Error())
	}
	p.log.Info("egress proxy: failed", attrs...)
}

// hopHeaders are connection-level headers a proxy must not forward.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(name string) bool {
	for _, h := range hopHeaders {
		if h == name {
			return true
		}
	}
	return false
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

func (p *Proxy) serveHTTP(sb *sandbox, w http.ResponseWriter, r *http.Request) {
	if !r.URL.IsAbs() || r.URL.Host == "" {
		http.Error(w, "proxy requests must use an absolute http:// URL", http.StatusBadRequest)
		return
	}
	u := *r.URL // the URL checked is the URL sent
	u.Fragment, u.RawFragment = "", ""
	if err := sb.client.policy.CheckURL(&u); err != nil {
		p.refuse(sb, w, r, u.Host, err)
		return
	}
	host, err := ParseHost(u.Host, 80)
	if err != nil { // CheckURL accepted it; cannot happen
		p.refuse(sb, w, r, u.Host, err)
		return
	}
	removeHopHeaders(r.Header)
	var pairs []string
	if u.RawQuery != "" {
		pairs = strings.Split(u.RawQuery, "&")
	}
	injs, err := planInjections(sb.creds, host.Name(), &u, r.Header, pairs)
	if err != nil {
		p.refuse(sb, w, r, u.Host, err)
		return
	}

	if r.ContentLength > p.opts.MaxBodyBytes {
		p.fail(sb, w, r, u.Host, http.StatusRequestEntityTooLarge, "request body too large", nil)
		return
	}
	var body io.Reader = http.NoBody
	if r.ContentLength != 0 {
		data, err := io.ReadAll(io.LimitReader(r.Body, p.opts.MaxBodyBytes+1))
		if err != nil {
			p.fail(sb, w, r, u.Host, http.StatusBadRequest, "cannot read request body", err)
			return
		}
		if int64(len(data)) > p.opts.MaxBodyBytes {
			p.fail(sb, w, r, u.Host, http.StatusRequestEntityTooLarge, "request body too large", nil)
			return
		}
		if len(data) > 0 {
			body = bytes.NewReader(data)
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), p.opts.RequestTimeout)
	defer cancel()
	// A sandbox that stops reading must not hold the handler past the
	// request's time either.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(p.opts.RequestTimeout))
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://placeholder.invalid/", body)
	if err != nil {
		p.fail(sb, w, r, u.Host, http.StatusBadRequest, "invalid request", nil)
		return
	}
	out.URL = &u
	out.Host = u.Host
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // not Go's default
	}

	// The guard has passed; fetch and write each credential.
	for _, inj := range injs {
		s, err := inj.cred.Secret()
		if err != nil || !s.IsValid() {
			p.fail(sb, w, r, u.Host, http.StatusBadGateway, "credential unavailable", nil)
			return
		}
		err = inj.apply(out, pairs, s)
		// The request holds its own copy now (a string Wipe cannot reach);
		// the secret's buffer is not needed to write it.
		s.Wipe()
		if err != nil {
			p.fail(sb, w, r, u.Host, http.StatusBadGateway, "credential cannot be written", nil)
			return
		}
		if p.opts.OnUse != nil {
			p.opts.OnUse(CredentialUse{Sandbox: sb.id, Name: inj.cred.Name, Host: host.Name()})
		}
	}
	if len(pairs) > 0 {
		u.RawQuery = strings.Join(pairs, "&")
	}

	resp, err := sb.transport.RoundTrip(out)
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			p.refuse(sb, w, r, u.Host, err)
			return
		}
		p.fail(sb, w, r, u.Host, http.StatusBadGateway, "upstream unreachable", err)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	n, err := io.Copy(w, io.LimitReader(resp.Body, p.opts.MaxResponseBytes))
	p.log.Info("egress proxy: request", "sandbox", sb.id, "method", r.Method, "host", u.Host, "status", resp.StatusCode, "bytes", n, "credentials", len(injs))
	if err == nil && n == p.opts.MaxResponseBytes {
		// Truncated: abort the connection so the sandbox does not take a
		// cut body for a whole one.
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) serveConnect(sb *sandbox, w http.ResponseWriter, r *http.Request) {
	authority := r.Host
	if r.URL != nil && r.URL.Host != "" {
		authority = r.URL.Host
	}
	if _, port, err := net.SplitHostPort(authority); err != nil || port == "" {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	u := &url.URL{Scheme: "https", Host: authority}
	if err := sb.client.policy.CheckURL(u); err != nil {
		p.refuse(sb, w, r, authority, err)
		return
	}
	host, err := ParseHost(authority, 443)
	if err != nil {
		p.refuse(sb, w, r, authority, err)
		return
	}
	for i := range sb.creds {
		c := &sb.creds[i]
		if c.bound(host.Name()) && !c.AllowConnect {
			p.refuse(sb, w, r, authority, fmt.Errorf("%w: host %q has a bound credential and a CONNECT tunnel cannot carry it; send plain HTTP requests through the proxy", ErrBlocked, host.Name()))
			return
		}
	}
	rc := http.NewResponseController(w)
	dctx, cancel := context.WithTimeout(r.Context(), p.opts.ConnectTimeout)
	upstream, err := sb.client.dial(dctx, "tcp", authority)
	cancel()
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			p.refuse(sb, w, r, authority, err)
			return
		}
		p.fail(sb, w, r, authority, http.StatusBadGateway, "upstream unreachable", err)
		return
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		upstream.Close()
		p.fail(sb, w, r, authority, http.StatusInternalServerError, "cannot open tunnel", err)
		return
	}
	if !sb.track(conn, upstream) {
		conn.Close()
		upstream.Close()
		return
	}
	defer sb.untrack(conn, upstream)
	defer conn.Close()
	defer upstream.Close()
	p.log.Info("egress proxy: tunnel", "sandbox", sb.id, "host", authority)
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	deadline := time.Now().Add(p.opts.TunnelTimeout)
	done := make(chan struct{}, 2)
	go func() {
		// Bytes the server read past the CONNECT header belong upstream.
		var src io.Reader = conn
		if n := brw.Reader.Buffered(); n > 0 {
			src = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)
		}
		pipe(upstream, src, conn, p.opts.IdleTimeout, deadline)
		done <- struct{}{}
	}()
	go func() {
		pipe(conn, upstream, upstream, p.opts.IdleTimeout, deadline)
		done <- struct{}{}
	}()
	<-done
	// One side ended: close both so the other copy returns.
	conn.Close()
	upstream.Close()
	<-done
}

// pipe copies src to dst until EOF, an error, idle time without a read on
// rd (the connection under src) or a write to dst, or deadline.
func pipe(dst net.Conn, src io.Reader, rd net.Conn, idle time.Duration, deadline time.Time) {
	buf := make([]byte, 32<<10)
	for {
		d := time.Now().Add(idle)
		if d.After(deadline) {
			d = deadline
		}
		if rd.SetReadDeadline(d) != nil || dst.SetWriteDeadline(d) != nil {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (sb *sandbox) track(cs ...net.Conn) bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.tunnels == nil {
		return false
	}
	for _, c := range cs {
		sb.tunnels[c] = struct{}{}
	}
	return true
}

func (sb *sandbox) untrack(cs ...net.Conn) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, c := range cs {
		delete(sb.tunnels, c)
	}
}

var _ http.Handler = (*Proxy)(nil)
