package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// verdict is what a corpus URL must get.
type verdict uint8

const (
	allow     verdict = iota + 1 // CheckURL accepts; the Client connects to exactly the checked address
	block                        // CheckURL refuses (or the URL does not parse); nothing is resolved or dialled
	dialBlock                    // CheckURL accepts the name; the Client refuses every resolved address
)

func (v verdict) String() string {
	return map[verdict]string{allow: "allow", block: "block", dialBlock: "dialBlock"}[v]
}

// fakeDNS is the only resolver the tests use: no real lookups.
var fakeDNS = map[string][]netip.Addr{
	"example.com":                addrs("93.184.216.34"),
	"www.example.com":            addrs("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
	"api.example.org":            addrs("8.8.8.8"),
	"cdn.example.net":            addrs("2606:4700:4700::1111"),
	"mapped-public.example.net":  addrs("::ffff:1.1.1.1"),
	"nat64-public.example.net":   addrs("64:ff9b::808:808"),
	"xn--bcher-kva.com":          addrs("93.184.216.34"),
	"under_score.example.com":    addrs("93.184.216.34"),
	"a.b.c.d.e.f.example.com":    addrs("93.184.216.34"),
	"1.example.com":              addrs("93.184.216.34"),
	"0x1.example.com":            addrs("93.184.216.34"),
	"loopback.attacker.com":      addrs("127.0.0.1"),
	"private.attacker.com":       addrs("10.0.0.1"),
	"rfc1918b.attacker.com":      addrs("172.16.0.1"),
	"rfc1918c.attacker.com":      addrs("192.168.0.1"),
	"cgnat.attacker.com":         addrs("100.64.0.1"),
	"meta.attacker.com":          addrs("169.254.169.254"),
	"ecs.attacker.com":           addrs("169.254.170.2"),
	"azure-wire.attacker.com":    addrs("168.63.129.16"),
	"alibaba.attacker.com":       addrs("100.100.100.200"),
	"oracle.attacker.com":        addrs("192.0.0.192"),
	"aws6.attacker.com":          addrs("fd00:ec2::254"),
	"mixed.attacker.com":         addrs("93.184.216.34", "127.0.0.1"),
	"mixed-last.attacker.com":    addrs("8.8.8.8", "1.1.1.1", "10.1.2.3"),
	"mixed6.attacker.com":        addrs("2606:4700:4700::1111", "::1"),
	"mapped.attacker.com":        addrs("::ffff:127.0.0.1"),
	"mapped-meta.attacker.com":   addrs("::ffff:169.254.169.254"),
	"nat64.attacker.com":         addrs("64:ff9b::a9fe:a9fe"),
	"nat64-local.attacker.com":   addrs("64:ff9b:1::a9fe:a9fe"),
	"6to4.attacker.com":          addrs("2002:7f00:1::1"),
	"teredo.attacker.com":        addrs(teredoAddr("65.54.227.120", "127.0.0.1").String()),
	"compat.attacker.com":        addrs("::7f00:1"),
	"ula.attacker.com":           addrs("fd12:3456::1"),
	"linklocal6.attacker.com":    addrs("fe80::1"),
	"zoned.attacker.com":         addrs("fe80::1%eth0"),
	"zero.attacker.com":          addrs("0.0.0.0"),
	"unspecified6.attacker.com":  addrs("::"),
	"multicast.attacker.com":     addrs("224.0.0.1"),
	"broadcast.attacker.com":     addrs("255.255.255.255"),
	"doc.attacker.com":           addrs("192.0.2.1"),
	"bench.attacker.com":         addrs("198.18.0.1"),
	"sitelocal.attacker.com":     addrs("fec0::1"),
	"isatap.attacker.com":        addrs("2a00:1450::200:5efe:7f00:1"),
	"127.0.0.1.nip.io":           addrs("127.0.0.1"),
	"169.254.169.254.nip.io":     addrs("169.254.169.254"),
	"localtest.me":               addrs("127.0.0.1"),
	"7f000001.c0a80001.rbndr.us": addrs("127.0.0.1"),
	"empty.attacker.com":         nil,
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// teredoAddr builds a Teredo address for server and client, with the client
// obfuscated (inverted) as RFC 4380 does.
func teredoAddr(server, client string) netip.Addr {
	s, c := netip.MustParseAddr(server).As4(), netip.MustParseAddr(client).As4()
	b := [16]byte{0x20, 0x01, 0, 0, s[0], s[1], s[2], s[3], 0, 0, 0xff, 0xff}
	for i := range 4 {
		b[12+i] = ^c[i]
	}
	return netip.AddrFrom16(b)
}

func fakeLookup(_ context.Context, host string) ([]netip.Addr, error) {
	a, ok := fakeDNS[strings.TrimSuffix(strings.ToLower(host), ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

var (
	allowlist   = Policy{Mode: Allowlist, Hosts: []string{"example.com", "*.example.org", "8.8.8.8", "2606:4700:4700::1111"}}
	port8080    = Policy{Mode: AllowAll, Ports: []uint16{8080}}
	exemptTen   = Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	exemptAll   = Policy{Mode: AllowAll, Exempt: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	denied      = Policy{Mode: Deny}
	zeroPolicy  = Policy{}
	teredoLocal = teredoAddr("65.54.227.120", "127.0.0.1")
	teredoMeta  = teredoAddr("65.54.227.120", "169.254.169.254")
)

type ssrfCase struct {
	url  string
	want verdict
	why  string
	p    *Policy // nil: AllowAll with default ports
}

func ssrfCorpus() []ssrfCase {
	cs := []ssrfCase{
		// Ordinary public destinations that must keep working.
		{"http://example.com/", allow, "public name, default port", nil},
		{"https://example.com/", allow, "public name over TLS", nil},
		{"https://example.com/path?q=1#frag", allow, "path, query and fragment do not matter", nil},
		{"https://EXAMPLE.com/", allow, "host names are case-insensitive", nil},
		{"https://example.com./", allow, "one trailing dot is the same absolute name", nil},
		{"HTTP://example.com/", allow, "scheme is case-insensitive and parses to http", nil},
		{"hTTpS://example.com/", allow, "mixed-case scheme parses to https", nil},
		{"https://www.example.com/", allow, "name with IPv4 and IPv6 public answers", nil},
		{"https://api.example.org/v1", allow, "another public name", nil},
		{"https://cdn.example.net/", allow, "name with a public IPv6 answer", nil},
		{"https://mapped-public.example.net/", allow, "IPv4-mapped public answer is the public IPv4", nil},
		{"https://nat64-public.example.net/", allow, "NAT64 answer embedding a public IPv4", nil},
		{"https://xn--bcher-kva.com/", allow, "IDN in Punycode form is plain ASCII", nil},
		{"https://under_score.example.com/", allow, "underscores occur in real DNS names", nil},
		{"https://a.b.c.d.e.f.example.com/", allow, "deep names are fine", nil},
		{"https://1.example.com/", allow, "numeric first label: still a name, last label is not a number", nil},
		{"https://0x1.example.com/", allow, "hex-looking first label: still a name", nil},
		{"http://example.com:80/", allow, "explicit default port", nil},
		{"https://example.com:443/", allow, "explicit default TLS port", nil},
		{"https://example.com:80/", allow, "80 is allowed whatever the scheme", nil},
		{"http://example.com:/", allow, "empty port means the default", nil},
		{"https://example.com#@127.0.0.1/", allow, "after # is the fragment, host is example.com", nil},
		{"https://example.com/@127.0.0.1", allow, "after / is the path", nil},
		{"https://example.com/?@127.0.0.1", allow, "after ? is the query", nil},
		{"http://93.184.216.34/", allow, "literal public IPv4", nil},
		{"http://8.8.8.8/", allow, "literal public IPv4", nil},
		{"https://1.1.1.1/", allow, "literal public IPv4", nil},
		{"http://9.255.255.255/", allow, "just below 10/8", nil},
		{"http://11.0.0.0/", allow, "just above 10/8", nil},
		{"http://172.15.255.255/", allow, "just below 172.16/12", nil},
		{"http://172.32.0.0/", allow, "just above 172.16/12", nil},
		{"http://192.167.255.255/", allow, "just below 192.168/16", nil},
		{"http://192.169.0.0/", allow, "just above 192.168/16", nil},
		{"http://100.63.255.255/", allow, "just below CGNAT", nil},
		{"http://100.128.0.0/", allow, "just above CGNAT", nil},
		{"http://126.255.255.255/", allow, "just below loopback", nil},
		{"http://128.0.0.0/", allow, "just above loopback", nil},
		{"http://169.253.255.255/", allow, "just below link-local", nil},
		{"http://169.255.0.0/", allow, "just above link-local", nil},
		{"http://223.255.255.255/", allow, "just below multicast", nil},
		{"http://1.0.0.0/", allow, "just above 0/8", nil},
		{"http://[2606:4700:4700::1111]/", allow, "literal public IPv6", nil},
		{"http://[2a00:1450:4001:80b::200e]/", allow, "literal public IPv6", nil},
		{"http://[2606:4700:4700:0:0:0:0:1111]/", allow, "uncompressed public IPv6", nil},
		{"http://[2606:4700:4700::1111]:443/", allow, "bracketed IPv6 with port", nil},
		{"http://[::ffff:8.8.8.8]/", allow, "IPv4-mapped public address", nil},
		{"http://[::ffff:808:808]/", allow, "IPv4-mapped public address in hex", nil},
		{"http://[64:ff9b::8.8.8.8]/", allow, "NAT64 of a public address", nil},
		{"http://[64:ff9b::808:808]/", allow, "NAT64 of a public address in hex", nil},
		{"http://[2002:808:808::1]/", allow, "6to4 of a public address", nil},

		// Schemes: only http and https.
		{"ftp://example.com/", block, "ftp scheme", nil},
		{"file:///etc/passwd", block, "local file read", nil},
		{"file://localhost/etc/passwd", block, "file with a host", nil},
		{"gopher://127.0.0.1:6379/_INFO", block, "gopher smuggles raw bytes to Redis", nil},
		{"gopher://example.com/", block, "gopher even to a public host", nil},
		{"dict://127.0.0.1:11211/stats", block, "dict talks to memcached", nil},
		{"ldap://127.0.0.1/", block, "ldap", nil},
		{"sftp://example.com/", block, "sftp", nil},
		{"tftp://example.com/", block, "tftp", nil},
		{"jar:http://example.com/x.jar!/", block, "jar wrapper scheme", nil},
		{"netdoc:///etc/passwd", block, "Java netdoc", nil},
		{"ws://example.com/", block, "websocket is not a plain fetch", nil},
		{"wss://example.com/", block, "secure websocket", nil},
		{"data:text/plain,hi", block, "data URL", nil},
		{"javascript:alert(1)", block, "javascript URL", nil},
		{"mailto:a@example.com", block, "mailto", nil},
		{"//example.com/", block, "scheme-relative URL", nil},
		{"example.com/", block, "no scheme at all", nil},
		{"httpx://example.com/", block, "look-alike scheme", nil},
		{"http+unix://%2Fvar%2Frun%2Fdocker.sock/info", block, "unix socket scheme", nil},
		{"unix:///var/run/docker.sock", block, "unix socket", nil},
		{"https:example.com", block, "opaque https URL with no authority", nil},

		// Userinfo tricks.
		{"http://example.com@10.0.0.1/", block, "userinfo makes example.com the user; host is private", nil},
		{"http://example.com@127.0.0.1/", block, "userinfo hides loopback", nil},
		{"http://user:pass@example.com/", block, "credentials in URLs are refused even for public hosts", nil},
		{"http://user@example.com/", block, "any userinfo is refused", nil},
		{"http://:@example.com/", block, "empty userinfo is still userinfo", nil},
		{"http://example.com:80@127.0.0.1/", block, "port-looking password, host is loopback", nil},
		{"http://127.0.0.1#@example.com/", block, "fragment trick: host is 127.0.0.1", nil},
		{"http://127.0.0.1?@example.com/", block, "query trick: host is 127.0.0.1", nil},
		{"http://127.0.0.1/@example.com/", block, "path trick: host is 127.0.0.1", nil},
		{"http://10.0.0.1#.example.com/", block, "fragment after a private host", nil},
		{"http://example.com%40127.0.0.1/", block, "percent-encoded @ in the host", nil},
		{"http://example.com\\@127.0.0.1/", block, "backslash before @: parsers disagree", nil},
		{"http://127.0.0.1:80\\@example.com/", block, "backslash in the port", nil},
		{"http://a@b@127.0.0.1/", block, "two @ signs", nil},
		{"http://example.com @127.0.0.1/", block, "space before @", nil},

		// Backslashes and slash confusion.
		{"http:\\\\10.0.0.1/", block, "backslashes: browsers read a host, Go an opaque URL", nil},
		{"http:\\\\example.com/", block, "backslashes even to a public name", nil},
		{"http:/\\10.0.0.1/", block, "slash backslash", nil},
		{"http:\\/10.0.0.1/", block, "backslash slash", nil},
		{"http:/10.0.0.1/", block, "one slash: no authority", nil},
		{"http:10.0.0.1", block, "opaque form of a private host", nil},
		{"http:///10.0.0.1/", block, "three slashes: empty host", nil},
		{"http://10.0.0.1\\.example.com/", block, "backslash inside the host", nil},
		{"http://example.com\\.10.0.0.1/", block, "backslash inside the host", nil},
		{"http://\\\\10.0.0.1/", block, "backslashes as the host", nil},

		// Hosts that are missing or malformed.
		{"http:///", block, "no host", nil},
		{"http://", block, "no host at all", nil},
		{"http://./", block, "host is only a dot", nil},
		{"http://../", block, "host is two dots", nil},
		{"http://example.com../", block, "two trailing dots: empty label", nil},
		{"http://.example.com/", block, "leading dot: empty label", nil},
		{"http://exa..mple.com/", block, "empty label inside", nil},
		{"http://" + strings.Repeat("a", 64) + ".com/", block, "label over 63 bytes", nil},
		{"http://" + strings.Repeat("a.", 127) + "com/", block, "name over 253 bytes", nil},
		{"http://exa mple.com/", block, "space in host", nil},
		{"http://exa\tmple.com/", block, "tab in host", nil},
		{"http://example.com%00.attacker.com/", block, "NUL in host", nil},
		{"http://example.com%0a/", block, "newline in host", nil},
		{"http://exa*mple.com/", block, "star in host", nil},
		{"http://[example.com]/", block, "brackets around a name", nil},
		{"http://[127.0.0.1]/", block, "brackets around IPv4", nil},
		{"http://[::1/", block, "unterminated bracket", nil},
		{"http://::1/", block, "unbracketed IPv6", nil},
		{"http://[::1]x/", block, "text after the bracket", nil},

		// Ports.
		{"http://example.com:22/", block, "SSH on a public host", nil},
		{"http://example.com:25/", block, "SMTP smuggling", nil},
		{"http://example.com:6379/", block, "Redis", nil},
		{"http://example.com:11211/", block, "memcached", nil},
		{"http://example.com:5432/", block, "PostgreSQL", nil},
		{"http://8.8.8.8:53/", block, "DNS port on a literal", nil},
		{"http://example.com:8080/", block, "8080 not in the default port list", nil},
		{"http://example.com:0/", block, "port 0", nil},
		{"http://example.com:65536/", block, "port out of range", nil},
		{"http://example.com:99999999999/", block, "port overflow", nil},
		{"http://example.com:0080/", block, "leading zeros in the port", nil},
		{"http://example.com:-80/", block, "negative port", nil},
		{"http://example.com:80:80/", block, "two ports", nil},
		{"http://example.com:8O/", block, "letter O in the port", nil},
		{"http://example.com:+80/", block, "plus sign in the port", nil},
		{"http://example.com:8080/", allow, "8080 is listed by this policy", &port8080},
		{"http://example.com/", block, "80 is not listed by this policy", &port8080},
		{"http://10.0.0.1:6379/", allow, "an exempted address is reachable on any port", &exemptTen},

		// Loopback and localhost names.
		{"http://localhost/", block, "localhost", nil},
		{"http://LOCALHOST/", block, "case of localhost", nil},
		{"http://LocalHost./", block, "case and trailing dot", nil},
		{"http://localhost:443/", block, "localhost with port", nil},
		{"http://foo.localhost/", block, "*.localhost is loopback (RFC 6761)", nil},
		{"http://a.b.LOCALHOST/", block, "deep *.localhost", nil},
		{"http://localhost.localdomain/", block, "localdomain", nil},
		{"http://ip6-localhost/", block, "Debian name for ::1, single label", nil},
		{"http://ip6-loopback/", block, "single label", nil},
		{"http://localtest.me/", dialBlock, "public name resolving to 127.0.0.1", nil},
		{"http://127.0.0.1.nip.io/", dialBlock, "wildcard DNS to loopback", nil},
		{"http://169.254.169.254.nip.io/", dialBlock, "wildcard DNS to metadata", nil},
		{"http://7f000001.c0a80001.rbndr.us/", dialBlock, "rebinding service answering loopback", nil},
		{"http://loopback.attacker.com/", dialBlock, "attacker name resolving to loopback", nil},
		{"http://Loopback.Attacker.Com./", dialBlock, "case and trailing dot do not help", nil},

		// Private, reserved and special names resolved by DNS.
		{"http://private.attacker.com/", dialBlock, "name resolving to 10/8", nil},
		{"http://rfc1918b.attacker.com/", dialBlock, "name resolving to 172.16/12", nil},
		{"http://rfc1918c.attacker.com/", dialBlock, "name resolving to 192.168/16", nil},
		{"http://cgnat.attacker.com/", dialBlock, "name resolving to CGNAT", nil},
		{"http://meta.attacker.com/", dialBlock, "name resolving to the metadata address", nil},
		{"http://ecs.attacker.com/", dialBlock, "name resolving to ECS credentials", nil},
		{"http://azure-wire.attacker.com/", dialBlock, "name resolving to the Azure wire server", nil},
		{"http://alibaba.attacker.com/", dialBlock, "name resolving to Alibaba metadata", nil},
		{"http://oracle.attacker.com/", dialBlock, "name resolving to Oracle metadata", nil},
		{"http://aws6.attacker.com/", dialBlock, "name resolving to AWS IPv6 metadata", nil},
		{"http://mixed.attacker.com/", dialBlock, "one public and one loopback answer: refuse the name", nil},
		{"http://mixed-last.attacker.com/", dialBlock, "private answer last", nil},
		{"http://mixed6.attacker.com/", dialBlock, "public IPv6 and ::1", nil},
		{"http://mapped.attacker.com/", dialBlock, "IPv4-mapped loopback answer", nil},
		{"http://mapped-meta.attacker.com/", dialBlock, "IPv4-mapped metadata answer", nil},
		{"http://nat64.attacker.com/", dialBlock, "NAT64 metadata answer", nil},
		{"http://nat64-local.attacker.com/", dialBlock, "local-use NAT64 answer", nil},
		{"http://6to4.attacker.com/", dialBlock, "6to4 loopback answer", nil},
		{"http://teredo.attacker.com/", dialBlock, "Teredo answer with an obfuscated loopback client", nil},
		{"http://compat.attacker.com/", dialBlock, "IPv4-compatible answer", nil},
		{"http://ula.attacker.com/", dialBlock, "unique local IPv6 answer", nil},
		{"http://linklocal6.attacker.com/", dialBlock, "link-local IPv6 answer", nil},
		{"http://zoned.attacker.com/", dialBlock, "zoned link-local answer", nil},
		{"http://zero.attacker.com/", dialBlock, "0.0.0.0 reaches local services on Linux", nil},
		{"http://unspecified6.attacker.com/", dialBlock, ":: reaches local services", nil},
		{"http://multicast.attacker.com/", dialBlock, "multicast answer", nil},
		{"http://broadcast.attacker.com/", dialBlock, "broadcast answer", nil},
		{"http://doc.attacker.com/", dialBlock, "documentation range answer", nil},
		{"http://bench.attacker.com/", dialBlock, "benchmarking range answer", nil},
		{"http://sitelocal.attacker.com/", dialBlock, "deprecated site-local answer", nil},
		{"http://isatap.attacker.com/", dialBlock, "ISATAP identifier embedding loopback", nil},
		{"http://empty.attacker.com/", dialBlock, "a name with no addresses is not reached", nil},
		{"http://nxdomain.attacker.com/", dialBlock, "a name that does not resolve is not reached", nil},

		// Literal special IPv4 addresses.
		{"http://127.0.0.1/", block, "loopback", nil},
		{"http://127.255.255.254/", block, "all of 127/8 is loopback", nil},
		{"http://127.0.0.1:80/", block, "loopback with port", nil},
		{"http://0.0.0.0/", block, "this host", nil},
		{"http://0.1.2.3/", block, "0/8", nil},
		{"http://10.0.0.1/", block, "RFC 1918", nil},
		{"http://10.255.255.255/", block, "RFC 1918 top", nil},
		{"http://172.16.0.1/", block, "RFC 1918", nil},
		{"http://172.31.255.255/", block, "RFC 1918 top", nil},
		{"http://192.168.0.1/", block, "RFC 1918", nil},
		{"http://192.168.255.255/", block, "RFC 1918 top", nil},
		{"http://100.64.0.1/", block, "CGNAT", nil},
		{"http://100.127.255.255/", block, "CGNAT top", nil},
		{"http://169.254.0.1/", block, "link-local", nil},
		{"http://192.0.0.1/", block, "IETF protocol assignments", nil},
		{"http://192.0.2.1/", block, "TEST-NET-1", nil},
		{"http://198.51.100.1/", block, "TEST-NET-2", nil},
		{"http://203.0.113.1/", block, "TEST-NET-3", nil},
		{"http://198.18.0.1/", block, "benchmarking", nil},
		{"http://198.19.255.255/", block, "benchmarking top", nil},
		{"http://192.88.99.1/", block, "6to4 relay anycast", nil},
		{"http://224.0.0.1/", block, "multicast", nil},
		{"http://239.255.255.250/", block, "SSDP multicast", nil},
		{"http://240.0.0.1/", block, "reserved", nil},
		{"http://255.255.255.255/", block, "broadcast", nil},

		// Cloud metadata.
		{"http://169.254.169.254/latest/meta-data/", block, "AWS, GCP, Azure, DigitalOcean metadata", nil},
		{"http://169.254.169.254/metadata/instance?api-version=2021-02-01", block, "Azure IMDS", nil},
		{"http://169.254.169.254/computeMetadata/v1/", block, "GCP metadata by address", nil},
		{"http://169.254.169.254/metadata/v1.json", block, "DigitalOcean metadata", nil},
		{"http://169.254.170.2/v2/credentials", block, "AWS ECS task credentials", nil},
		{"http://169.254.170.23/v1/credentials", block, "AWS EKS pod identity", nil},
		{"http://[fd00:ec2::254]/latest/meta-data/", block, "AWS IPv6 metadata", nil},
		{"http://[fd00:ec2::23]/", block, "AWS IPv6 pod identity", nil},
		{"http://168.63.129.16/machine?comp=goalstate", block, "Azure wire server, a public address", nil},
		{"http://100.100.100.200/latest/meta-data/", block, "Alibaba Cloud metadata", nil},
		{"http://192.0.0.192/opc/v1/instance/", block, "Oracle Cloud v1 metadata", nil},
		{"http://169.254.0.23/", block, "Tencent Cloud metadata", nil},
		{"http://metadata.google.internal/computeMetadata/v1/", block, "GCP metadata name", nil},
		{"http://METADATA.GOOGLE.INTERNAL./", block, "case and trailing dot", nil},
		{"http://metadata.google.internal:80/", block, "with port", nil},
		{"http://metadata.goog/", block, "GCP metadata alias", nil},
		{"http://metadata/", block, "single-label metadata name", nil},
		{"http://instance-data/latest/", block, "AWS metadata name", nil},
		{"http://instance-data.ec2.internal/", block, "AWS metadata FQDN", nil},
		{"http://metadata.tencentyun.com/", block, "Tencent metadata name", nil},
		{"http://anything.internal/", block, ".internal is private use", nil},
		{"http://kubernetes.default.svc/", block, "Kubernetes service name", nil},
		{"http://kubernetes.default.svc.cluster.local/", block, "Kubernetes FQDN under .local", nil},
		{"http://printer.local/", block, "mDNS .local", nil},
		{"http://router.home.arpa/", block, "home network (RFC 8375)", nil},
		{"http://1.0.0.127.in-addr.arpa/", block, "reverse DNS zone names", nil},
		{"http://nas.lan/", block, ".lan", nil},
		{"http://wiki.corp/", block, ".corp", nil},
		{"http://wiki.intranet/", block, ".intranet", nil},
		{"http://db.private/", block, ".private", nil},
		{"http://router.home/", block, ".home", nil},
		{"http://example.test/", block, ".test never resolves publicly", nil},
		{"http://example.invalid/", block, ".invalid", nil},
		{"http://kubernetes/", block, "single label completed by search domains", nil},
		{"http://intranet/", block, "single label", nil},
		{"http://[::ffff:169.254.169.254]/", block, "IPv4-mapped metadata", nil},
		{"http://[::ffff:a9fe:a9fe]/", block, "IPv4-mapped metadata in hex", nil},
		{"http://[0:0:0:0:0:ffff:169.254.169.254]/", block, "uncompressed mapped metadata", nil},
		{"http://[64:ff9b::169.254.169.254]/", block, "NAT64 metadata", nil},
		{"http://[64:ff9b::a9fe:a9fe]/", block, "NAT64 metadata in hex", nil},
		{"http://[64:ff9b:1::a9fe:a9fe]/", block, "local-use NAT64 /96 layout", nil},
		{"http://[64:ff9b:1:a9fe:a9:fe00::]/", block, "local-use NAT64 /48 layout", nil},
		{"http://[2002:a9fe:a9fe::]/", block, "6to4 metadata", nil},
		{"http://[::a9fe:a9fe]/", block, "IPv4-compatible metadata", nil},
		{"http://[::169.254.169.254]/", block, "IPv4-compatible metadata, dotted", nil},
		{"http://[" + teredoMeta.String() + "]/", block, "Teredo with obfuscated metadata client", nil},
		{"http://169.254.169.254/", block, "metadata is never exempt", &exemptAll},
		{"http://[::ffff:169.254.169.254]/", block, "mapped metadata is never exempt", &exemptAll},
		{"http://[64:ff9b::a9fe:a9fe]/", block, "NAT64 metadata is never exempt", &exemptAll},
		{"http://[2002:a9fe:a9fe::1]/", block, "6to4 metadata is never exempt", &exemptAll},
		{"http://[" + teredoMeta.String() + "]/", block, "Teredo metadata is never exempt", &exemptAll},
		{"http://[fd00:ec2::254]/", block, "AWS IPv6 metadata is never exempt", &exemptAll},
		{"http://168.63.129.16/", block, "Azure wire server is never exempt", &exemptAll},

		// IPv6 literals.
		{"http://[::1]/", block, "IPv6 loopback", nil},
		{"http://[0:0:0:0:0:0:0:1]/", block, "uncompressed loopback", nil},
		{"http://[0000::1]/", block, "padded loopback", nil},
		{"http://[::]/", block, "unspecified", nil},
		{"http://[::ffff:127.0.0.1]/", block, "IPv4-mapped loopback", nil},
		{"http://[::ffff:7f00:1]/", block, "IPv4-mapped loopback in hex", nil},
		{"http://[::FFFF:7F00:1]/", block, "upper-case hex", nil},
		{"http://[::ffff:10.0.0.1]/", block, "IPv4-mapped private", nil},
		{"http://[::ffff:0.0.0.0]/", block, "IPv4-mapped zero", nil},
		{"http://[::127.0.0.1]/", block, "IPv4-compatible loopback", nil},
		{"http://[::7f00:1]/", block, "IPv4-compatible loopback in hex", nil},
		{"http://[::8.8.8.8]/", block, "IPv4-compatible is deprecated, refused even when public", nil},
		{"http://[64:ff9b::127.0.0.1]/", block, "NAT64 loopback", nil},
		{"http://[64:ff9b::7f00:1]/", block, "NAT64 loopback in hex", nil},
		{"http://[64:ff9b::10.0.0.1]/", block, "NAT64 private", nil},
		{"http://[64:ff9b:1::7f00:1]/", block, "local-use NAT64 loopback", nil},
		{"http://[64:ff9b:1::808:808]/", block, "local-use NAT64 is refused unless exempted", nil},
		{"http://[2002:7f00:1::]/", block, "6to4 loopback", nil},
		{"http://[2002:a00:1::1]/", block, "6to4 private", nil},
		{"http://[2002:c0a8:101::]/", block, "6to4 192.168.1.1", nil},
		{"http://[2001::1]/", block, "Teredo prefix", nil},
		{"http://[" + teredoLocal.String() + "]/", block, "Teredo with obfuscated loopback client", nil},
		{"http://[2001:2::1]/", block, "IPv6 benchmarking", nil},
		{"http://[2001:db8::1]/", block, "documentation", nil},
		{"http://[3fff::1]/", block, "documentation (RFC 9637)", nil},
		{"http://[fe80::1]/", block, "link-local", nil},
		{"http://[febf::1]/", block, "link-local top", nil},
		{"http://[fec0::1]/", block, "site-local", nil},
		{"http://[fc00::1]/", block, "unique local", nil},
		{"http://[fd12:3456::1]/", block, "unique local", nil},
		{"http://[ff02::1]/", block, "multicast", nil},
		{"http://[100::1]/", block, "discard-only", nil},
		{"http://[5f00::1]/", block, "SRv6 SIDs", nil},
		{"http://[::2]/", block, "outside global unicast", nil},
		{"http://[4000::1]/", block, "unallocated, outside 2000::/3", nil},
		{"http://[2a00:1450::200:5efe:7f00:1]/", block, "ISATAP identifier embedding loopback", nil},
		{"http://[2a00:1450::5efe:a9fe:a9fe]/", block, "ISATAP identifier embedding metadata", nil},

		// Zone identifiers.
		{"http://[fe80::1%25eth0]/", block, "zoned link-local", nil},
		{"http://[fe80::1%25lo]/", block, "zone naming the loopback interface", nil},
		{"http://[2606:4700:4700::1111%25eth0]/", block, "zones are refused even on public addresses", nil},
		{"http://[fe80::1%eth0]/", block, "unescaped zone", nil},
		{"http://[::1%251]/", block, "numeric zone on loopback", nil},
		{"http://127.0.0.1%25eth0/", block, "zone on IPv4", nil},

		// Percent-encoding.
		{"http://%31%32%37%2e%30%2e%30%2e%31/", block, "percent-encoded 127.0.0.1", nil},
		{"http://127%2e0%2e0%2e1/", block, "percent-encoded dots", nil},
		{"http://%6c%6f%63%61%6c%68%6f%73%74/", block, "percent-encoded localhost", nil},
		{"http://exa%6dple.com/", block, "percent-encoding in a public name", nil},
		{"http://%E2%91%A0%E2%91%A1%E2%91%A6.0.0.1/", block, "percent-encoded circled digits", nil},
		{"http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", block, "percent-encoded full-width digits", nil},
		{"http://127.0.0.1%00.example.com/", block, "encoded NUL truncation", nil},
		{"http://%5B::1%5D/", block, "encoded brackets", nil},

		// IDNA, full-width and look-alikes.
		{"http://１２７.０.０.１/", block, "full-width digits map to 127.0.0.1 under IDNA", nil},
		{"http://127。0。0。1/", block, "ideographic full stops map to dots", nil},
		{"http://127．0．0．1/", block, "full-width full stops", nil},
		{"http://127｡0｡0｡1/", block, "half-width ideographic full stops", nil},
		{"http://①②⑦.0.0.1/", block, "circled digits", nil},
		{"http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", block, "enclosed letters map to localhost", nil},
		{"http://locａlhost/", block, "one full-width letter", nil},
		{"http://ＬＯＣＡＬＨＯＳＴ/", block, "full-width localhost", nil},
		{"http://ｅｘａｍｐｌｅ.com/", block, "non-ASCII is refused even when it would map to a public name", nil},
		{"http://bücher.com/", block, "Unicode IDN: callers send the xn-- form", nil},
		{"http://exam\u00adple.com/", block, "soft hyphen is deleted by IDNA mapping", nil},
		{"http://exam\u200bple.com/", block, "zero-width space", nil},
		{"http://metadata.google.internal\u3002/", block, "ideographic dot as the trailing dot", nil},
		{"http://ᵉxample.com/", block, "modifier letter", nil},
		{"http://0x7f.0.0.1\uff0e/", block, "full-width trailing dot on hex", nil},

		// Allowlist mode.
		{"https://example.com/", allow, "named exactly", &allowlist},
		{"https://EXAMPLE.COM./", allow, "case and trailing dot", &allowlist},
		{"https://api.example.org/", allow, "matches *.example.org", &allowlist},
		{"https://8.8.8.8/", allow, "a literal named in the allowlist", &allowlist},
		{"https://[2606:4700:4700::1111]/", allow, "an IPv6 literal named in the allowlist", &allowlist},
		{"https://example.org/", block, "*.example.org does not match the apex", &allowlist},
		{"https://evil.com/", block, "not named", &allowlist},
		{"https://example.com.evil.com/", block, "suffix trick", &allowlist},
		{"https://evil-example.com/", block, "look-alike", &allowlist},
		{"https://xexample.org/", block, "not a label boundary", &allowlist},
		{"https://93.184.216.34/", block, "the literal of an allowed name is not named", &allowlist},
		{"https://example.com@evil.com/", block, "userinfo trick against the allowlist", &allowlist},
		{"https://evil.com#.example.org/", block, "fragment trick against the allowlist", &allowlist},
		{"https://evil.com/.example.org/", block, "path trick against the allowlist", &allowlist},
		{"https://evil.com?.example.org/", block, "query trick against the allowlist", &allowlist},
		{"https://evil.com\\.example.org/", block, "backslash trick against the allowlist", &allowlist},
		{"https://evil.com%2F.example.org/", block, "encoded slash trick", &allowlist},
		{"https://[::ffff:8.8.8.8]/", block, "mapped form of an allowed literal is another name", &allowlist},
		{"https://localhost.example.org/", dialBlock, "allowlisted pattern resolving nowhere known", &allowlist},

		// Deny and zero policies.
		{"https://example.com/", block, "network denied", &denied},
		{"https://8.8.8.8/", block, "network denied for literals too", &denied},
		{"https://example.com/", block, "the zero Policy denies", &zeroPolicy},

		// Exemptions.
		{"http://10.0.0.1/", allow, "operator exempted 10/8", &exemptTen},
		{"http://[::ffff:10.0.0.1]/", allow, "mapped form of an exempted address", &exemptTen},
		{"http://[64:ff9b::a00:1]/", allow, "NAT64 form of an exempted address", &exemptTen},
		{"http://private.attacker.com/", allow, "a name resolving into an exempted range", &exemptTen},
		{"http://127.0.0.1/", block, "exemption of 10/8 does not cover loopback", &exemptTen},
		{"http://mixed.attacker.com/", dialBlock, "exemption of 10/8 does not cover loopback answers", &exemptTen},
	}
	// Every IPv4 encoding trick, for several sensitive targets.
	for _, target := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.1", "0.0.0.0", "100.100.100.200"} {
		for _, e := range ipv4Encodings(netip.MustParseAddr(target)) {
			cs = append(cs, ssrfCase{"http://" + e.host + "/", block, e.why + " of " + target, nil})
		}
	}
	// The same tricks on a public address are refused too: one form only.
	for _, e := range ipv4Encodings(netip.MustParseAddr("8.8.8.8"))[:8] {
		cs = append(cs, ssrfCase{"http://" + e.host + "/", block, e.why + " of a public address: only the dotted quad is accepted", nil})
	}
	return cs
}

type encoding struct{ host, why string }

// ipv4Encodings returns the forms URL parsers, browsers and inet_aton read
// as a, other than the canonical dotted quad.
func ipv4Encodings(a netip.Addr) []encoding {
	b := a.As4()
	u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	b234 := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	b34 := uint32(b[2])<<8 | uint32(b[3])
	m := a.As16()
	full := func(s string) string {
		var sb strings.Builder
		for _, r := range s {
			switch {
			case '0' <= r && r <= '9':
				sb.WriteRune(r - '0' + '０')
			case r == '.':
				sb.WriteRune('．')
			default:
				sb.WriteRune(r)
			}
		}
		return sb.String()
	}
	return []encoding{
		{fmt.Sprintf("%d", u), "32-bit decimal"},
		{fmt.Sprintf("0x%x", u), "32-bit hex"},
		{fmt.Sprintf("0X%X", u), "32-bit upper-case hex"},
		{fmt.Sprintf("0%o", u), "32-bit octal"},
		{fmt.Sprintf("0%o.0%o.0%o.0%o", b[0], b[1], b[2], b[3]), "dotted octal"},
		{fmt.Sprintf("0x%x.0x%x.0x%x.0x%x", b[0], b[1], b[2], b[3]), "dotted hex"},
		{fmt.Sprintf("0x%02x.%d.0%o.%d", b[0], b[1], b[2], b[3]), "mixed hex, decimal and octal"},
		{fmt.Sprintf("%d.%d", b[0], b234), "two-part short form"},
		{fmt.Sprintf("%d.%d.%d", b[0], b[1], b34), "three-part short form"},
		{fmt.Sprintf("0x%x.%d", b[0], b234), "two-part hex short form"},
		{fmt.Sprintf("%03d.%03d.%03d.%03d", b[0], b[1], b[2], b[3]), "zero-padded octets (octal to inet_aton)"},
		{fmt.Sprintf("%d.%d.%d.%d.", b[0], b[1], b[2], b[3]) + ".", "two trailing dots"},
		{fmt.Sprintf("%d.%d.%d.%d:80", b[0], b[1], b[2], b[3]) + "%23", "encoded # after the port"},
		{full(fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])), "full-width digits and dots"},
		{strings.ReplaceAll(a.String(), ".", "。"), "ideographic dots"},
		{fmt.Sprintf("[::ffff:%x:%x]", u>>16, u&0xffff), "IPv4-mapped IPv6"},
		{fmt.Sprintf("[64:ff9b::%x:%x]", u>>16, u&0xffff), "NAT64 IPv6"},
		{fmt.Sprintf("[2002:%x:%x::]", u>>16, u&0xffff), "6to4 IPv6"},
		{"[" + teredoAddr("65.54.227.120", a.String()).String() + "]", "Teredo IPv6 with obfuscated client"},
		{fmt.Sprintf("[::%x:%x]", u>>16, u&0xffff), "IPv4-compatible IPv6"},
		{"[" + netip.AddrFrom16(m).String() + "]", "mapped IPv6 written by netip"},
		{fmt.Sprintf("%s%%2e", a), "percent-encoded trailing dot"},
	}
}

// recorder stands in for the network: it records the address a Client
// would connect to and refuses the connection.
type recorder struct {
	mu   sync.Mutex
	seen []netip.AddrPort // guarded by mu
}

var errRecorded = errors.New("test: connection recorded, not made")

func (r *recorder) connect(_ context.Context, _ string, ap netip.AddrPort) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, ap)
	return nil, errRecorded
}

func (r *recorder) take() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// newTestClient returns a Client with the fake resolver whose connections
// go to a recorder: no network.
func newTestClient(p Policy) (*Client, *recorder) {
	c := NewClient(p, Limits{Resolver: fakeLookup})
	r := &recorder{}
	c.connect = r.connect
	return c, r
}

// TestSSRFCorpus runs every hostile and ordinary URL through CheckURL and
// through a Client with the fake resolver.
func TestSSRFCorpus(t *testing.T) {
	cs := ssrfCorpus()
	if len(cs) < 300 {
		t.Fatalf("corpus has %d cases, want at least 300", len(cs))
	}
	clients := map[*Policy]*Client{}
	recorders := map[*Policy]*recorder{}
	for _, tc := range cs {
		p := tc.p
		if p == nil {
			p = &open
		}
		if clients[p] == nil {
			clients[p], recorders[p] = newTestClient(*p)
		}
		c, rec := clients[p], recorders[p]
		name := fmt.Sprintf("%s(%s)", tc.url, tc.why)

		// CheckURL alone.
		u, perr := url.Parse(tc.url)
		var cerr error
		if perr == nil {
			cerr = p.CheckURL(u)
		}
		switch {
		case tc.want == block && perr == nil && !errors.Is(cerr, ErrBlocked):
			t.Errorf("%s: CheckURL allowed it", name)
		case tc.want != block && (perr != nil || cerr != nil):
			t.Errorf("%s: CheckURL refused it: %v %v", name, perr, cerr)
		}

		// The full Client.
		_, err := c.Do(context.Background(), "GET", tc.url, nil)
		seen := rec.take()
		switch tc.want {
		case block, dialBlock:
			if len(seen) != 0 {
				t.Errorf("%s: client connected to %v", name, seen)
			}
			if err == nil {
				t.Errorf("%s: client succeeded", name)
			} else if tc.want == block && !errors.Is(err, ErrBlocked) {
				t.Errorf("%s: client error does not wrap ErrBlocked: %v", name, err)
			}
		case allow:
			if !errors.Is(err, errRecorded) {
				t.Errorf("%s: client did not try to connect: %v", name, err)
				continue
			}
			want := expectedAddrs(u)
			for _, ap := range seen {
				if !containsAddr(want, ap.Addr()) {
					t.Errorf("%s: client connected to %v, not a checked address %v", name, ap, want)
				}
			}
		}
	}
}

// expectedAddrs is where an allowed URL may connect: its literal address or
// its fake DNS answers, unmapped.
func expectedAddrs(u *url.URL) []netip.Addr {
	h := u.Hostname()
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	var out []netip.Addr
	for _, a := range fakeDNS[strings.TrimSuffix(strings.ToLower(h), ".")] {
		out = append(out, a.Unmap())
	}
	return out
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
