// Package scantest makes fake credentials of the right shapes from a seeded
// PRNG, for tests and benchmarks of secret scanners. Nothing key-shaped is
// stored in the repository (in particular no GitHub token with a valid
// checksum): corpus lines name fake values with «markers» that Expand fills.
//
// It carries its own GitHub checksum code, independent of package scan's,
// so a test that generates with one and verifies with the other checks both.
package scantest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
)

// VaultValue is the tenant's vault value used by the corpus: bytes
// chosen so that every encoding differs from the others.
var VaultValue = []byte("vlt/Q9+zk?&=r2~\xfb\xff\x01 tail")

const (
	genAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	B64URL    = genAlnum + "-_"
	B64       = genAlnum + "+/"
	genUpper2 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	genHex    = "0123456789abcdef"
	genDigits = "0123456789"
	genPW     = genAlnum + "!#%^*-_+"
)

// Gen makes fake values; the same seed gives the same values.
type Gen struct{ r *rand.Rand }

// NewGen returns a generator seeded with seed.
func NewGen(seed uint64) *Gen { return &Gen{rand.New(rand.NewPCG(seed, 0x5ca9))} }

// Str returns n characters of alphabet; with mixed set it retries until the
// result has a digit, an upper- and a lower-case letter, as real keys
// nearly always do.
func (g *Gen) Str(alphabet string, n int, mixed bool) string {
	for {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[g.r.IntN(len(alphabet))]
		}
		if !mixed || mixedCase(b) {
			return string(b)
		}
	}
}

func (g *Gen) GitHub(prefix string, valid bool) string {
	body := g.Str(genAlnum, 30, true)
	var sum [6]byte
	base62CRC([]byte(body), &sum)
	if !valid {
		sum[0] = base62Digits[(strings.IndexByte(base62Digits, sum[0])+1)%62]
	}
	return prefix + body + string(sum[:])
}

func (g *Gen) jwt(header string) string {
	enc := base64.RawURLEncoding
	payload := fmt.Sprintf(`{"sub":"%s","iat":%d}`, g.Str(genAlnum, 12, false), 1700000000+g.r.IntN(1e6))
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + g.Str(B64URL, 43, false)
}

func (g *Gen) pem(label string) string {
	var b strings.Builder
	b.WriteString("-----BEGIN " + label + "-----\n")
	for range 4 {
		b.WriteString(g.Str(B64, 64, false) + "\n")
	}
	b.WriteString("-----END " + label + "-----")
	return b.String()
}

func (g *Gen) Make(name string) string {
	switch name {
	case "awsid":
		return "AKIA" + g.Str(genUpper2, 16, false)
	case "awsidsts":
		return "ASIA" + g.Str(genUpper2, 16, false)
	case "awssecret":
		return g.Str(B64, 40, true)
	case "ghp", "gho", "ghu", "ghs", "ghr":
		return g.GitHub(name+"_", true)
	case "ghbad":
		return g.GitHub("ghp_", false)
	case "ghpat":
		return "github_pat_11" + g.Str(genAlnum, 20, true) + "_" + g.Str(genAlnum, 59, true)
	case "glpat":
		return "glpat-" + g.Str(genAlnum, 20, true)
	case "slackbot":
		return "xoxb-" + g.Str(genDigits, 12, false) + "-" + g.Str(genDigits, 13, false) + "-" + g.Str(genAlnum, 24, true)
	case "slackuser":
		return "xoxp-" + g.Str(genDigits, 12, false) + "-" + g.Str(genDigits, 12, false) + "-" + g.Str(genDigits, 13, false) + "-" + g.Str(genHex, 32, false)
	case "slackhook":
		return "https://hooks.slack.com/services/T" + g.Str(genUpper2, 8, false) + "/B" + g.Str(genUpper2, 10, false) + "/" + g.Str(genAlnum, 24, true)
	case "sklive":
		return "sk_live_" + g.Str(genAlnum, 24, true)
	case "sktest":
		return "sk_test_" + g.Str(genAlnum, 24, true)
	case "rklive":
		return "rk_live_" + g.Str(genAlnum, 24, true)
	case "openai":
		return "sk-" + g.Str(genAlnum, 48, true)
	case "openaiproj":
		return "sk-proj-" + g.Str(B64URL, 64, true)
	case "anthropic":
		return "sk-ant-api03-" + g.Str(B64URL, 93, true) + "AA"
	case "google":
		return "AIza" + g.Str(B64URL, 35, true)
	case "twilio":
		return "SK" + g.Str(genHex, 32, false)
	case "sendgrid":
		return "SG." + g.Str(B64URL, 22, true) + "." + g.Str(B64URL, 43, true)
	case "npm":
		return "npm_" + g.Str(genAlnum, 36, true)
	case "pypi":
		return "pypi-AgEIcHlwaS5vcmc" + g.Str(B64URL, 70, true)
	case "jwt":
		return g.jwt(`{"alg":"HS256","typ":"JWT"}`)
	case "jwtrs":
		return g.jwt(`{"typ":"JWT","alg":"RS256","kid":"` + g.Str(genAlnum, 8, false) + `"}`)
	case "jwtnoalg":
		return g.jwt(`{"typ":"JWT","cty":"x"}`)
	case "pemrsa":
		return g.pem("RSA PRIVATE KEY")
	case "pemec":
		return g.pem("EC PRIVATE KEY")
	case "pemssh":
		return g.pem("OPENSSH PRIVATE KEY")
	case "pempkcs8":
		return g.pem("PRIVATE KEY")
	case "pemcert":
		return g.pem("CERTIFICATE")
	case "pempub":
		return g.pem("PUBLIC KEY")
	case "pw":
		return g.Str(genPW, 16, true)
	case "dbpw":
		return g.Str(genAlnum, 14, true)
	case "hex32":
		return g.Str(genHex, 32, false)
	case "uuid":
		h := g.Str(genHex, 32, false)
		return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
	case "sha1":
		return g.Str(genHex, 40, false)
	case "sha256":
		return g.Str(genHex, 64, false)
	case "b64img":
		return g.Str(B64, 400, false) + "=="
	case "vaultraw":
		return string(VaultValue)
	case "vaultb64":
		return base64.StdEncoding.EncodeToString(VaultValue)
	case "vaultb64raw":
		return base64.RawStdEncoding.EncodeToString(VaultValue)
	case "vaultb64url":
		return base64.URLEncoding.EncodeToString(VaultValue)
	case "vaultb64urlraw":
		return base64.RawURLEncoding.EncodeToString(VaultValue)
	case "vaulthex":
		return hex.EncodeToString(VaultValue)
	case "vaultHEX":
		return strings.ToUpper(hex.EncodeToString(VaultValue))
	case "vaulturl":
		return url.QueryEscape(string(VaultValue))
	case "vaultpath":
		return url.PathEscape(string(VaultValue))
	}
	panic("scantest: unknown generator " + name)
}

var markerRE = regexp.MustCompile(`«([A-Za-z0-9]+)»`)

// Expand replaces every «marker» with a fresh fake value.
func (g *Gen) Expand(s string) string {
	return markerRE.ReplaceAllStringFunc(s, func(m string) string {
		return g.Make(m[len("«") : len(m)-len("»")])
	})
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62CRC writes the GitHub token checksum of b: its CRC32, base62-encoded
// and zero-padded to 6 characters.
func base62CRC(b []byte, out *[6]byte) {
	n := crc32.ChecksumIEEE(b)
	for i := 5; i >= 0; i-- {
		out[i] = base62Digits[n%62]
		n /= 62
	}
}

// mixedCase reports whether b has a digit, an upper- and a lower-case letter.
func mixedCase(b []byte) bool {
	var d, u, l bool
	for _, x := range b {
		switch {
		case x >= '0' && x <= '9':
			d = true
		case x >= 'A' && x <= 'Z':
			u = true
		case x >= 'a' && x <= 'z':
			l = true
		}
	}
	return d && u && l
}
