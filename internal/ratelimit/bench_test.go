package ratelimit

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// benchIPs is a spread of clients, IPv4 and IPv6, so that the benchmarks
// touch many shards and map entries rather than one hot entry.
func benchIPs(n int) []netip.Addr {
	ips := make([]netip.Addr, n)
	for i := range ips {
		if i%4 == 3 {
			ips[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 0, 0, 1, 2, 3, 4, 5, 6, 7, byte(i)})
		} else {
			ips[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
	}
	return ips
}

var benchOrgs = []string{"org-alpha", "org-beta", "org-gamma", "org-delta"}

// Real clock, default config: what the HTTP hot path pays per request.
func BenchmarkAllow(b *testing.B) {
	for _, bc := range []struct {
		name string
		org  bool
	}{{"ip", false}, {"ip+org", true}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New(Config{})
			ips := benchIPs(4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				org := ""
				if bc.org {
					org = benchOrgs[i&3]
				}
				l.Allow(ips[i&4095], org, Read)
				i++
			}
		})
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		org  bool
	}{{"ip", false}, {"ip+org", true}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New(Config{})
			ips := benchIPs(1 << 16)
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 7919
				for pb.Next() {
					org := ""
					if bc.org {
						org = benchOrgs[i&3]
					}
					l.Allow(ips[i&(1<<16-1)], org, Read)
					i++
				}
			})
		})
	}
}

func BenchmarkClientIP(b *testing.B) {
	r := request("10.0.0.1:443", "X-Forwarded-For", "203.0.113.250, 192.0.2.1, 10.9.9.9")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ClientIP(r, behindProxy); err != nil {
			b.Fatal(err)
		}
	}
}
