package wasm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasiConfig builds the module's whole WASI world: argv, the explicit
// environment, stdio through out, and at most one preopen. wasmtime's
// WASI never sees the host's argv, environment or stdio unless told to
// inherit them, and nothing here does. WASI preview 1 sockets work only
// on preopened sockets, and none is preopened.
func wasiConfig(c Call, env [][2]string, out *capture) (*wasmtime.WasiConfig, error) {
	w := wasmtime.NewWasiConfig()
	w.SetArgv(c.Args)
	keys := make([]string, len(env))
	vals := make([]string, len(env))
	for i, kv := range env {
		keys[i], vals[i] = kv[0], kv[1]
	}
	w.SetEnv(keys, vals)
	if err := out.configure(w); err != nil {
		w.Close()
		return nil, err
	}
	if c.Workspace != "" {
		dir, err := filepath.Abs(c.Workspace)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("wasm: workspace: %w", err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			w.Close()
			return nil, fmt.Errorf("wasm: workspace %q is not a directory", dir)
		}
		dp, fp := wasmtime.DIR_READ|wasmtime.DIR_WRITE, wasmtime.FILE_READ|wasmtime.FILE_WRITE
		if c.ReadOnlyWorkspace {
			dp, fp = wasmtime.DIR_READ, wasmtime.FILE_READ
		}
		if err := w.PreopenDir(dir, "/workspace", dp, fp); err != nil {
			w.Close()
			return nil, fmt.Errorf("wasm: preopening workspace: %w", err)
		}
	}
	return w, nil
}

// capture connects the module's stdio to pipes. wasmtime-go v39 can only
// point WASI stdio at a path, so each pipe's other end is named as
// /dev/fd/N; wasmtime opens its own descriptor for it. Output is read as
// it is written, keeping the first max bytes of each stream and
// discarding the rest, so a module that writes without end costs CPU
// (which fuel and the deadline bound) but neither memory nor disk.
type capture struct {
	max   int64
	stdin []byte

	// Our ends: read ends of stdout/stderr, write end of stdin. The
	// other ends are closed by afterSetWasi once wasmtime has opened its
	// own copies.
	outR, errR, inW    *os.File // or nil
	outW, errW, inR    *os.File // or nil after afterSetWasi
	started            bool     // afterSetWasi ran: goroutines own outR, errR, inW
	stdout, stderr     buffer
	readers, stdinDone sync.WaitGroup
}

// buffer keeps the first max bytes written to it.
type buffer struct {
	max       int64
	data      []byte
	truncated bool
}

func (b *buffer) drain(r io.Reader) {
	var chunk [32 << 10]byte
	for {
		n, err := r.Read(chunk[:])
		if n > 0 {
			room := b.max - int64(len(b.data))
			if int64(n) > room {
				b.data = append(b.data, chunk[:room]...)
				b.truncated = true
			} else {
				b.data = append(b.data, chunk[:n]...)
			}
		}
		if err != nil {
			return
		}
	}
}

func newCapture(max int64, stdin []byte) (*capture, error) {
	c := &capture{max: max, stdin: stdin}
	c.stdout.max, c.stderr.max = max, max
	var err error
	if c.outR, c.outW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("wasm: stdout pipe: %w", err)
	}
	if c.errR, c.errW, err = os.Pipe(); err != nil {
		c.abort()
		return nil, fmt.Errorf("wasm: stderr pipe: %w", err)
	}
	if len(stdin) > 0 {
		if c.inR, c.inW, err = os.Pipe(); err != nil {
			c.abort()
			return nil, fmt.Errorf("wasm: stdin pipe: %w", err)
		}
	}
	return c, nil
}

func fdPath(f *os.File) string { return fmt.Sprintf("/dev/fd/%d", f.Fd()) }

func (c *capture) configure(w *wasmtime.WasiConfig) error {
	if err := w.SetStdoutFile(fdPath(c.outW)); err != nil {
		return fmt.Errorf("wasm: connecting stdout: %w", err)
	}
	if err := w.SetStderrFile(fdPath(c.errW)); err != nil {
		return fmt.Errorf("wasm: connecting stderr: %w", err)
	}
	if c.inR != nil {
		if err := w.SetStdinFile(fdPath(c.inR)); err != nil {
			return fmt.Errorf("wasm: connecting stdin: %w", err)
		}
	}
	return nil
}

// afterSetWasi runs once the store owns its descriptors: it closes our
// copies of the module's ends (so EOF comes when the store closes) and
// starts the readers and the stdin writer.
func (c *capture) afterSetWasi() {
	c.started = true
	c.outW.Close()
	c.errW.Close()
	c.outW, c.errW = nil, nil
	c.readers.Add(2)
	go func() { defer c.readers.Done(); c.stdout.drain(c.outR) }()
	go func() { defer c.readers.Done(); c.stderr.drain(c.errR) }()
	if c.inR != nil {
		c.inR.Close()
		c.inR = nil
		c.stdinDone.Add(1)
		go func() {
			defer c.stdinDone.Done()
			// Fails with EPIPE once the store closes if the module read
			// less than all of it; that is the module's choice.
			_, _ = c.inW.Write(c.stdin)
			c.inW.Close()
		}()
	}
}

// wait collects the output once the store is closed.
func (c *capture) wait() (stdout, stderr []byte, truncated bool) {
	c.readers.Wait()
	c.stdinDone.Wait()
	c.outR.Close()
	c.errR.Close()
	c.outR, c.errR, c.inW = nil, nil, nil
	return c.stdout.data, c.stderr.data, c.stdout.truncated || c.stderr.truncated
}

// abort closes the pipes when the run failed before afterSetWasi; once
// it ran, wait owns cleanup and abort does nothing.
func (c *capture) abort() {
	if c.started {
		return
	}
	for _, f := range []*os.File{c.outR, c.outW, c.errR, c.errW, c.inR, c.inW} {
		if f != nil {
			f.Close()
		}
	}
}
