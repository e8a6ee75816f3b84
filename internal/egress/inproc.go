package egress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// NewProxiedClient returns a client for in-process tools whose requests go
// through proxy as the registered sandbox token: the same guard, the same
// checking dialer and the only place credentials are attached. Requests are
// handed to the proxy's handler directly, with no socket in between.
// Redirects are followed by the client, each hop through the proxy again.
func NewProxiedClient(proxy *Proxy, token string, p Policy, l Limits) *Client {
	c := NewClient(p, l)
	c.http.Transport = &inProcess{proxy: proxy, token: token, max: c.limits.MaxBodyBytes}
	return c
}

// inProcess is an http.RoundTripper that serves requests with the proxy's
// handler, as a proxy client would send them (absolute URI, credentials).
type inProcess struct {
	proxy *Proxy
	token string
	max   int64
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.RequestURI = req.URL.String()
	r.Header.Set("Proxy-Authorization", "Bearer "+t.token)
	if r.Body == nil {
		r.Body = http.NoBody
	}
	w := &bufferedResponse{header: http.Header{}, max: t.max}
	t.proxy.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status == http.StatusForbidden {
		reason := w.header.Get("X-Clawkeep-Refusal")
		if reason == "" {
			reason = "refused by the egress proxy"
		}
		return nil, fmt.Errorf("%w: %s", ErrBlocked, reason)
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// bufferedResponse collects the proxy's response, keeping at most max+1
// body bytes (the client reports truncation).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	max    int64
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if room := b.max + 1 - int64(b.body.Len()); room > 0 {
		if int64(len(p)) > room {
			b.body.Write(p[:room])
		} else {
			b.body.Write(p)
		}
	}
	return len(p), nil
}
