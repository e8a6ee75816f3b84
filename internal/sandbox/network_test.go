package sandbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/egress/egresstest"
)

// TestNetworkOnlyThroughTheProxy: with network granted, a job reaches an
// allowed service through the egress proxy, with a credential the proxy
// injects and the job never sees; metadata is refused by the proxy even
// under allow-all; a client that ignores the proxy has no route.
func TestNetworkOnlyThroughTheProxy(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		unavailable(t, "curl is not installed")
	}
	const token = "sk-live-sandbox-test-4b1d"
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, "hello from the api")
	}))
	defer api.Close()
	cred := egresstest.BearerCredential(t, "api", token, "127.0.0.1")
	proxy := egress.NewProxy(egress.ProxyOptions{})
	defer proxy.Close()

	levels(t, func(t *testing.T, lvl Level) {
		s := newSetup(t, lvl)
		s.cfg.Network = Network{
			Policy:      egress.Policy{Mode: egress.AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
			Proxy:       proxy,
			Credentials: []egress.Credential{cred},
		}
		r := s.run(t, "curl", "-sS", "-m", "5", "-H", "Authorization: {{cred:api}}", api.URL+"/v1")
		if string(r.Stdout) != "hello from the api" {
			t.Fatalf("through the proxy: %+v %q", r, output(r))
		}
		if strings.Contains(output(r), token) {
			t.Fatal("the job saw the credential")
		}
		r = s.run(t, "sh", "-c", "env; curl -sS -m 5 -i http://169.254.169.254/latest/meta-data/")
		if !strings.Contains(string(r.Stdout), "403") || !strings.Contains(output(r), "169.254.169.254") {
			t.Fatalf("metadata through the proxy: %q", output(r))
		}
		if strings.Contains(output(r), token) {
			t.Fatal("the job's environment holds the credential")
		}
		if len(r.NetworkRefusals) != 1 || !strings.Contains(r.NetworkRefusals[0], "169.254.169.254") {
			t.Fatalf("refusals %q", r.NetworkRefusals)
		}
		r = s.run(t, "curl", "-sS", "-m", "5", "--noproxy", "*", api.URL)
		mustFail(t, r, "Couldn't connect", "Failed to connect")
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "Bearer "+token {
		t.Fatalf("the api saw %q", seen)
	}
}
