// Command ckpbench measures CKP round trips through a real clawkeep process
// over stdio, against the fsync floor of the data directory's file system,
// measured in the same run.
//
//	go build -o /tmp/clawkeep ./cmd/clawkeep
//	go run ./bench/ckpbench -bin /tmp/clawkeep -calls 20000
//
// It reports: the floor (one 64-byte write + fsync, p50); sequential echo
// calls (p50/p99 and the ratio of p50 to the floor); and calls with 64 in
// flight (p50/p99 and calls per second).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

func main() {
	bin := flag.String("bin", "clawkeep", "path to the clawkeep binary")
	manifest := flag.String("manifest", "examples/conformance/claw.yaml", "manifest to run")
	calls := flag.Int("calls", 20000, "calls in the 64-in-flight phase")
	seq := flag.Int("seq", 2000, "calls in the sequential phase")
	inflight := flag.Int("inflight", 64, "calls in flight in the parallel phase")
	dir := flag.String("dir", "", "data directory (default: a new temporary one)")
	flag.Parse()

	dataDir := *dir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "ckpbench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	}
	floor := fsyncFloor(dataDir, 2000)
	fmt.Printf("fsync floor (64-byte write+fsync in %s): p50 %v p99 %v\n", dataDir, pct(floor, 50), pct(floor, 99))

	c := startClient(*bin, *manifest, dataDir)
	c.call("claw.initialize", map[string]any{
		"protocolVersion": "0.3.0", "clientInfo": map[string]any{"name": "ckpbench", "version": "1"},
		"manifest": "claw://local/claw/conformance", "capabilities": map[string]any{},
	})
	n := 0
	echo := func() map[string]any {
		n++
		return map[string]any{"name": "echo", "arguments": map[string]any{"text": "x"},
			"context": map[string]any{"request_id": fmt.Sprintf("bench-%d", n)}}
	}
	for range 200 { // warm up
		c.call("claw.tool.call", echo())
	}

	var lat []time.Duration
	for range *seq {
		t0 := time.Now()
		c.call("claw.status", map[string]any{})
		lat = append(lat, time.Since(t0))
	}
	fmt.Printf("sequential claw.status (transport only, no kernel, no audit): p50 %v p99 %v\n", pct(lat, 50), pct(lat, 99))

	lat = lat[:0]
	for range *seq {
		t0 := time.Now()
		c.call("claw.tool.call", echo())
		lat = append(lat, time.Since(t0))
	}
	fmt.Printf("sequential: %d calls, p50 %v p99 %v, p50/floor %.2fx\n", *seq, pct(lat, 50), pct(lat, 99),
		float64(pct(lat, 50))/float64(pct(floor, 50)))

	lat = lat[:0]
	c.startReader()
	var mu sync.Mutex
	sem := make(chan struct{}, *inflight)
	var wg sync.WaitGroup
	// Requests are encoded before the clock starts, so that the client's
	// own CPU (on the same two cores) is spent on reading replies only.
	params := make([]json.RawMessage, *calls)
	for i := range params {
		params[i], _ = json.Marshal(echo())
	}
	t0 := time.Now()
	for i := range *calls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			c.call("claw.tool.call", params[i])
			d := time.Since(s)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			<-sem
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("%d in flight: %d calls in %v, %.0f calls/s, p50 %v p99 %v\n", *inflight, *calls, el.Round(time.Millisecond),
		float64(*calls)/el.Seconds(), pct(lat, 50), pct(lat, 99))
	c.call("claw.shutdown", map[string]any{})
}

func fsyncFloor(dir string, n int) []time.Duration {
	f, err := os.Create(filepath.Join(dir, "fsync-floor"))
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 64)
	var out []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			log.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			log.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}

// client speaks to the child. Sequential phases read replies in the
// calling goroutine (as a one-call-at-a-time operator would), so that the
// figure is clawkeep's and not this program's goroutine hand-offs; the
// parallel phase starts a reader goroutine that routes replies by id.
type client struct {
	in      io.Writer
	r       *bufio.Reader
	wmu     sync.Mutex
	mu      sync.Mutex
	next    int
	waiters map[int]chan json.RawMessage // nil until startReader
}

type reply struct {
	ID     *int            `json:"id"`
	Error  json.RawMessage `json:"error"`
	Result json.RawMessage `json:"result"`
}

// readReply reads lines until a reply (not a notification) arrives.
func (c *client) readReply() reply {
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			log.Fatalf("reading from clawkeep: %v", err)
		}
		var f reply
		if json.Unmarshal(line, &f) != nil || f.ID == nil {
			continue
		}
		if len(f.Error) > 0 {
			log.Fatalf("error reply: %s", line)
		}
		return f
	}
}

func startClient(bin, manifest, dataDir string) *client {
	cmd := exec.Command(bin, "run", "--manifest", manifest, "--data-dir", dataDir)
	in, err := cmd.StdinPipe()
	if err != nil {
		log.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	return &client{in: in, r: bufio.NewReaderSize(out, 1<<20)}
}

func (c *client) startReader() {
	c.waiters = map[int]chan json.RawMessage{}
	go func() {
		for {
			f := c.readReply()
			c.mu.Lock()
			ch := c.waiters[*f.ID]
			delete(c.waiters, *f.ID)
			c.mu.Unlock()
			ch <- f.Result
		}
	}()
}

func (c *client) call(method string, params any) json.RawMessage {
	c.mu.Lock()
	c.next++
	id := c.next
	var ch chan json.RawMessage
	if c.waiters != nil {
		ch = make(chan json.RawMessage, 1)
		c.waiters[id] = ch
	}
	c.mu.Unlock()
	raw, ok := params.(json.RawMessage)
	if !ok {
		raw, _ = json.Marshal(params)
	}
	b := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", id, method, raw)
	c.wmu.Lock()
	c.in.Write(b)
	c.wmu.Unlock()
	if ch == nil {
		f := c.readReply()
		if *f.ID != id {
			log.Fatalf("reply for id %d, want %d", *f.ID, id)
		}
		return f.Result
	}
	return <-ch
}
