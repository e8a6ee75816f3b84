package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrTooManyRedirects is wrapped when a response chain has more redirects
// than Limits.MaxRedirects.
var ErrTooManyRedirects = errors.New("egress: too many redirects")

// LookupFunc resolves a host name to addresses, like
// (*net.Resolver).LookupNetIP(ctx, "ip", host). Its answers are checked, so
// a hostile or rebinding resolver cannot widen what a Client reaches.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// Limits bound one request.
type Limits struct {
	MaxBodyBytes   int64         // response bytes read; 0 = 1 MiB
	MaxRedirects   int           // 0 = 5
	ConnectTimeout time.Duration // per connection attempt, TLS handshake included; 0 = 5 s
	Total          time.Duration // whole request, body read included; 0 = 30 s
	// Resolver resolves host names; nil uses net.DefaultResolver. Tests
	// inject a fake here: no test needs real DNS.
	Resolver LookupFunc
}

// Client sends HTTP requests that only reach what its Policy allows.
type Client struct {
	policy Policy
	limits Limits       // defaults filled in
	http   *http.Client // never nil
	// connect opens a connection to an address that passed the policy
	// check. Test knob: tests replace it to see the address without
	// touching the network; it must not be changed after the first Do.
	connect func(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error)
}

// NewClient returns a client whose every connection, redirects included,
// goes through p. p and l are copied.
func NewClient(p Policy, l Limits) *Client {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxRedirects <= 0 {
		l.MaxRedirects = 5
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 5 * time.Second
	}
	if l.Total <= 0 {
		l.Total = 30 * time.Second
	}
	if l.Resolver == nil {
		l.Resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	p.Hosts = append([]string(nil), p.Hosts...)
	p.Exempt = append([]netip.Prefix(nil), p.Exempt...)
	p.Ports = append([]uint16(nil), p.Ports...)
	c := &Client{policy: p, limits: l}
	dialer := &net.Dialer{
		Timeout: l.ConnectTimeout,
		// Control runs on the address the socket connects to. dial already
		// checked it; this second check keeps the guarantee if dial changes.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse dial address", ErrBlocked)
			}
			return c.policy.CheckAddrPort(ap)
		},
	}
	c.connect = func(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
		return dialer.DialContext(ctx, network, ap.String())
	}
	transport := &http.Transport{
		Proxy:                  nil, // an environment proxy would bypass the address check
		DialContext:            c.dial,
		TLSHandshakeTimeout:    l.ConnectTimeout,
		ResponseHeaderTimeout:  l.Total,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // bounded bytes on the wire are bounded bytes read
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	c.http = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > c.limits.MaxRedirects {
				return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, c.limits.MaxRedirects)
			}
			return c.policy.CheckURL(req.URL)
		},
	}
	return c
}

// dial resolves address once, refuses it unless every answer passes the
// policy, and connects only to those checked addresses, in order.
func (c *Client) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse dial address", ErrBlocked)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%w: invalid port", ErrBlocked)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		// The transport passes the URL's host; check its form again so a
		// name never reaches the resolver unless CheckURL would accept it.
		if _, err := ParseHost(host, uint16(port)); err != nil {
			return nil, err
		}
		lctx, cancel := context.WithTimeout(ctx, c.limits.ConnectTimeout)
		addrs, err = c.limits.Resolver(lctx, host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("egress: resolving %q: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("egress: %q has no addresses", host)
		}
	}
	// Refuse the name if any answer is refused: a name that points into
	// private space is hostile, and trying the next answer would let a
	// slow or failing public answer fall through to it.
	for _, a := range addrs {
		if err := c.policy.CheckAddrPort(netip.AddrPortFrom(a, uint16(port))); err != nil {
			return nil, fmt.Errorf("%w (resolved from %q)", err, host)
		}
	}
	var errs []error
	for _, a := range addrs {
		cctx, cancel := context.WithTimeout(ctx, c.limits.ConnectTimeout)
		conn, err := c.connect(cctx, network, netip.AddrPortFrom(a.WithZone("").Unmap(), uint16(port)))
		cancel() // a connected net.Conn outlives its dial context
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Response is a bounded HTTP response.
type Response struct {
	Status    int
	Body      []byte
	Truncated bool // the body was longer than the limit
}

// Do checks rawURL and sends the request. Refusals wrap ErrBlocked. Errors
// name the method and host, never the URL's path, query or userinfo.
func (c *Client) Do(ctx context.Context, method, rawURL string, body io.Reader) (*Response, error) {
	return c.DoHeader(ctx, method, rawURL, nil, body)
}

// DoHeader is Do with request headers (copied). Through a proxied client,
// a header value may be a credential placeholder ({{cred:NAME}}) that the
// proxy fills in at the boundary.
func (c *Client) DoHeader(ctx context.Context, method, rawURL string, header http.Header, body io.Reader) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.limits.Total)
	defer cancel()
	// The request's own parsed URL is the one checked and the one used.
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid request or URL", ErrBlocked)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if err := c.policy.CheckURL(req.URL); err != nil {
		return nil, err
	}
	host := req.URL.Host
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			return nil, unwrapBlocked(err)
		}
		return nil, fmt.Errorf("egress: %s %s: %w", method, host, stripURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.limits.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("egress: reading response from %s: %w", host, err)
	}
	out := &Response{Status: resp.StatusCode, Body: data}
	if int64(len(data)) > c.limits.MaxBodyBytes {
		out.Body, out.Truncated = data[:c.limits.MaxBodyBytes], true
	}
	return out, nil
}

// unwrapBlocked strips the url.Error and net.OpError layers so the message
// names the refusal, not the dial plumbing (and not the URL).
func unwrapBlocked(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || next == ErrBlocked || !errors.Is(next, ErrBlocked) {
			return err
		}
		err = next
	}
}

// stripURL removes the *url.Error layer, whose message holds the full URL
// (a query may carry a token).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
