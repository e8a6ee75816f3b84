// Command clawkeep is the security kernel for AI agents: every tool call an
// agent makes is decided, isolated, metered and recorded here.
//
// Subcommands only parse flags and call internal packages.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/clawkeep/clawkeep/internal/agent"
	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/kernel"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/tenant"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

//go:embed default.claw.yaml
var defaultManifest []byte

const usage = `clawkeep: a security kernel for AI agents (CKP %s)

Usage:
  clawkeep run [--manifest FILE] [--data-dir DIR]   serve CKP on stdin/stdout
  clawkeep validate FILE...                         check manifests and primitive files
  clawkeep audit verify [--data-dir DIR]            check the audit hash chain
  clawkeep audit tail [--data-dir DIR] [-n N]       print recent audit records
  clawkeep egress check [--policy FILE | --allow-host H...] [--stdin] [URL...]
                                                    would the network guard allow these URLs?
  clawkeep vault put NAME --type T [--file F]       store a credential (value from stdin or F)
  clawkeep vault list | rm NAME | rotate-key --new-key-file F
  clawkeep scan secrets --jsonl                     find secrets in lines of {"text": ...}
  clawkeep scan injection --jsonl [--threshold X]   find prompt injections in lines of {"text": ...}
  clawkeep sandbox run --level process|container|wasm [--memory-mb N] [--timeout D]
      [--cpu-seconds N] [--fuel N] [--network deny|allowlist] [--allow-host H]...
      [--mount PATH:ro|rw]... [--report json] -- COMMAND [ARG...] | MODULE.wasm [FUNCTION]
                                                    run one thing under a sandbox
  clawkeep serve [--listen ADDR] [--data-dir DIR]   serve the multi-tenant HTTP API (workers per organisation;
                                                    data in /var/lib/clawkeep as root)
  clawkeep bootstrap | login | logout | org | user | member | token | agent | ability |
           credential | approvals | audit verify|export --org O
                                                    talk to a server (--server URL, --token T,
                                                    or $CLAWKEEP_SERVER, $CLAWKEEP_TOKEN, or the
                                                    file 'clawkeep login' writes)
  clawkeep version

The data directory defaults to $CLAWKEEP_DATA_DIR, else ~/.local/state/clawkeep.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 success, 1 a negative answer
// (invalid manifest, broken chain), 2 a usage or runtime error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, ckp.ProtocolVersion)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdin, stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdin, stdout, stderr)
	case "egress":
		return cmdEgress(args[1:], stdin, stdout, stderr)
	case "vault":
		return cmdVault(args[1:], stdin, stdout, stderr)
	case "scan":
		return cmdScan(args[1:], stdin, stdout, stderr)
	case "sandbox":
		return cmdSandbox(args[1:], stdin, stdout, stderr)
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "worker":
		return tenant.WorkerMain(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "clawkeep %s (CKP %s)\n", version, ckp.ProtocolVersion)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, ckp.ProtocolVersion)
		return 0
	}
	if code, ok := clientCommand(args[0], args[1:], stdin, stdout, stderr); ok {
		return code
	}
	fmt.Fprintf(stderr, "clawkeep: unknown command %q\n\n"+usage, args[0], ckp.ProtocolVersion)
	return 2
}

func defaultDataDir() string {
	if d := os.Getenv("CLAWKEEP_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "clawkeep")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".clawkeep"
	}
	return filepath.Join(home, ".local", "state", "clawkeep")
}

func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manifestPath := fs.String("manifest", "", "claw.yaml to run (default: the embedded default agent)")
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory (audit chain, approvals, workspaces)")
	tenant := fs.String("tenant", "local", "tenant (organisation) name recorded in the audit chain")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	def, err := manifest.Parse(defaultManifest, manifest.Options{File: "default.claw.yaml"})
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep: internal error: embedded manifest: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintf(stderr, "clawkeep: data dir: %v\n", err)
		return 2
	}
	log, err := audit.Open(*dataDir, audit.Options{Tenant: *tenant})
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep: %v\n", err)
		return 2
	}
	defer log.Close()
	var pinned *manifest.Claw
	if *manifestPath != "" {
		// A manifest refused here (a wasm module that is not the pinned
		// one, a level this host cannot give) is recorded, then run stops.
		if pinned, err = manifest.Load(*manifestPath); err == nil {
			if err = kernel.Check(pinned); err != nil {
				err = fmt.Errorf("%s: %w", *manifestPath, err)
			}
		}
		if err != nil {
			reason := err.Error()
			if len(reason) > 1024 {
				reason = reason[:1024] + "..."
			}
			log.Append(context.Background(), audit.Record{Tenant: *tenant, Event: "manifest", Decision: "refused", Detail: map[string]string{"reason": reason}})
			fmt.Fprintf(stderr, "clawkeep: %v\n", err)
			return 1
		}
	}
	approvals, err := approval.Open(filepath.Join(*dataDir, "approvals.db"), approval.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep: %v\n", err)
		return 2
	}
	defer approvals.Close()
	if err := agent.Recover(context.Background(), *tenant, log, approvals); err != nil {
		fmt.Fprintf(stderr, "clawkeep: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The vault opens only if the manifest binds credentials: a first start
	// that needs none writes no master key.
	var (
		vaultOnce sync.Once
		vlt       *vault.Vault
		vaultErr  error
	)
	defer func() {
		if vlt != nil {
			vlt.Close()
		}
	}()
	secrets := func(name string) (*vault.Secret, error) {
		vaultOnce.Do(func() {
			vlt, vaultErr = vault.Open(*dataDir, vault.Options{MasterKeyFile: os.Getenv("CLAWKEEP_MASTER_KEY_FILE")})
		})
		if vaultErr != nil {
			return nil, vaultErr
		}
		return vlt.Get(*tenant, name)
	}
	h := agent.New(agent.Config{
		Tenant: *tenant, DataDir: *dataDir, Manifest: pinned, Default: def,
		Audit: log, Approvals: approvals, Decider: "operator (ckp stdio)", Secrets: secrets,
	})
	which := fmt.Sprintf("pinned manifest %s", *manifestPath)
	if pinned == nil {
		which = fmt.Sprintf("the manifest sent in claw.initialize, or claw://local/claw/%s (embedded default)", def.Name)
	}
	fmt.Fprintf(stderr, "clawkeep %s: CKP %s on stdin/stdout, running %s; data in %s\n",
		version, ckp.ProtocolVersion, which, *dataDir)
	srv := &ckp.Server{Handler: h, Logf: func(format string, a ...any) { fmt.Fprintf(stderr, "clawkeep: "+format+"\n", a...) }}
	if err := srv.Serve(ctx, stdin, stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "clawkeep: %v\n", err)
		return 2
	}
	return 0
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "clawkeep validate: name at least one file")
		return 2
	}
	code := 0
	for _, path := range args {
		kind, err := manifest.LoadPrimitive(path)
		if err == nil && kind == "Claw" {
			var claw *manifest.Claw
			if claw, err = manifest.Load(path); err == nil {
				err = kernel.Check(claw)
			}
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s: invalid\n%v\n", path, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: valid %s\n", path, kind)
	}
	return code
}

func cmdAudit(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// With --org the chain is an organisation's on a server: ask it.
	for _, a := range args {
		if a == "--org" || strings.HasPrefix(a, "--org=") || a == "-org" || strings.HasPrefix(a, "-org=") {
			code, _ := clientCommand("remote-audit", args, stdin, stdout, stderr)
			return code
		}
	}
	if len(args) == 0 || (args[0] != "verify" && args[0] != "tail") {
		fmt.Fprintln(stderr, "clawkeep audit: use 'verify' or 'tail' (local), or 'verify' or 'export' with --org (server)")
		return 2
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory")
	n := fs.Int("n", 20, "records to print (tail)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if _, err := os.Stat(filepath.Join(*dataDir, "audit.db")); err != nil {
		fmt.Fprintf(stderr, "clawkeep audit: no audit log in %s\n", *dataDir)
		return 2
	}
	if args[0] == "tail" {
		recs, err := audit.ReadTail(*dataDir, *n)
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep audit: %v\n", err)
			return 2
		}
		for _, r := range recs {
			fmt.Fprintln(stdout, formatRecord(r))
		}
		return 0
	}
	rep, err := audit.Verify(*dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep audit: %v\n", err)
		return 2
	}
	if !rep.OK {
		fmt.Fprintf(stdout, "audit chain BROKEN at seq %d: %s\n", rep.FirstBad, rep.Problem)
		return 1
	}
	fmt.Fprintf(stdout, "audit chain intact: %d records, last seq %d, %d signed checkpoints\n", rep.Records, rep.LastSeq, rep.Checkpoints)
	return 0
}

func formatRecord(r audit.Record) string {
	s := fmt.Sprintf("%d %s %s agent=%s event=%s tool=%s", r.Seq, r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Tenant, r.Agent, r.Event, r.Tool)
	for _, kv := range [][2]string{{"request_id", r.RequestID}, {"decision", r.Decision}, {"rule", r.Rule}, {"outcome", r.Outcome}} {
		if kv[1] != "" {
			s += " " + kv[0] + "=" + kv[1]
		}
	}
	if r.CostTokens != 0 {
		s += fmt.Sprintf(" cost_tokens=%d", r.CostTokens)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Detail)) {
		s += fmt.Sprintf(" %s=%q", k, r.Detail[k])
	}
	return s
}
