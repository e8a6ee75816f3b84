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
	"syscall"
	"time"
)

// Limits bound one request.
type Limits struct {
	MaxBodyBytes   int64         // response bytes read; 0 = 1 MiB
	MaxRedirects   int           // 0 = 5
	ConnectTimeout time.Duration // 0 = 5 s
}

// Client sends HTTP requests that only reach what its Policy allows.
type Client struct {
	policy Policy
	limits Limits
	http   *http.Client // never nil
}

// NewClient returns a client whose every connection, redirects included,
// goes through p.
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
	c := &Client{policy: p, limits: l}
	dialer := &net.Dialer{
		Timeout: l.ConnectTimeout,
		// Control runs on the address the socket connects to, after DNS:
		// this is where rebinding and exotic encodings are finally refused.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse dial address %q", ErrBlocked, address)
			}
			return c.policy.CheckAddr(ap.Addr())
		},
	}
	transport := &http.Transport{
		Proxy:                  nil, // an environment proxy would bypass the address check
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    l.ConnectTimeout,
		ResponseHeaderTimeout:  30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // bounded bytes on the wire are bounded bytes read
	}
	c.http = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > c.limits.MaxRedirects {
				return fmt.Errorf("egress: more than %d redirects", c.limits.MaxRedirects)
			}
			return c.policy.CheckURL(req.URL)
		},
	}
	return c
}

// Response is a bounded HTTP response.
type Response struct {
	Status    int
	Body      []byte
	Truncated bool // the body was longer than the limit
}

// Do checks rawURL and sends the request. Refusals wrap ErrBlocked.
func (c *Client) Do(ctx context.Context, method, rawURL string, body io.Reader) (*Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid URL", ErrBlocked)
	}
	if err := c.policy.CheckURL(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			return nil, unwrapBlocked(err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.limits.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("egress: reading response: %w", err)
	}
	out := &Response{Status: resp.StatusCode, Body: data}
	if int64(len(data)) > c.limits.MaxBodyBytes {
		out.Body, out.Truncated = data[:c.limits.MaxBodyBytes], true
	}
	return out, nil
}

// unwrapBlocked strips the url.Error and net.OpError layers so the message
// names the refusal, not the dial plumbing.
func unwrapBlocked(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || !errors.Is(next, ErrBlocked) {
			return err
		}
		err = next
	}
}
