package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/kernel"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// cmdEgress runs `clawkeep egress check`: one line per URL, in order:
// allow|block, a tab, the reason, a tab, the URL.
func cmdEgress(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "clawkeep egress: use 'check'")
		return 2
	}
	fs := flag.NewFlagSet("egress check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var hosts stringList
	fs.Var(&hosts, "allow-host", "allowed host (exact, or *.suffix); repeatable; without any, every public host is allowed")
	fromStdin := fs.Bool("stdin", false, "read URLs from standard input, one per line")
	policyFile := fs.String("policy", "", "a Sandbox primitive file, or a claw.yaml whose sandbox to use")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	p := egress.Policy{Mode: egress.AllowAll}
	switch {
	case *policyFile != "" && len(hosts) > 0:
		fmt.Fprintln(stderr, "clawkeep egress check: use --policy or --allow-host, not both")
		return 2
	case *policyFile != "":
		sb, err := loadSandbox(*policyFile)
		if err == nil {
			p, err = kernel.NetworkPolicy(sb)
		}
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep egress check: %v\n", err)
			return 2
		}
	case len(hosts) > 0:
		p = egress.Policy{Mode: egress.Allowlist, Hosts: hosts}
	}
	check := func(raw string) {
		verdict, reason := checkURL(&p, raw)
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", verdict, reason, raw)
	}
	for _, u := range fs.Args() {
		check(u)
	}
	if *fromStdin {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				check(line)
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "clawkeep egress: reading stdin: %v\n", err)
			return 2
		}
	}
	return 0
}

// loadSandbox reads a Sandbox file, or the sandbox of a claw.yaml (nil when
// it declares none: the most restrictive sandbox).
func loadSandbox(path string) (*manifest.Sandbox, error) {
	kind, err := manifest.LoadPrimitive(path)
	if err != nil {
		return nil, err
	}
	if kind == "Claw" {
		c, err := manifest.Load(path)
		if err != nil {
			return nil, err
		}
		return c.Sandbox, nil
	}
	return manifest.LoadSandbox(path)
}

// checkURL applies the same checks a tool's request gets: the URL, then
// every address its host resolves to (literal addresses need no DNS).
func checkURL(p *egress.Policy, raw string) (verdict, reason string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "block", "unparsable URL"
	}
	if err := p.CheckURL(u); err != nil {
		return "block", strings.TrimPrefix(err.Error(), "egress: blocked: ")
	}
	host := strings.Trim(u.Hostname(), "[]")
	if ip := net.ParseIP(host); ip != nil {
		return "allow", "public address"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return "block", "host does not resolve"
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return "block", strings.TrimPrefix(err.Error(), "egress: blocked: ")
		}
	}
	return "allow", fmt.Sprintf("resolves to %d public address(es)", len(addrs))
}
