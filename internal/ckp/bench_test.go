package ckp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// benchConn is a Server with the test handler behind a pair of os.Pipes.
type benchConn struct {
	in  *os.File // the server's input
	out *bufio.Reader
}

func startBench(b *testing.B) *benchConn {
	b.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&Server{Handler: newTestHandler()}).Serve(ctx, inR, outW)
		outW.Close()
	}()
	b.Cleanup(func() {
		inW.Close()
		cancel()
		<-done
		inR.Close()
		outR.Close()
	})
	c := &benchConn{in: inW, out: bufio.NewReaderSize(outR, 64<<10)}
	c.write(b, requestLine(b, 0, "claw.initialize", initParams(ProtocolVersion))+"\n")
	c.read(b)
	return c
}

func (c *benchConn) write(b *testing.B, line string) {
	if _, err := c.in.WriteString(line); err != nil {
		b.Error(err)
	}
}

func (c *benchConn) read(b *testing.B) []byte {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		b.Error(err)
	}
	return line
}

func echoLine(id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"claw.tool.call","params":{"name":"echo","arguments":{"text":"x"},"context":{"request_id":"bench-%d","identity":"bench"}}}`+"\n", id, id)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p int) float64 { return float64(lat[(len(lat)-1)*p/100].Microseconds()) }
	b.ReportMetric(pct(50), "p50-µs")
	b.ReportMetric(pct(99), "p99-µs")
}

// BenchmarkRoundTrip: one claw.tool.call at a time through the whole
// server (decode, lifecycle, params, handler, encode, flush) over os.Pipe.
func BenchmarkRoundTrip(b *testing.B) {
	c := startBench(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		c.write(b, echoLine(i+1))
		c.read(b)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkRoundTripParallel64 keeps 64 calls in flight on one connection.
func BenchmarkRoundTripParallel64(b *testing.B) {
	const inFlight = 64
	c := startBench(b)
	starts := make([]atomic.Int64, b.N+1) // by id; atomic because the pipe hides the ordering from the race detector
	lat := make([]time.Duration, 0, b.N)
	slots := make(chan struct{}, inFlight)
	b.ResetTimer()
	t0 := time.Now()
	go func() {
		for i := 1; i <= b.N; i++ {
			slots <- struct{}{}
			starts[i].Store(time.Now().UnixNano())
			c.write(b, echoLine(i))
		}
	}()
	for range b.N {
		var reply struct{ ID int }
		if err := json.Unmarshal(c.read(b), &reply); err != nil || reply.ID < 1 || reply.ID > b.N {
			b.Fatalf("reply id %d: %v", reply.ID, err)
		}
		lat = append(lat, time.Duration(time.Now().UnixNano()-starts[reply.ID].Load()))
		<-slots
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
}
