// Command serve measures `clawkeep serve` under load: cheap reads, tool
// calls, worker cold starts, idle worker memory and how many organisations
// can be active at once on this machine.
//
//	go run ./bench/serve                 # N=1 and N=50, ~20 cold starts, up to 1000 active orgs
//	go run ./bench/serve -max-orgs 200   # a shorter capacity step
//
// It builds the clawkeep binary into a fresh 0755 directory, starts serve
// on a free 127.0.0.1 port over a fresh 0711 data root with rate limits
// raised out of the way (otherwise the figures would count 429s), and
// drives it with wrk (-t2 -c64 -d10s by default) through read.lua and
// call.lua, which sit next to this file and are embedded. It prints a
// Markdown summary on stdout and progress on stderr.
//
// This machine class is often shared: each wrk measurement runs -repeat
// times (default 3), each after waiting (up to -quiet-wait) for the CPUs
// to be mostly idle, and the report gives the median run, every run's
// rate, and how much CPU other processes used during the run.
//
// A figure is marked INVALID when any request failed (non-2xx, socket
// error or, for tool calls, a JSON-RPC error): wrk counts failed requests
// in its throughput, so a fast error path would otherwise look like speed.
//
// wrk runs on the same machine as the server and takes CPU from it; the
// load average before each measurement is recorded because the machine
// may be shared.
//
// # Threat model
//
// None beyond hygiene: the program only talks to the server it started on
// 127.0.0.1. The tokens it creates are written to 0600 files in its own
// temporary directory (wrk reads them from there, so they never appear on
// a command line or in the output) and removed at the end.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed read.lua
var readLua []byte

//go:embed call.lua
var callLua []byte

const (
	ownerEmail    = "bench-owner@example.com"
	ownerPassword = "bench owner password 123"
	agentName     = "helper" // metadata.name of examples/helper.claw.yaml
)

type options struct {
	orgCounts []int // e.g. 1 and 50
	threads   int
	conns     int
	duration  time.Duration
	cold      int           // fresh orgs timed for the cold start
	maxOrgs   int           // capacity step: stop at this many active orgs
	minAvail  int64         // capacity step: stop when MemAvailable falls below this (bytes)
	capBudget time.Duration // capacity step: time bound
	idleWait  time.Duration
	wrk       string
	keep      bool
	repeat    int
	quiet     float64       // wait for less than this share of the CPUs busy before a run
	quietWait time.Duration // but no longer than this
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench/serve: ")
	var o options
	counts := flag.String("orgs", "1,50", "organisation counts for the read and tool-call runs")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.conns, "c", 64, "wrk connections")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "wrk duration per run")
	flag.IntVar(&o.cold, "cold", 20, "fresh organisations timed for worker start")
	flag.IntVar(&o.maxOrgs, "max-orgs", 1000, "capacity step: stop at this many active organisations (0 skips the step)")
	minGiB := flag.Float64("min-avail-gib", 4, "capacity step: stop when MemAvailable drops below this many GiB")
	flag.DurationVar(&o.capBudget, "cap-budget", 5*time.Minute, "capacity step: time bound")
	flag.DurationVar(&o.idleWait, "idle-wait", 5*time.Second, "how long workers sit idle before memory is read")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.IntVar(&o.repeat, "repeat", 3, "runs per wrk measurement; the median is reported")
	quietPct := flag.Float64("quiet", 25, "before each wrk run, wait until less than this percentage of the CPUs is busy")
	flag.DurationVar(&o.quietWait, "quiet-wait", 30*time.Second, "longest wait for a quiet machine before each wrk run")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binary, data root, serve log)")
	flag.Parse()
	for f := range strings.SplitSeq(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-orgs: bad count %q", f)
		}
		o.orgCounts = append(o.orgCounts, n)
	}
	o.minAvail = int64(*minGiB * (1 << 30))
	o.quiet = *quietPct / 100
	if o.repeat < 1 {
		log.Fatal("-repeat must be at least 1")
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// bench is one run: the serve process it started and what it knows.
type bench struct {
	o      options
	tmp    string // 0755; holds bin/, data/ (0711), secret files and serve.log
	bin    string
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	client *http.Client
	owner  string // the owner's session token; never printed
	report *report
}

// org is one benchmark organisation and its tokens (never printed).
type org struct {
	name   string
	viewer string // API token, role viewer
	agent  string // agent token for agentName
}

func run(o options) (err error) {
	tmp, err := os.MkdirTemp("", "clawkeep-loadbench-")
	if err != nil {
		return err
	}
	// Workers run under their own uids: they must be able to traverse to
	// the binary and to their data directories.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if o.keep {
		log.Printf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &bench{o: o, tmp: tmp, report: newReport(o)}
	if err := b.start(); err != nil {
		b.stop()
		return err
	}
	defer func() {
		if serr := b.stop(); serr != nil && err == nil {
			err = serr
		}
		b.report.leftover = leftovers(b.tmp)
		b.report.print(os.Stdout)
	}()
	return b.measure()
}

// start builds the binary, starts serve, bootstraps and logs in.
func (b *bench) start() error {
	bin := filepath.Join(b.tmp, "bin")
	data := filepath.Join(b.tmp, "data")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(data, 0o711); err != nil {
		return err
	}
	b.bin = filepath.Join(bin, "clawkeep")
	log.Printf("building %s", b.bin)
	build := exec.Command("go", "build", "-o", b.bin, "./cmd/clawkeep")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	// Written-back text pages: freshly written, the binary's page-cache
	// pages are dirty, and smaps would show the shared text as
	// Shared_Dirty instead of Shared_Clean until writeback.
	if err := syncFile(b.bin); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	args := []string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", data,
		"--idle-timeout", "2h", // the capacity step needs every worker to stay up
		"--rate-per-ip", "1e9", "--burst-per-ip", "1000000000", "--rate-per-org", "1e9", "--burst-per-org", "1000000000"}
	b.report.serveCmd = b.bin + " " + strings.Join(args, " ")
	b.cmd = exec.Command(b.bin, args...)
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(b.tmp, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := b.cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	// Read stderr until the listen line and the bootstrap token, then keep
	// draining it to the log (a full pipe would block serve). The token
	// line goes nowhere.
	type ready struct{ token string }
	got := make(chan ready, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		token, listening, sent := "", false, false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ckb_"):
				token = line
				continue
			case strings.Contains(line, "serving the API on http://"):
				listening = true
			}
			if i := strings.Index(line, "ckb_"); i >= 0 { // serve repeats it in an example command
				line = line[:i] + "ckb_<redacted>"
			}
			fmt.Fprintln(logFile, line)
			if !sent && listening && token != "" {
				got <- ready{token}
				sent = true
			}
		}
		if !sent {
			close(got)
		}
	}()
	var r ready
	select {
	case v, ok := <-got:
		if !ok {
			return errors.New("serve exited before it was ready; see serve.log (run with -keep)")
		}
		r = v
	case <-time.After(30 * time.Second):
		return errors.New("serve not ready after 30 s")
	}
	b.base = "http://127.0.0.1:" + strconv.Itoa(port)
	b.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if _, err := b.do("POST", "/v1/bootstrap", "", map[string]any{"token": r.token, "email": ownerEmail, "password": ownerPassword}, 201); err != nil {
		return err
	}
	out, err := b.do("POST", "/v1/login", "", map[string]any{"email": ownerEmail, "password": ownerPassword}, 200)
	if err != nil {
		return err
	}
	b.owner, _ = out["token"].(string)
	if b.owner == "" {
		return errors.New("login: no token in the answer")
	}
	return nil
}

// stop sends SIGTERM to serve (which stops its workers) and waits; after
// 30 s it kills serve and any of its workers still alive.
func (b *bench) stop() error {
	if b.cmd == nil || b.cmd.Process == nil {
		return nil
	}
	pid := b.cmd.Process.Pid
	b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
	case <-time.After(30 * time.Second):
		log.Printf("serve (pid %d) did not stop in 30 s; killing it", pid)
		b.cmd.Process.Kill()
		<-done
	}
	// Workers get SIGTERM from serve and Pdeathsig; give them a moment.
	for range 50 {
		if len(leftovers(b.tmp)) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range leftovers(b.tmp) {
		log.Printf("killing leftover worker pid %d", p)
		b.report.notes = append(b.report.notes, fmt.Sprintf("worker pid %d was still alive 5 s after serve exited and was killed", p))
		syscall.Kill(p, syscall.SIGKILL)
	}
	return nil
}

// leftovers lists processes running a binary under this run's temporary
// directory: serve's own, or the copy serve may place in its data root for
// the workers. The directory is unique to the run, so nobody else's
// processes match.
func leftovers(tmp string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasPrefix(exe, tmp+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (b *bench) measure() error {
	b.report.loadAt("start", loadAvg())
	maxN := slices.Max(b.o.orgCounts)
	log.Printf("setting up %d organisations", maxN)
	orgs, err := b.setupOrgs("bench", 0, maxN)
	if err != nil {
		return err
	}
	// One call from here first: it checks that a good call looks the way
	// call.lua expects (a JSON-RPC result without isError).
	if err := b.probeCall(orgs[0]); err != nil {
		return err
	}
	// Baseline and reads.
	b.report.add(b.wrk("GET /v1/health (no auth)", "/v1/health", readLua, "", nil))
	for _, n := range b.o.orgCounts {
		var lines []string
		for _, o := range orgs[:n] {
			lines = append(lines, "/v1/orgs/"+o.name+" "+o.viewer)
		}
		b.report.add(b.wrk(fmt.Sprintf("GET /v1/orgs/{org}, viewer API token, N=%d", n), "/v1/orgs/"+orgs[0].name, readLua, "", lines))
	}
	// Control: one org, but through read.lua's round-robin path (two
	// identical lines). If this is as slow as N=50, the difference between
	// N=1 and N=50 is wrk's Lua request() on a shared CPU, not the server.
	one := "/v1/orgs/" + orgs[0].name + " " + orgs[0].viewer
	b.report.add(b.wrk("control: N=1 through the round-robin script path", "/v1/orgs/"+orgs[0].name, readLua, "", []string{one, one}))
	for i, n := range b.o.orgCounts {
		var lines []string
		for _, o := range orgs[:n] {
			lines = append(lines, o.agent)
		}
		b.report.add(b.wrk(fmt.Sprintf("POST /v1/ckp claw.tool.call echo, N=%d", n), "/v1/ckp", callLua, fmt.Sprintf("r%d", i), lines))
	}
	// Cold starts: orgs that exist but whose worker has never run.
	if b.o.cold > 0 {
		if err := b.coldStarts(); err != nil {
			return err
		}
	}
	// Idle memory: every worker started so far, after a quiet spell.
	log.Printf("waiting %v for workers to go idle", b.o.idleWait)
	time.Sleep(b.o.idleWait)
	if pids := b.workerPIDs(); len(pids) > 0 {
		b.report.workerExe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0]))
	}
	b.report.idle = b.workerMemory("")
	b.report.idleLoaded = b.workerMemory("bench-")
	b.report.idleFresh = b.workerMemory("cold-")
	b.report.serveMem = smaps(b.cmd.Process.Pid)
	if b.o.maxOrgs > 0 {
		b.capacity(len(orgs) + b.o.cold)
	}
	return nil
}

// setupOrgs creates n orgs named prefix-NNNN from index from, each with
// the agent, echo granted automatically, a viewer API token and an agent
// token. A few at a time: each one starts a worker.
func (b *bench) setupOrgs(prefix string, from, n int) ([]org, error) {
	orgs := make([]org, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			orgs[i], errs[i] = b.setupOrg(fmt.Sprintf("%s-%04d", prefix, from+i))
		}()
	}
	wg.Wait()
	return orgs, errors.Join(errs...)
}

func (b *bench) setupOrg(name string) (org, error) {
	o := org{name: name}
	manifest, err := agentManifest()
	if err != nil {
		return o, err
	}
	p := "/v1/orgs/" + name
	steps := []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/v1/orgs", map[string]any{"name": name}, 201},
		{"PUT", p + "/agents/" + agentName, manifest, 201},
		{"PUT", p + "/agents/" + agentName + "/abilities/local", map[string]any{"actions": map[string]string{"echo": "automatic"}}, 200},
	}
	for _, s := range steps {
		if _, err := b.do(s.method, s.path, b.owner, s.body, s.want); err != nil {
			return o, err
		}
	}
	out, err := b.do("POST", p+"/tokens", b.owner, map[string]any{"name": "bench viewer", "role": "viewer"}, 201)
	if err != nil {
		return o, err
	}
	o.viewer, _ = out["token"].(string)
	if out, err = b.do("POST", p+"/agents/"+agentName+"/tokens", b.owner, map[string]any{"name": "bench"}, 201); err != nil {
		return o, err
	}
	o.agent, _ = out["token"].(string)
	if !strings.HasPrefix(o.viewer, "ckt_") || !strings.HasPrefix(o.agent, "cka_") {
		return o, fmt.Errorf("org %s: unexpected token kinds", name)
	}
	return o, nil
}

// agentManifest is the example agent of the README's walkthrough
// (examples/helper.claw.yaml): the runs grant only its echo tool, so the
// figures are the server's path and not a tool's work.
func agentManifest() ([]byte, error) {
	return os.ReadFile(filepath.Join(repoRoot(), "examples", "helper.claw.yaml"))
}

// do sends one request and checks the status; body is JSON unless it is
// a []byte (sent as YAML). Error messages carry the answer's problem
// detail, never the request (which may hold a token or password).
func (b *bench) do(method, path, token string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	ct := ""
	switch v := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(v), "application/yaml"
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		rd, ct = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		var pr struct{ Code, Detail string }
		json.Unmarshal(raw, &pr)
		return nil, fmt.Errorf("%s %s: status %d, want %d (%s: %s)", method, path, resp.StatusCode, want, pr.Code, pr.Detail)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out, nil
}

func (b *bench) probeCall(o org) error {
	out, err := b.do("POST", "/v1/ckp", o.agent, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "claw.tool.call",
		"params": map[string]any{"name": "echo", "arguments": map[string]any{"n": "probe"}, "context": map[string]any{"request_id": "probe"}}}, 200)
	if err != nil {
		return err
	}
	res, ok := out["result"].(map[string]any)
	if !ok || res["isError"] == true {
		return fmt.Errorf("probe tool call: no clean result: error %v", out["error"])
	}
	return nil
}

// wrkResult is what the scripts' done() prints.
type wrkResult struct {
	Name    string  `json:"-"`
	Command string  `json:"-"`
	Load    string  `json:"-"`
	Err     string  `json:"-"`
	Busy    float64 `json:"-"` // share of all CPUs busy in the second before the run
	// Others is the share of all CPU time used by anything but serve, its
	// workers and wrk during the run.
	Others      float64   `json:"-"`
	Rates       []float64 `json:"-"` // every repeat's rate, ascending
	AllFailures int64     `json:"-"` // over every repeat
	Requests    int64     `json:"requests"`
	DurationUS  int64     `json:"duration_us"`
	P50US       float64   `json:"p50_us"`
	P99US       float64   `json:"p99_us"`
	Connect     int64     `json:"connect"`
	Read        int64     `json:"read"`
	Write       int64     `json:"write"`
	Status      int64     `json:"status"` // non-2xx/3xx
	Timeout     int64     `json:"timeout"`
	RPCErrors   int64     `json:"rpc_errors"`
}

func (r wrkResult) failures() int64 {
	return r.Connect + r.Read + r.Write + r.Status + r.Timeout + r.RPCErrors
}

func (r wrkResult) rate() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// wrk runs one measurement. lines, if any, go to a 0600 file named by
// BENCH_TARGETS; runID becomes BENCH_RUN (unique request ids per run).
//
// On a shared machine one run says little, so it runs -repeat times, each
// after waiting (up to -quiet-wait) for the machine to be quiet, and
// keeps the run with the median rate, with every run's rate alongside.
func (b *bench) wrk(name, path string, script []byte, runID string, lines []string) wrkResult {
	var runs []wrkResult
	for i := range b.o.repeat {
		id := runID
		if id != "" {
			id = fmt.Sprintf("%s-%d", runID, i)
		}
		runs = append(runs, b.wrkOnce(name, path, script, id, lines))
	}
	for _, r := range runs {
		if r.Err != "" {
			return r
		}
	}
	slices.SortFunc(runs, func(x, y wrkResult) int { return cmp.Compare(x.rate(), y.rate()) })
	med := runs[len(runs)/2]
	for _, r := range runs {
		med.Rates = append(med.Rates, r.rate())
		med.AllFailures += r.failures()
	}
	return med
}

// waitQuiet waits until less than -quiet of the CPUs were busy over a
// second, or -quiet-wait has passed; it returns the last reading.
func (b *bench) waitQuiet() float64 {
	deadline := time.Now().Add(b.o.quietWait)
	for {
		busy := cpuBusy(time.Second)
		if busy < b.o.quiet || time.Now().After(deadline) {
			return busy
		}
	}
}

// ourTicks is the CPU time, in clock ticks, that serve and its workers
// have used so far.
func (b *bench) ourTicks() int64 {
	t := procTicks(b.cmd.Process.Pid)
	for _, pid := range b.workerPIDs() {
		t += procTicks(pid)
	}
	return t
}

// procTicks is utime+stime from /proc/PID/stat.
func procTicks(pid int) int64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// cpuTicks is the machine's busy and total CPU time from /proc/stat, in
// clock ticks.
func cpuTicks() (busy, total int64) {
	raw, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func (b *bench) wrkOnce(name, path string, script []byte, runID string, lines []string) wrkResult {
	res := wrkResult{Name: name}
	scriptName := "read.lua"
	if bytes.Equal(script, callLua) {
		scriptName = "call.lua"
	}
	scriptPath := filepath.Join(b.tmp, scriptName)
	if err := os.WriteFile(scriptPath, script, 0o600); err != nil {
		res.Err = err.Error()
		return res
	}
	env := os.Environ()
	envShown := ""
	if lines != nil {
		f := filepath.Join(b.tmp, fmt.Sprintf("targets-%d.txt", time.Now().UnixNano()))
		if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			res.Err = err.Error()
			return res
		}
		defer os.Remove(f)
		env = append(env, "BENCH_TARGETS="+f)
		envShown = fmt.Sprintf("BENCH_TARGETS=<file of %d lines> ", len(lines))
	}
	if runID != "" {
		env = append(env, "BENCH_RUN="+runID)
		envShown += "BENCH_RUN=" + runID + " "
	}
	args := []string{"-t" + strconv.Itoa(b.o.threads), "-c" + strconv.Itoa(b.o.conns), "-d" + b.o.duration.String(),
		"-s", scriptName, b.base + path}
	res.Command = envShown + "wrk " + strings.Join(args, " ")
	args[len(args)-2] = scriptPath
	res.Load = loadAvg()
	res.Busy = b.waitQuiet()
	cmd := exec.Command(b.o.wrk, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	busy0, total0 := cpuTicks()
	ours0 := b.ourTicks()
	err := cmd.Run()
	busy1, total1 := cpuTicks()
	ours := b.ourTicks() - ours0
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		ours += (ru.Utime.Nano() + ru.Stime.Nano()) / int64(time.Second/clockTicks)
	}
	if total1 > total0 {
		res.Others = max(0, float64(busy1-busy0-ours)/float64(total1-total0))
	}
	log.Printf("%s: load %s, CPU busy %.0f%% before, others %.0f%% during", name, res.Load, res.Busy*100, res.Others*100)
	if err != nil {
		res.Err = fmt.Sprintf("wrk: %v: %s", err, lastLines(out.String(), 5))
		return res
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if j, ok := strings.CutPrefix(line, "BENCH "); ok {
			if err := json.Unmarshal([]byte(j), &res); err != nil {
				res.Err = "parsing wrk's output: " + err.Error()
			}
			res.Name = name
			return res
		}
	}
	res.Err = "no BENCH line in wrk's output: " + lastLines(out.String(), 5)
	return res
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// coldStarts creates fresh orgs (creating an org starts no worker) and
// times each one's first request, which has to start the worker.
func (b *bench) coldStarts() error {
	names := make([]string, b.o.cold)
	for i := range names {
		names[i] = fmt.Sprintf("cold-%04d", i)
		if _, err := b.do("POST", "/v1/orgs", b.owner, map[string]any{"name": names[i]}, 201); err != nil {
			return err
		}
	}
	before := len(b.workerPIDs())
	b.report.loadAt("cold starts", fmt.Sprintf("%s, CPU busy %.0f%%", loadAvg(), b.waitQuiet()*100))
	log.Printf("timing %d cold starts (%d workers running)", len(names), before)
	for _, n := range names {
		t0 := time.Now()
		if _, err := b.do("GET", "/v1/orgs/"+n+"/agents", b.owner, nil, 200); err != nil {
			return err
		}
		d := time.Since(t0)
		// A warm second request separates the start-up from the request.
		t1 := time.Now()
		if _, err := b.do("GET", "/v1/orgs/"+n+"/agents", b.owner, nil, 200); err != nil {
			return err
		}
		b.report.cold = append(b.report.cold, d)
		b.report.warm = append(b.report.warm, time.Since(t1))
	}
	if after := len(b.workerPIDs()); after-before != len(names) {
		b.report.notes = append(b.report.notes, fmt.Sprintf("cold starts: expected %d new workers, saw %d (so some first requests did not start one)", len(names), after-before))
	}
	return nil
}

// workerPIDs lists serve's children that run "worker".
func (b *bench) workerPIDs() []int {
	serve := b.cmd.Process.Pid
	var pids []int
	for _, pid := range leftovers(b.tmp) {
		if pid == serve {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid ...
		rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(serve) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := bytes.Split(cmdline, []byte{0}); len(args) > 1 && string(args[1]) == "worker" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// syncExes writes back the binaries the processes run (serve may have
// just copied one for its workers): until then their text pages are dirty
// page cache and smaps shows them as Shared_Dirty, not Shared_Clean.
func syncExes(pids []int) {
	seen := map[string]bool{}
	for _, pid := range pids {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || seen[exe] {
			continue
		}
		seen[exe] = true
		if err := syncFile(exe); err != nil {
			log.Printf("sync %s: %v", exe, err)
		}
	}
}

// workerOrg is the --org argument of a worker's command line.
func workerOrg(pid int) string {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if a == "--org" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mem is /proc/PID/smaps_rollup in KiB.
type mem struct {
	RSS, PSS, SharedClean, SharedDirty, PrivateClean, PrivateDirty, Swap int64
}

func smaps(pid int) mem {
	var m mem
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m
	}
	fields := map[string]*int64{"Rss:": &m.RSS, "Pss:": &m.PSS, "Shared_Clean:": &m.SharedClean, "Shared_Dirty:": &m.SharedDirty,
		"Private_Clean:": &m.PrivateClean, "Private_Dirty:": &m.PrivateDirty, "Swap:": &m.Swap}
	for line := range strings.SplitSeq(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if p, ok := fields[f[0]]; ok {
				*p, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return m
}

type memSummary struct {
	workers int
	sum     mem
	maxRSS  int64
	minRSS  int64
}

// workerMemory sums the memory of the workers whose org name starts with
// prefix ("" for all).
func (b *bench) workerMemory(prefix string) memSummary {
	s := memSummary{minRSS: -1}
	pids := b.workerPIDs()
	syncExes(pids)
	for _, pid := range pids {
		if !strings.HasPrefix(workerOrg(pid), prefix) {
			continue
		}
		m := smaps(pid)
		if m.RSS == 0 {
			continue
		}
		s.workers++
		s.sum.RSS += m.RSS
		s.sum.PSS += m.PSS
		s.sum.SharedClean += m.SharedClean
		s.sum.SharedDirty += m.SharedDirty
		s.sum.PrivateClean += m.PrivateClean
		s.sum.PrivateDirty += m.PrivateDirty
		s.sum.Swap += m.Swap
		s.maxRSS = max(s.maxRSS, m.RSS)
		if s.minRSS < 0 || m.RSS < s.minRSS {
			s.minRSS = m.RSS
		}
	}
	return s
}

// capacity keeps creating and touching orgs until maxOrgs are active,
// MemAvailable falls below the floor, a request fails or time runs out;
// then it asks every worker once more.
func (b *bench) capacity(already int) {
	c := &b.report.capacity
	c.ran = true
	c.loadBefore = fmt.Sprintf("%s, CPU busy %.0f%%", loadAvg(), cpuBusy(time.Second)*100)
	c.availBefore = memAvailable()
	deadline := time.Now().Add(b.o.capBudget)
	log.Printf("capacity: up to %d active orgs, MemAvailable floor %d MiB, %v budget", b.o.maxOrgs, b.o.minAvail>>20, b.o.capBudget)
	var names []string
	active := len(b.workerPIDs())
	for i := 0; ; i++ {
		switch {
		case active >= b.o.maxOrgs:
			c.stop = fmt.Sprintf("reached %d active organisations", b.o.maxOrgs)
		case memAvailable() < b.o.minAvail:
			c.stop = fmt.Sprintf("MemAvailable fell below %.1f GiB", float64(b.o.minAvail)/(1<<30))
		case time.Now().After(deadline):
			c.stop = fmt.Sprintf("time budget (%v) spent", b.o.capBudget)
		}
		if c.stop != "" {
			break
		}
		name := fmt.Sprintf("cap-%04d", i)
		if _, err := b.do("POST", "/v1/orgs", b.owner, map[string]any{"name": name}, 201); err != nil {
			c.stop = "error: " + err.Error()
			break
		}
		if _, err := b.do("GET", "/v1/orgs/"+name+"/agents", b.owner, nil, 200); err != nil {
			c.stop = "error: " + err.Error()
			break
		}
		names = append(names, name)
		active++
		if active%100 == 0 {
			log.Printf("capacity: %d active, MemAvailable %d MiB", active, memAvailable()>>20)
		}
	}
	c.elapsed = b.o.capBudget - time.Until(deadline)
	c.availAfter = memAvailable()
	c.mem = b.workerMemory("")
	c.active = c.mem.workers
	c.serveMem = smaps(b.cmd.Process.Pid)
	// Every worker, old and new, answers once more.
	all := append([]string{}, names...)
	for i := range already {
		all = append(all, b.orgNameAt(i))
	}
	c.asked = len(all)
	for _, n := range all {
		if _, err := b.do("GET", "/v1/orgs/"+n+"/agents", b.owner, nil, 200); err != nil {
			c.failed++
			if c.firstFail == "" {
				c.firstFail = err.Error()
			}
		}
	}
	c.workersAfter = len(b.workerPIDs())
}

// orgNameAt names the i-th org created before the capacity step: the
// bench orgs, then the cold ones.
func (b *bench) orgNameAt(i int) string {
	n := slices.Max(b.o.orgCounts)
	if i < n {
		return fmt.Sprintf("bench-%04d", i)
	}
	return fmt.Sprintf("cold-%04d", i-n)
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// freePort asks the kernel for an unused port. Another process could take
// it before serve binds; serve then fails loudly, which is fine here.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot finds the module root from the working directory, so that
// `go run ./bench/serve` works from anywhere inside the repository.
func repoRoot() string {
	out, err := exec.CommandContext(context.Background(), "go", "env", "GOMOD").Output()
	if err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod)
		}
	}
	return "."
}

// clockTicks is USER_HZ, the unit of /proc/stat; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// cpuBusy is the share of all CPU time that was not idle or iowait over
// d, from /proc/stat. Measured while the bench sends nothing, it is the
// machine's other work (plus serve's idle housekeeping).
func cpuBusy(d time.Duration) float64 {
	b0, t0 := cpuTicks()
	time.Sleep(d)
	b1, t1 := cpuTicks()
	if t1 == t0 {
		return 0
	}
	return float64(b1-b0) / float64(t1-t0)
}

func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func memAvailable() int64 { return meminfo("MemAvailable:") }

// meminfo reads one /proc/meminfo field in bytes.
func meminfo(key string) int64 {
	raw, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.SplitSeq(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// report collects the figures and prints them as Markdown.
type report struct {
	o        options
	start    time.Time
	serveCmd string
	loads    []string
	runs     []wrkResult
	cold     []time.Duration
	warm     []time.Duration
	idle     memSummary
	// idleLoaded: workers that served the wrk runs; idleFresh: workers
	// that served two GETs after a cold start.
	idleLoaded, idleFresh memSummary
	workerExe             string
	serveMem              mem
	capacity              struct {
		ran                     bool
		stop                    string
		active                  int
		elapsed                 time.Duration
		loadBefore              string
		availBefore, availAfter int64
		mem                     memSummary
		serveMem                mem
		asked, failed           int
		firstFail               string
		workersAfter            int
	}
	notes    []string
	leftover []int
}

func newReport(o options) *report { return &report{o: o, start: time.Now()} }

func (r *report) loadAt(what, l string) { r.loads = append(r.loads, what+": "+l) }
func (r *report) add(w wrkResult)       { r.runs = append(r.runs, w) }

func pctDur(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func avg(sum int64, n int) int64 {
	if n == 0 {
		return 0
	}
	return sum / int64(n)
}

func (r *report) print(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	p("## `clawkeep serve` under load")
	p("")
	p("- Machine: %s, %d vCPU (nproc), MemTotal %.1f GiB, %s/%s, %s", cpuModel(), runtime.NumCPU(),
		float64(meminfo("MemTotal:"))/(1<<30), runtime.GOOS, runtime.GOARCH, runtime.Version())
	p("- Date: %s", r.start.UTC().Format("2006-01-02 15:04 UTC"))
	p("- Program: `go run ./bench/serve` (bench/serve/main.go, read.lua, call.lua)")
	p("- Server: `%s`", r.serveCmd)
	p("- wrk runs on the same machine as the server and competes with it for the %d vCPU.", runtime.NumCPU())
	p("- Load average (1/5/15 min) at start: %s", strings.Join(r.loads, "; "))
	p("")
	p("### Throughput (wrk -t%d -c%d -d%v)", r.o.threads, r.o.conns, r.o.duration)
	p("")
	p("Each measurement ran %d times, each after waiting up to %v for less than %.0f%% of the CPUs to be busy; the row is", r.o.repeat, r.o.quietWait, r.o.quiet*100)
	p("the run with the median rate (all rates in the last column). \"load\" is the 1/5/15-minute load average before")
	p("that run (it still carries the previous run); \"busy before\" is the share of both vCPUs in use in the idle second")
	p("before it; \"others during\" is the share of both vCPUs used during it by processes other than serve, its workers")
	p("and wrk (other work on this shared machine). \"failed\" counts over all runs.")
	p("")
	p("| what | requests/s | p50 | p99 | failed | load | busy before | others during | all runs (req/s) |")
	p("|---|---:|---:|---:|---:|---|---:|---:|---|")
	for _, x := range r.runs {
		if x.Err != "" {
			p("| %s | ERROR: %s | | | | %s | %.0f%% | | |", x.Name, x.Err, x.Load, x.Busy*100)
			continue
		}
		rate := fmt.Sprintf("%.0f", x.rate())
		if x.AllFailures > 0 || x.Requests == 0 {
			rate = fmt.Sprintf("**INVALID** (non-2xx %d, rpc errors %d, socket errors %d in the median run)", x.Status, x.RPCErrors, x.Connect+x.Read+x.Write+x.Timeout)
		}
		var all []string
		for _, v := range x.Rates {
			all = append(all, fmt.Sprintf("%.0f", v))
		}
		p("| %s | %s | %s | %s | %d | %s | %.0f%% | %.0f%% | %s |", x.Name, rate, usDur(x.P50US), usDur(x.P99US), x.AllFailures,
			x.Load, x.Busy*100, x.Others*100, strings.Join(all, ", "))
	}
	p("")
	p("Commands (tokens are read from 0600 files, never given on the command line):")
	p("")
	for _, x := range r.runs {
		p("- `%s`", x.Command)
	}
	p("")
	if len(r.cold) > 0 {
		p("### Worker start (first request to a fresh organisation)")
		p("")
		p("GET /v1/orgs/{org}/agents as the owner, one org at a time, %d orgs; the cold figure includes spawning the worker,", len(r.cold))
		p("opening its SQLite files, and loading or creating its audit and vault keys.")
		p("")
		p("| | p50 | max |")
		p("|---|---:|---:|")
		p("| first request (cold) | %v | %v |", pctDur(r.cold, 50).Round(time.Microsecond*100), slices.Max(r.cold).Round(time.Microsecond*100))
		p("| second request (warm) | %v | %v |", pctDur(r.warm, 50).Round(time.Microsecond*10), slices.Max(r.warm).Round(time.Microsecond*10))
		p("")
	}
	if r.idle.workers > 0 {
		p("### Idle memory per worker (/proc/PID/smaps_rollup, after %v idle)", r.o.idleWait)
		p("")
		p("Averages per worker. \"after load\" = the workers of the orgs that served the wrk runs; \"fresh\" = workers")
		p("that served two GETs after their cold start.")
		p("")
		p("| | all (%d) | after load (%d) | fresh (%d) |", r.idle.workers, r.idleLoaded.workers, r.idleFresh.workers)
		p("|---|---:|---:|---:|")
		row := func(name string, f func(m mem) int64) {
			p("| %s | %s | %s | %s |", name, mib(avg(f(r.idle.sum), r.idle.workers)),
				mib(avg(f(r.idleLoaded.sum), r.idleLoaded.workers)), mib(avg(f(r.idleFresh.sum), r.idleFresh.workers)))
		}
		row("RSS", func(m mem) int64 { return m.RSS })
		p("| RSS min / max | %s / %s | %s / %s | %s / %s |", mib(r.idle.minRSS), mib(r.idle.maxRSS),
			mib(r.idleLoaded.minRSS), mib(r.idleLoaded.maxRSS), mib(r.idleFresh.minRSS), mib(r.idleFresh.maxRSS))
		row("PSS", func(m mem) int64 { return m.PSS })
		row("Private_Dirty", func(m mem) int64 { return m.PrivateDirty })
		row("Private_Clean", func(m mem) int64 { return m.PrivateClean })
		row("Shared_Clean", func(m mem) int64 { return m.SharedClean })
		row("Shared_Dirty", func(m mem) int64 { return m.SharedDirty })
		row("Swap", func(m mem) int64 { return m.Swap })
		p("")
		p("Shared_Clean is mostly the clawkeep binary's text and read-only data, mapped from the same file by every")
		p("worker: the kernel keeps one copy, so it counts once however many workers run. PSS divides shared pages among")
		p("the processes sharing them; Private_Dirty (heap, stacks, Go runtime) is what each extra worker really costs.")
		if r.workerExe != "" && r.workerExe != strings.Fields(r.serveCmd)[0] {
			p("Workers run %s, a copy serve makes, so serve's own text pages are a separate copy.", r.workerExe)
		}
		p("serve itself: RSS %s, PSS %s, Private_Dirty %s.", mib(r.serveMem.RSS), mib(r.serveMem.PSS), mib(r.serveMem.PrivateDirty))
		p("")
	}
	if c := r.capacity; c.ran {
		p("### Most organisations active at once")
		p("")
		p("Create an org and send it one GET /v1/orgs/{org}/agents (starting its worker), repeatedly, until %d orgs are active,", r.o.maxOrgs)
		p("MemAvailable < %.1f GiB, a request fails, or %v pass. Load before: %s.", float64(r.o.minAvail)/(1<<30), r.o.capBudget, c.loadBefore)
		p("")
		p("- Stopped because: %s, after %v", c.stop, c.elapsed.Round(time.Second))
		p("- Workers running: %d", c.active)
		p("- Sum of worker PSS: %s (average %s); sum of Private_Dirty %s; sum of RSS %s",
			mib(c.mem.sum.PSS), mib(avg(c.mem.sum.PSS, c.mem.workers)), mib(c.mem.sum.PrivateDirty), mib(c.mem.sum.RSS))
		p("- serve itself: RSS %s, PSS %s", mib(c.serveMem.RSS), mib(c.serveMem.PSS))
		p("- MemAvailable: %.2f GiB before, %.2f GiB after (other work on the machine moves this too)", float64(c.availBefore)/(1<<30), float64(c.availAfter)/(1<<30))
		if c.failed == 0 {
			p("- Afterwards every one of the %d organisations answered a request (workers running at the end: %d).", c.asked, c.workersAfter)
		} else {
			p("- Afterwards %d of %d organisations FAILED to answer; first failure: %s", c.failed, c.asked, c.firstFail)
		}
		p("")
	}
	for _, n := range r.notes {
		p("- Note: %s", n)
	}
	if len(r.leftover) > 0 {
		p("- WARNING: processes left behind after shutdown: %v", r.leftover)
	} else {
		p("- After SIGTERM to serve, no clawkeep process of this run was left.")
	}
}

func usDur(us float64) string {
	return time.Duration(us * float64(time.Microsecond)).Round(10 * time.Microsecond).String()
}
