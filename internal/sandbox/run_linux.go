package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// launch is a job as a back end hands it to run.
type launch struct {
	// start starts the job's first process with the given stdin, stdout
	// and stderr.
	start func(stdio [3]*os.File) (*os.Process, error)
	// jobPID returns the pid whose namespaces the job lives in; it may wait
	// for the back end to report it.
	jobPID func(first *os.Process) (int, error)
	// release lets the job run once its network and cgroups are in place.
	release func() error
	// setupErr returns why the sandbox could not be built, or "" once the
	// job itself runs. It is called after release.
	setupErr func() string
	// cgroup, when set, limits the job and reports its peak memory.
	cgroup *cgroup
	// ended, if set, revises the report once the job has ended.
	ended func(*Report)
	// cleanup releases what the back end holds; called once, at the end.
	cleanup func()
}

// run drives a job through a launch: network, release, the two meters,
// output limits and the report. build gets the environment the network
// adds and returns the launch, not yet started.
func run(ctx context.Context, cfg Config, job Job, build func(netEnv []string) (*launch, error)) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lim := cfg.Limits
	rep := &Report{Level: cfg.Level, ExitCode: -1}
	var netEnv []string
	var (
		refusedMu sync.Mutex
		refused   []string // the proxy's refusals for this job
	)
	network := cfg.Network.enabled()
	var sbID string
	if network {
		sbID = "sandbox-" + newID()
		token, err := cfg.Network.Proxy.RegisterWatched(sbID, cfg.Network.Policy, cfg.Network.Credentials, func(host, reason string) {
			refusedMu.Lock()
			defer refusedMu.Unlock()
			if len(refused) < 32 {
				refused = append(refused, reason)
			}
		})
		if err != nil {
			return nil, err
		}
		defer cfg.Network.Proxy.Unregister(sbID)
		netEnv = proxyEnv(token)
	}
	l, err := build(netEnv)
	if err != nil {
		var refusal *refusalError
		if errors.As(err, &refusal) {
			rep.Outcome, rep.Meter, rep.Reason = Refused, refusal.meter, refusal.msg
			return rep, nil
		}
		return nil, err
	}
	defer l.cleanup()

	var (
		mu     sync.Mutex
		meter  Meter
		reason string
	)
	var proc *os.Process
	kill := func(m Meter, why string) {
		mu.Lock()
		if meter == "" && reason == "" {
			meter, reason = m, why
		}
		p := proc
		mu.Unlock()
		if p != nil {
			// The job's first process is its pid namespace's init, or
			// bubblewrap which takes it down with it: killing it ends
			// every process the job started.
			p.Kill()
		}
	}
	stdout := &capped{max: lim.MaxOutput, over: func() { kill(MeterOutput, fmt.Sprintf("output exceeded %d bytes", lim.MaxOutput)) }}
	stderr := &capped{max: lim.MaxOutput, over: func() { kill(MeterOutput, fmt.Sprintf("output exceeded %d bytes", lim.MaxOutput)) }}
	var pipes [6]*os.File // stdin r, w; stdout r, w; stderr r, w
	for i := 0; i < 6; i += 2 {
		if pipes[i], pipes[i+1], err = os.Pipe(); err != nil {
			for _, f := range pipes {
				if f != nil {
					f.Close()
				}
			}
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	defer func() {
		for _, f := range pipes {
			f.Close()
		}
	}()

	// Pdeathsig fires when the thread that forked the child exits, not the
	// process; listenInNetns retires a thread, which might be this one.
	// Keep this goroutine on its thread until the job is reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	p, err := l.start([3]*os.File{pipes[0], pipes[3], pipes[5]})
	pipes[0].Close()
	pipes[3].Close()
	pipes[5].Close()
	if err != nil {
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}
	mu.Lock()
	proc = p
	mu.Unlock()
	var copying sync.WaitGroup
	copying.Go(func() { io.Copy(stdout, pipes[2]) })
	copying.Go(func() { io.Copy(stderr, pipes[4]) })
	go func() {
		pipes[1].Write(job.Stdin)
		pipes[1].Close()
	}()
	wall := time.AfterFunc(lim.Wall, func() { kill(MeterWall, fmt.Sprintf("wall-clock limit of %s reached", lim.Wall)) })
	defer wall.Stop()
	stopCtx := context.AfterFunc(ctx, func() { kill("", "cancelled by the caller") })
	defer stopCtx()

	setupFailed := func(msg string) (*Report, error) {
		kill("", msg)
		p.Wait()
		rep.Outcome, rep.Reason = Refused, msg
		return rep, nil
	}
	pid, err := l.jobPID(p)
	if err != nil {
		return setupFailed(err.Error())
	}
	if l.cgroup != nil {
		if err := l.cgroup.add(pid); err != nil {
			return setupFailed(err.Error())
		}
	}
	if network {
		ln, err := listenInNetns(pid, cfg.Level == LevelProcess)
		if err != nil {
			return setupFailed(err.Error())
		}
		defer ln.Close()
		go cfg.Network.Proxy.Serve(ln)
	}
	if err := l.release(); err != nil {
		return setupFailed(err.Error())
	}
	if msg := l.setupErr(); msg != "" {
		return setupFailed("sandbox setup failed: " + msg)
	}
	st, waitErr := p.Wait()
	rep.WallMS = time.Since(start).Milliseconds()
	wall.Stop()
	// Every writer is gone with the namespace; a second is slack for the
	// kernel to tear it down, then the readers are cut off.
	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(time.Second):
		pipes[2].Close()
		pipes[4].Close()
		<-drained
	}
	stdout.mu.Lock()
	stderr.mu.Lock()
	rep.Stdout, rep.Stderr = stdout.buf.Bytes(), stderr.buf.Bytes()
	rep.Truncated = stdout.truncated || stderr.truncated
	stdout.mu.Unlock()
	stderr.mu.Unlock()
	if st == nil {
		return nil, fmt.Errorf("sandbox: wait: %w", waitErr)
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		rep.CPUMS = (time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())).Milliseconds()
		rep.PeakMemory = ru.Maxrss * 1024
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	rep.Outcome, rep.ExitCode = Exited, ws.ExitStatus()
	switch sig := ws.Signal(); {
	case ws.Signaled():
		rep.Outcome, rep.ExitCode, rep.Signal = Killed, -1, sig.String()
	case rep.ExitCode > 128 && rep.ExitCode < 128+65:
		// The pid namespace's init (bubblewrap's, or the reaper) reports
		// a job killed by signal N as status 128+N, the shell convention;
		// a job that exits 137 by itself reads the same.
		sig = syscall.Signal(rep.ExitCode - 128)
		rep.Outcome, rep.ExitCode, rep.Signal = Killed, -1, sig.String()
		ws = syscall.WaitStatus(sig) // Signaled, with sig
	}
	if l.cgroup != nil {
		l.cgroup.finish(rep)
	}
	mu.Lock()
	m, why := meter, reason
	mu.Unlock()
	switch {
	case m != "" || why != "":
		rep.Outcome, rep.Meter, rep.Reason = Killed, m, why
	case rep.Meter != "": // set by the cgroup
	case ws.Signaled() && ws.Signal() == syscall.SIGXCPU,
		ws.Signaled() && ws.Signal() == syscall.SIGKILL && time.Duration(rep.CPUMS)*time.Millisecond >= lim.CPU:
		rep.Meter, rep.Reason = MeterCPU, fmt.Sprintf("CPU-time limit of %s reached", lim.CPU)
	case ws.Signaled() && ws.Signal() == syscall.SIGXFSZ:
		rep.Meter, rep.Reason = MeterFileSize, fmt.Sprintf("file-size limit of %d bytes reached", lim.MaxFileBytes)
	}
	if l.ended != nil {
		l.ended(rep)
	}
	refusedMu.Lock()
	rep.NetworkRefusals = refused
	refusedMu.Unlock()
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

// refusalError is a sandbox that cannot be built as asked; run turns it
// into a Refused report.
type refusalError struct {
	meter Meter
	msg   string
}

func (e *refusalError) Error() string { return e.msg }

func refusef(m Meter, format string, a ...any) error {
	return &refusalError{meter: m, msg: fmt.Sprintf(format, a...)}
}

// capped keeps the first max bytes written and calls over once when more
// arrive. It keeps accepting (and dropping) bytes so the writer drains.
type capped struct {
	max       int64
	over      func()
	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	room := c.max - int64(c.buf.Len())
	fire := false
	if int64(len(p)) > room {
		c.buf.Write(p[:max(room, 0)])
		fire = !c.truncated
		c.truncated = true
	} else {
		c.buf.Write(p)
	}
	c.mu.Unlock()
	if fire {
		c.over()
	}
	return len(p), nil
}
