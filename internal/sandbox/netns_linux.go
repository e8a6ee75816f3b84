package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// proxyAddr is where a sandbox with network finds the egress proxy, inside
// its own network namespace. Nothing else listens there and there is no
// route out, so the proxy is the only way to any address.
const proxyAddr = "127.0.0.1:3128"

// listenInNetns opens proxyAddr inside the network namespace of pid, with
// its loopback brought up. A socket stays in the namespace it was created
// in, so the kernel's process serves a listener it can reach and the job
// cannot route around.
func listenInNetns(pid int, bringUpLoopback bool) (net.Listener, error) {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("sandbox: network namespace: %w", err)
	}
	defer ns.Close()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread changes namespace and never changes back: the
		// goroutine ends locked, so the runtime retires the thread
		// instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("sandbox: setns: %w", err)}
			return
		}
		if bringUpLoopback {
			if err := loopbackUp(); err != nil {
				ch <- result{err: err}
				return
			}
		}
		// IP_FREEBIND: bubblewrap configures the loopback itself, maybe
		// after this bind; the listener works from when it does.
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			})
			return errors.Join(err, serr)
		}}
		l, err := lc.Listen(context.Background(), "tcp4", proxyAddr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sandbox: loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sandbox: loopback up: %w", err)
	}
	return nil
}

// proxyEnv announces the proxy with the job's token to the usual clients.
func proxyEnv(token string) []string {
	u := (&url.URL{Scheme: "http", User: url.UserPassword("sandbox", token), Host: proxyAddr}).String()
	return []string{"HTTP_PROXY=" + u, "HTTPS_PROXY=" + u, "http_proxy=" + u, "https_proxy=" + u, "NO_PROXY=", "no_proxy="}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
