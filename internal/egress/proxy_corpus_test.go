package egress

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSSRFCorpusThroughProxy sends every case the corpus refuses through
// the egress proxy, as a sandbox would: each must be refused, never
// forwarded. Allowed cases are not sent: they name public addresses, and
// tests reach nothing beyond 127.0.0.1.
func TestSSRFCorpusThroughProxy(t *testing.T) {
	proxy := NewProxy(ProxyOptions{Resolver: fakeLookup})
	t.Cleanup(func() { proxy.Close() })
	tokens := map[*Policy]string{}
	sent := 0
	for i, tc := range ssrfCorpus() {
		if tc.want == allow {
			continue
		}
		p := tc.p
		if p == nil {
			p = &open
		}
		if p.Mode != Allowlist && p.Mode != AllowAll {
			continue // a sandbox without network gets no proxy registration at all
		}
		if tokens[p] == "" {
			tok, err := proxy.Register(fmt.Sprintf("corpus-%d", i), *p, nil)
			if err != nil {
				t.Fatal(err)
			}
			tokens[p] = tok
		}
		raw := "GET " + tc.url + " HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer " + tokens[p] + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			continue // not even an HTTP request: the proxy's server answers 400
		}
		sent++
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, req)
		// 403 for refusals, 400 for requests that are not proxy requests
		// (no http(s) authority), 502 for names that resolve to nothing.
		switch rec.Code {
		case http.StatusForbidden, http.StatusBadRequest, http.StatusBadGateway:
		default:
			t.Errorf("%s (%s): proxy answered %d", tc.url, tc.why, rec.Code)
		}
	}
	if sent < 300 {
		t.Fatalf("only %d refused cases went through the proxy", sent)
	}
	t.Logf("%d refused corpus cases sent through the proxy, all refused", sent)
}
