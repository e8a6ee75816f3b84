package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/sandbox"
	"github.com/clawkeep/clawkeep/internal/sandbox/wasm"
)

// cmdSandbox runs one command under a sandbox, for operators debugging a
// profile and for tests. The job's output follows on stdout and stderr
// once it ends; with --report json one JSON object closes stderr. The exit
// code is the job's, 125 when the sandbox refused it, 137 when a meter or
// limit killed it.
func cmdSandbox(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(stderr, "usage: clawkeep sandbox run --level process|container|wasm [flags] -- COMMAND [ARG...] | MODULE.wasm [FUNCTION]")
		return 2
	}
	fs := flag.NewFlagSet("sandbox run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("level", "process", "process, container or wasm")
	memMB := fs.Int64("memory-mb", 512, "memory limit in MiB")
	timeout := fs.Duration("timeout", 30*time.Second, "wall-clock limit")
	cpuSec := fs.Int("cpu-seconds", 0, "CPU-time limit in seconds (0: the wall-clock limit)")
	fuel := fs.Uint64("fuel", 0, "wasm: instruction budget (0: unlimited; the wall clock still applies)")
	network := fs.String("network", "deny", "deny or allowlist")
	maxOut := fs.Int64("max-output-bytes", 1<<20, "stdout and stderr limit, each")
	report := fs.String("report", "", "json: write a report object to stderr at the end")
	var hosts, mounts stringList
	fs.Var(&hosts, "allow-host", "host the job may reach through the egress proxy (repeatable; with --network allowlist)")
	fs.Var(&mounts, "mount", "PATH:ro or PATH:rw to show the job (repeatable); the first is the working directory")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "clawkeep sandbox run: nothing to run")
		return 2
	}
	if *report != "" && *report != "json" {
		fmt.Fprintf(stderr, "clawkeep sandbox run: --report %q: only json is supported\n", *report)
		return 2
	}
	lvl, err := sandbox.ParseLevel(*level)
	if err != nil {
		fmt.Fprintln(stderr, "clawkeep sandbox run:", err)
		return 2
	}
	if *fuel != 0 && lvl != sandbox.LevelWASM {
		fmt.Fprintln(stderr, "clawkeep sandbox run: --fuel applies to --level wasm only")
		return 2
	}
	cfg := sandbox.Config{
		Level: lvl,
		Limits: sandbox.Limits{
			Wall: *timeout, CPU: time.Duration(*cpuSec) * time.Second,
			MemoryBytes: *memMB << 20, MaxOutput: *maxOut,
		},
		Network: sandbox.Network{Policy: egress.Policy{Mode: egress.Deny}},
	}
	for _, m := range mounts {
		path, mode, ok := strings.Cut(m, ":")
		abs, aerr := filepath.Abs(path)
		if !ok || (mode != "ro" && mode != "rw") || aerr != nil {
			fmt.Fprintf(stderr, "clawkeep sandbox run: --mount %q: want PATH:ro or PATH:rw\n", m)
			return 2
		}
		cfg.Mounts = append(cfg.Mounts, sandbox.Mount{Path: abs, Writable: mode == "rw"})
	}
	switch *network {
	case "deny":
		if len(hosts) > 0 {
			fmt.Fprintln(stderr, "clawkeep sandbox run: --allow-host needs --network allowlist")
			return 2
		}
	case "allowlist":
		if len(hosts) == 0 {
			fmt.Fprintln(stderr, "clawkeep sandbox run: --network allowlist needs at least one --allow-host")
			return 2
		}
		proxy := egress.NewProxy(egress.ProxyOptions{})
		defer proxy.Close()
		cfg.Network = sandbox.Network{Policy: egress.Policy{Mode: egress.Allowlist, Hosts: hosts}, Proxy: proxy}

	default:
		fmt.Fprintf(stderr, "clawkeep sandbox run: --network %q: want deny or allowlist\n", *network)
		return 2
	}
	input, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
	if err != nil {
		fmt.Fprintln(stderr, "clawkeep sandbox run: stdin:", err)
		return 2
	}
	// Interrupted, the run still kills its job and reports.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rep *sandbox.Report
	if lvl == sandbox.LevelWASM {
		rep, err = runWASM(ctx, cfg, *fuel, fs.Args(), input)
	} else {
		var sb sandbox.Sandbox
		if sb, err = sandbox.New(cfg); err == nil {
			rep, err = sb.Run(ctx, sandbox.Job{Argv: fs.Args(), Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8"}, Stdin: input})
		}
	}
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) {
			rep = &sandbox.Report{Level: lvl, Outcome: sandbox.Refused, ExitCode: -1, Reason: err.Error()}
		} else {
			fmt.Fprintln(stderr, "clawkeep sandbox run:", err)
			return 2
		}
	}
	stdout.Write(rep.Stdout)
	stderr.Write(rep.Stderr)
	if rep.Outcome == sandbox.Refused && *report == "" {
		fmt.Fprintln(stderr, "clawkeep sandbox run: refused:", rep.Reason)
	}
	if *report == "json" {
		b, _ := json.Marshal(rep)
		fmt.Fprintf(stderr, "%s\n", b)
	}
	switch rep.Outcome {
	case sandbox.Refused:
		return 125
	case sandbox.Killed:
		return 137
	}
	return rep.ExitCode
}

// runWASM runs MODULE.wasm [FUNCTION] with the same limits. The module is
// the operator's own file, so its pin is its own hash; the report names it.
func runWASM(ctx context.Context, cfg sandbox.Config, fuel uint64, args []string, stdin []byte) (*sandbox.Report, error) {
	if len(args) > 2 {
		return nil, errors.New("wasm: want MODULE.wasm [FUNCTION]")
	}
	code, err := os.ReadFile(args[0])
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	sum := sha256.Sum256(code)
	engine, err := wasm.NewEngine(wasm.EngineOptions{})
	if err != nil {
		return nil, err
	}
	defer engine.Close()
	m, err := engine.Load(code, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	call := wasm.Call{
		Function: "_start", Args: []string{filepath.Base(args[0])}, Stdin: stdin,
		Limits: wasm.Limits{Fuel: fuel, Deadline: cfg.Limits.Wall, MemoryBytes: cfg.Limits.MemoryBytes, MaxOutputBytes: cfg.Limits.MaxOutput},
	}
	if len(args) == 2 {
		call.Function = args[1]
	}
	if len(cfg.Mounts) > 0 {
		call.Workspace, call.ReadOnlyWorkspace = cfg.Mounts[0].Path, !cfg.Mounts[0].Writable
	}
	if cfg.Network.Policy.Mode == egress.Allowlist {
		call.HTTP = egress.NewClient(cfg.Network.Policy, egress.Limits{})
	}
	res, err := engine.Run(ctx, m, call)
	if err != nil {
		return &sandbox.Report{Level: sandbox.LevelWASM, Outcome: sandbox.Refused, ExitCode: -1, Reason: err.Error()}, nil
	}
	return sandbox.FromWASM(res, cfg.Limits.Wall), nil
}
