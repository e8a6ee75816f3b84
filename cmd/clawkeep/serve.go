package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/identity"
	"github.com/clawkeep/clawkeep/internal/ratelimit"
	"github.com/clawkeep/clawkeep/internal/server"
	"github.com/clawkeep/clawkeep/internal/tenant"
)

// prefixes is a repeatable --trusted-proxy flag.
type prefixes []netip.Prefix

func (p *prefixes) String() string { return fmt.Sprint(*p) }
func (p *prefixes) Set(s string) error {
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return err
		}
		pf = netip.PrefixFrom(a, a.BitLen())
	}
	*p = append(*p, pf.Masked())
	return nil
}

// defaultServeDir is where serve keeps its data without --data-dir: as
// root, /var/lib/clawkeep, whose parents the workers (under their own
// uids) can pass through, unlike root's home; otherwise the user's state
// directory.
func defaultServeDir() string {
	if os.Getenv("CLAWKEEP_DATA_DIR") == "" && os.Geteuid() == 0 {
		return "/var/lib/clawkeep"
	}
	return defaultDataDir()
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7450", "address to serve the HTTP API on")
	dataDir := fs.String("data-dir", defaultServeDir(), "data root (identity, one directory per organisation)")
	uidBase := fs.Uint("worker-uid-base", 200000, "as root, run each organisation's worker as uid/gid BASE+org id; 0 keeps root's uid")
	idle := fs.Duration("idle-timeout", 10*time.Minute, "stop a worker after this long without requests")
	perIP := fs.Float64("rate-per-ip", 0, "request tokens per second per client IP (0 = default)")
	ipBurst := fs.Int("burst-per-ip", 0, "burst per client IP (0 = default)")
	perOrg := fs.Float64("rate-per-org", 0, "request tokens per second per organisation (0 = default)")
	orgBurst := fs.Int("burst-per-org", 0, "burst per organisation (0 = default)")
	var trusted prefixes
	fs.Var(&trusted, "trusted-proxy", "address or CIDR of a reverse proxy whose client-IP header is believed (repeatable)")
	ipHeader := fs.String("client-ip-header", "X-Forwarded-For", "header a trusted proxy puts the client address in")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "clawkeep serve: %v\n", err)
		return 2
	}
	if uint64(*uidBase) > 1<<31 {
		return fail(errors.New("--worker-uid-base too large"))
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fail(err)
	}
	supDir := filepath.Join(*dataDir, "supervisor")
	if err := os.MkdirAll(supDir, 0o700); err != nil {
		return fail(err)
	}
	ids, err := identity.Open(filepath.Join(supDir, "identity.db"), identity.Options{})
	if err != nil {
		return fail(err)
	}
	defer ids.Close()
	log, err := audit.Open(supDir, audit.Options{Tenant: "supervisor"})
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, "clawkeep: "+f+"\n", a...) }
	sup, err := tenant.NewSupervisor(tenant.SupervisorConfig{
		Root: *dataDir, Command: []string{exe}, UIDBase: uint32(*uidBase), IdleTimeout: *idle, Logf: logf,
	})
	if err != nil {
		return fail(err)
	}
	defer sup.Close()
	var proxy *ratelimit.Proxy
	if len(trusted) > 0 {
		proxy = &ratelimit.Proxy{Trusted: trusted, Header: *ipHeader}
	}
	limiter := ratelimit.New(ratelimit.Config{PerIP: rate.Limit(*perIP), IPBurst: *ipBurst, PerOrg: rate.Limit(*perOrg), OrgBurst: *orgBurst})
	api, err := server.New(server.Config{Identity: ids, Tenants: sup, Limiter: limiter, Proxy: proxy, Audit: log, Version: version, Logf: logf})
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(err)
	}
	// The one secret serve prints: the first owner needs it, and it
	// works once.
	token, err := ids.Bootstrap()
	if err != nil {
		ln.Close()
		return fail(err)
	}
	fmt.Fprintf(stderr, "clawkeep %s: serving the API on http://%s (data in %s)\n", version, ln.Addr(), *dataDir)
	if token != "" {
		fmt.Fprintf(stderr, "clawkeep: no users yet. Bootstrap token for the first owner (valid 24 h, works once):\n%s\n", token)
		fmt.Fprintf(stderr, "clawkeep: e.g. echo 'a long password' | clawkeep bootstrap --server http://%s --token <the token above> --email you@example.com\n", ln.Addr())
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    server.MaxHeaderBytes,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fail(err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}
