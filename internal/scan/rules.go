package scan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"math"
)

// Rule kinds, as they appear in Finding.Kind and in redaction markers.
const (
	KindVault          = "vault"
	KindAWSKeyID       = "aws-access-key-id"
	KindAWSSecret      = "aws-secret-access-key"
	KindGitHub         = "github-token"
	KindGitLab         = "gitlab-token"
	KindSlack          = "slack-token"
	KindSlackWebhook   = "slack-webhook"
	KindStripe         = "stripe-key"
	KindOpenAI         = "openai-key"
	KindAnthropic      = "anthropic-key"
	KindGoogle         = "google-api-key"
	KindTwilio         = "twilio-key"
	KindSendGrid       = "sendgrid-key"
	KindNPM            = "npm-token"
	KindPyPI           = "pypi-token"
	KindJWT            = "jwt"
	KindPrivateKey     = "private-key"
	KindConnString     = "connection-string"
	KindGenericSecret  = "generic-secret"
	genericMinLen      = 10
	genericMinEntropy  = 3.0 // bits per byte
	maxValueLen        = 512
	maxNameLen         = 64
	tokenMinEntropy    = 3.0
	maxPEMLen          = 64 << 10
	placeholderRunSize = 5
)

// scanProviders adds every candidate of the built-in rules. Each rule is
// reached through a literal found with bytes.Index (or IndexByte), so text
// without any trigger costs one vectorised pass per literal, and each
// candidate is examined in a window of bounded size.
func scanProviders(text []byte, c *collector) {
	// Anchors are rare bytes or upper-case literals: a lower-case first byte
	// would stop IndexByte at every other word of prose.
	eachByte(text, '_', c, underscore)
	eachByte(text, '-', c, dash)
	eachByte(text, 'J', c, jwtAnchor)
	each(text, "AKIA", c, awsKeyID)
	each(text, "ASIA", c, awsKeyID)
	each(text, "AIza", c, google)
	each(text, "SK", c, twilio)
	each(text, "SG.", c, sendgrid)
	each(text, ".slack.com/", c, slackWebhook)
	each(text, "://", c, connString)
	eachByte(text, '=', c, assignment)
	eachByte(text, ':', c, assignment)
}

// underscore dispatches ghX_, github_pat_, npm_ and the Stripe prefixes.
func underscore(text []byte, i int, c *collector) {
	switch {
	case i >= 3 && text[i-3] == 'g' && text[i-2] == 'h':
		githubClassic(text, i-3, c)
	case i >= 3 && hasPrefixAt(text, i-3, "npm"):
		npm(text, i-3, c)
	case i >= 6 && hasPrefixAt(text, i-6, "github_pat_"):
		githubPAT(text, i-6, c)
	case i >= 2 && (hasPrefixAt(text, i-2, "sk") || hasPrefixAt(text, i-2, "rk")) &&
		(hasPrefixAt(text, i+1, "live_") || hasPrefixAt(text, i+1, "test_")):
		stripe(text, i-1, c)
	}
}

// dash dispatches glpat-, xoxX-, sk-, pypi- and PEM armour.
func dash(text []byte, i int, c *collector) {
	switch {
	case i >= 5 && hasPrefixAt(text, i-5, "glpat"):
		gitlab(text, i-5, c)
	case i >= 4 && hasPrefixAt(text, i-4, "xox"):
		slackToken(text, i-4, c)
	case i >= 2 && hasPrefixAt(text, i-2, "sk"):
		openAI(text, i-2, c)
	case i >= 4 && hasPrefixAt(text, i-4, "pypi-AgE"):
		pypi(text, i-4, c)
	case hasPrefixAt(text, i, "-----BEGIN "):
		pem(text, i, c)
	}
}

func jwtAnchor(text []byte, i int, c *collector) {
	if i >= 2 && text[i-2] == 'e' && text[i-1] == 'y' {
		jwt(text, i-2, c)
	}
}

type matcher func(text []byte, at int, c *collector)

func each(text []byte, lit string, c *collector, m matcher) {
	sep := []byte(lit)
	for off := 0; off < len(text); {
		i := bytes.Index(text[off:], sep)
		if i < 0 {
			return
		}
		m(text, off+i, c)
		off += i + 1
	}
}

func eachByte(text []byte, b byte, c *collector, m matcher) {
	for off := 0; off < len(text); {
		i := bytes.IndexByte(text[off:], b)
		if i < 0 {
			return
		}
		m(text, off+i, c)
		off += i + 1
	}
}

// Character classes.
type class [256]bool

func newClass(chars string, ranges ...string) *class {
	var c class
	for i := 0; i < len(chars); i++ {
		c[chars[i]] = true
	}
	for _, r := range ranges {
		for b := int(r[0]); b <= int(r[1]); b++ {
			c[b] = true
		}
	}
	return &c
}

// These tables are filled once at init and only read afterwards.
var (
	alnum     = newClass("", "az", "AZ", "09")
	word      = newClass("_", "az", "AZ", "09")
	upperNum  = newClass("", "AZ", "09")
	b64url    = newClass("_-", "az", "AZ", "09")
	b64std    = newClass("+/", "az", "AZ", "09")
	hexDigit  = newClass("", "af", "AF", "09")
	nameChars = newClass("_.-", "az", "AZ", "09")
	hookChars = newClass("_/", "az", "AZ", "09")
	scheme    = newClass("+.-", "az", "AZ", "09")
	valueStop = newClass("\"'`,;(){}[]<>&:")
	pemBody   = newClass("+/=\\ \t\r\n:,", "az", "AZ", "09") // and '-' not starting "-----"
)

func isB64Std(b byte) bool { return b64std[b] || b == '=' }

// run returns the end of the run of cl characters starting at i, looking at
// no more than limit bytes.
func run(text []byte, i int, cl *class, limit int) int {
	end := min(len(text), i+limit)
	for i < end && cl[text[i]] {
		i++
	}
	return i
}

// boundary reports whether text[i] does not continue a token that began
// before it. Token bodies may hold '-' and '_', so a prefix repeated
// back to back ("sk-sk-sk-…") is examined once, not once per repetition:
// this keeps the scan linear.
func boundary(text []byte, i int) bool { return i == 0 || !b64url[text[i-1]] }

func endsAt(text []byte, i int, cl *class) bool { return i >= len(text) || !cl[text[i]] }

func hasPrefixAt(text []byte, i int, p string) bool {
	return i >= 0 && i+len(p) <= len(text) && string(text[i:i+len(p)]) == p
}

// token reports a prefixed token whose body is text[bodyStart:end], after
// the placeholder and entropy checks.
func token(text []byte, start, bodyStart, end int, kind string, c *collector) {
	body := text[bodyStart:end]
	if placeholder(body) || (len(body) >= 16 && entropy(body) < tokenMinEntropy) {
		return
	}
	c.add(kind, start, end)
}

func awsKeyID(text []byte, i int, c *collector) {
	end := i + 20
	if !boundary(text, i) || end > len(text) || run(text, i+4, upperNum, 16) != end || !endsAt(text, end, alnum) {
		return
	}
	body := text[i+4 : end]
	if placeholder(body) || entropy(body) < 2.5 {
		return
	}
	c.add(KindAWSKeyID, i, end)
}

func githubClassic(text []byte, i int, c *collector) {
	if i+4 > len(text) || text[i+3] != '_' || !boundary(text, i) {
		return
	}
	switch text[i+2] {
	case 'p', 'o', 'u', 's', 'r':
	default:
		return
	}
	end := i + 40
	if run(text, i+4, alnum, 36) != end || !endsAt(text, end, word) {
		return
	}
	if !githubChecksumOK(text[i+4 : end]) {
		return
	}
	c.add(KindGitHub, i, end)
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// githubChecksumOK checks the CRC32 of the 30 random characters against the
// last 6, base62-encoded and zero-padded; a random 36-character string
// passes with probability 2^-32.
func githubChecksumOK(body []byte) bool {
	if len(body) != 36 {
		return false
	}
	var want [6]byte
	base62CRC(body[:30], &want)
	return string(want[:]) == string(body[30:])
}

func base62CRC(b []byte, out *[6]byte) {
	n := crc32.ChecksumIEEE(b)
	for i := 5; i >= 0; i-- {
		out[i] = base62Digits[n%62]
		n /= 62
	}
}

func githubPAT(text []byte, i int, c *collector) {
	if !boundary(text, i) {
		return
	}
	end := run(text, i+11, word, 255)
	if end-(i+11) < 50 || !endsAt(text, end, word) {
		return
	}
	token(text, i, i+11, end, KindGitHub, c)
}

func gitlab(text []byte, i int, c *collector) {
	if !boundary(text, i) {
		return
	}
	end := run(text, i+6, b64url, 128)
	if end-(i+6) < 20 {
		return
	}
	token(text, i, i+6, end, KindGitLab, c)
}

var slackBody = newClass("-", "az", "AZ", "09")

func slackToken(text []byte, i int, c *collector) {
	if i+5 > len(text) || text[i+4] != '-' || !boundary(text, i) {
		return
	}
	switch text[i+3] {
	case 'b', 'a', 'p', 'r', 's':
	default:
		return
	}
	end := run(text, i+5, slackBody, 255)
	body := text[i+5 : end]
	if len(body) < 15 || !bytes.ContainsAny(body, "0123456789") {
		return
	}
	token(text, i, i+5, end, KindSlack, c)
}

func slackWebhook(text []byte, i int, c *collector) {
	// i is at ".slack.com/".
	if !hasPrefixAt(text, i-5, "hooks") {
		return
	}
	i -= 5
	p := i + len("hooks.slack.com/")
	switch {
	case hasPrefixAt(text, p, "services/"):
		p += len("services/")
	case hasPrefixAt(text, p, "workflows/"):
		p += len("workflows/")
	default:
		return
	}
	end := run(text, p, hookChars, 255)
	path := text[p:end]
	if len(path) < 20 || bytes.Count(path, []byte("/")) < 2 {
		return
	}
	start := i
	if hasPrefixAt(text, i-8, "https://") {
		start = i - 8
	}
	token(text, start, p, end, KindSlackWebhook, c)
}

func stripe(text []byte, i int, c *collector) {
	// i is at the "k" of sk_live_, rk_live_, sk_test_ or rk_test_.
	if i == 0 || (text[i-1] != 's' && text[i-1] != 'r') || !boundary(text, i-1) {
		return
	}
	body := i + len("k_live_")
	end := run(text, body, alnum, 255)
	if end-body < 16 || !endsAt(text, end, word) {
		return
	}
	token(text, i-1, body, end, KindStripe, c)
}

func openAI(text []byte, i int, c *collector) {
	if !boundary(text, i) {
		return
	}
	kind, body := KindOpenAI, i+3
	switch {
	case hasPrefixAt(text, body, "ant-"):
		kind, body = KindAnthropic, body+4
	case hasPrefixAt(text, body, "proj-"):
		body += 5
	}
	end := run(text, body, b64url, 255)
	b := text[body:end]
	if len(b) < 32 || !mixedCase(b) {
		return
	}
	token(text, i, body, end, kind, c)
}

// mixedCase reports whether b has a digit, an upper- and a lower-case
// letter, as every random base62 key of 32 characters or more does (all but
// a fraction of a percent of them) and as prose joined by dashes does not.
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

func google(text []byte, i int, c *collector) {
	end := i + 39
	if !boundary(text, i) || run(text, i+4, b64url, 35) != end || end > len(text) || !endsAt(text, end, b64url) {
		return
	}
	token(text, i, i+4, end, KindGoogle, c)
}

func twilio(text []byte, i int, c *collector) {
	end := i + 34
	if !boundary(text, i) || run(text, i+2, hexDigit, 32) != end || end > len(text) || !endsAt(text, end, alnum) {
		return
	}
	token(text, i, i+2, end, KindTwilio, c)
}

func sendgrid(text []byte, i int, c *collector) {
	if !boundary(text, i) {
		return
	}
	mid := run(text, i+3, b64url, 64)
	if mid-(i+3) < 16 || mid >= len(text) || text[mid] != '.' {
		return
	}
	end := run(text, mid+1, b64url, 128)
	if end-(mid+1) < 30 {
		return
	}
	token(text, i, i+3, end, KindSendGrid, c)
}

func npm(text []byte, i int, c *collector) {
	end := i + 40
	if !boundary(text, i) || run(text, i+4, alnum, 36) != end || !endsAt(text, end, word) {
		return
	}
	token(text, i, i+4, end, KindNPM, c)
}

func pypi(text []byte, i int, c *collector) {
	if !boundary(text, i) {
		return
	}
	end := run(text, i+5, b64url, 1024)
	if end-(i+5) < 50 {
		return
	}
	token(text, i, i+5, end, KindPyPI, c)
}

func jwt(text []byte, i int, c *collector) {
	if i > 0 && (b64url[text[i-1]] || text[i-1] == '.') {
		return
	}
	h := run(text, i, b64url, 1024)
	if h-i < 10 || h >= len(text) || text[h] != '.' {
		return
	}
	p := run(text, h+1, b64url, 8192)
	if p-(h+1) < 10 || p >= len(text) || text[p] != '.' {
		return
	}
	end := run(text, p+1, b64url, 1024)
	if end-(p+1) < 16 {
		return
	}
	var hdr [768]byte
	n, err := base64.RawURLEncoding.Decode(hdr[:], text[i:h])
	if err != nil {
		return
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(hdr[:n], &fields) != nil {
		return
	}
	alg, ok := fields["alg"]
	if !ok || len(alg) < 3 || alg[0] != '"' {
		return
	}
	c.add(KindJWT, i, end)
}

func pem(text []byte, i int, c *collector) {
	lstart := i + len("-----BEGIN ")
	lend := lstart
	for lend < len(text) && lend-lstart < 40 && (text[lend] == ' ' || (text[lend] >= 'A' && text[lend] <= 'Z')) {
		lend++
	}
	label := text[lstart:lend]
	if !hasPrefixAt(text, lend, "-----") || !bytes.HasSuffix(label, []byte("PRIVATE KEY")) {
		return
	}
	bodyStart := lend + 5
	// The body runs up to the next "-----", so the bodies of successive
	// BEGIN lines never overlap and the scan stays linear in the text.
	bodyEnd := bodyStart
	for bodyEnd < len(text) && bodyEnd-bodyStart < maxPEMLen {
		if b := text[bodyEnd]; pemBody[b] || (b == '-' && !hasPrefixAt(text, bodyEnd, "-----")) {
			bodyEnd++
			continue
		}
		break
	}
	// A truncated key (no END line) is still a key.
	end := bodyEnd
	if hasPrefixAt(text, bodyEnd, "-----END ") && hasPrefixAt(text, bodyEnd+9, string(label)) && hasPrefixAt(text, bodyEnd+9+len(label), "-----") {
		end = bodyEnd + 9 + len(label) + 5
	}
	n := 0
	for _, b := range text[bodyStart:bodyEnd] {
		if b64std[b] {
			n++
		}
	}
	if n < 32 || bytes.Contains(text[bodyStart:bodyEnd], []byte("...")) {
		return
	}
	c.add(KindPrivateKey, i, end)
}

var connSchemes = []string{
	"postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv",
	"redis", "rediss", "amqp", "amqps", "mssql", "sqlserver",
	"http", "https", "ftp", "ftps", "smtp", "smtps", "ldap", "ldaps",
}

func connString(text []byte, i int, c *collector) {
	s := i
	for s > 0 && i-s < 20 && scheme[text[s-1]] {
		s--
	}
	if !knownScheme(text[s:i]) {
		return
	}
	a := i + 3
	e := a
	for e < len(text) && e-a < 512 {
		b := text[e]
		if b == '/' || b == '?' || b == '#' || b <= ' ' || b == '"' || b == '\'' || b == '<' || b == '>' || b == '`' {
			break
		}
		e++
	}
	at := bytes.LastIndexByte(text[a:e], '@')
	if at < 0 {
		return
	}
	userinfo := text[a : a+at]
	colon := bytes.IndexByte(userinfo, ':')
	if colon < 0 {
		return
	}
	pw := userinfo[colon+1:]
	if len(pw) == 0 || placeholder(pw) || weakPlaceholder(pw) {
		return
	}
	// A provider token used as the password (https://x:ghp_…@github.com)
	// is reported under its own kind. The password holds no "://" (the
	// authority stops at '/'), so this does not recurse further.
	var sub collector
	scanProviders(pw, &sub)
	for _, f := range sub.cands {
		if f.Start == 0 && f.End == len(pw) {
			return
		}
	}
	c.add(KindConnString, s, e)
}

func knownScheme(s []byte) bool {
	var buf [20]byte
	l := lower(buf[:0], s)
	for _, k := range connSchemes {
		if string(l) == k {
			return true
		}
	}
	return false
}

// weakPlaceholder reports the words documentation puts where a password goes.
func weakPlaceholder(pw []byte) bool {
	var buf [16]byte
	if len(pw) > len(buf) {
		return false
	}
	switch string(lower(buf[:0], pw)) {
	case "password", "pass", "passwd", "pwd", "pw", "secret", "changeme", "xxx", "p@ssw0rd", "mypassword", "yourpassword":
		return true
	}
	return false
}

var notSecretNames = bytesOf("public", "checksum", "digest", "sha1", "sha256", "hash", "_id", "tokens", "type", "url", "uri", "path", "file", "name", "length", "keyboard", "monkey", "keys", "bypass")

func bytesOf(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

func assignment(text []byte, p int, c *collector) {
	opStart, opEnd := p, p+1
	next := byte(0)
	if p+1 < len(text) {
		next = text[p+1]
	}
	prev := byte(0)
	if p > 0 {
		prev = text[p-1]
	}
	if text[p] == '=' {
		if next == '=' || next == '~' || prev == '=' || prev == '!' || prev == '<' || prev == '>' {
			return
		}
		if prev == ':' {
			opStart = p - 1
		}
		if next == '>' {
			opEnd = p + 2
		}
	} else if next == '=' || next == ':' || prev == ':' || next == '/' {
		return
	}

	// The name: optional spaces and a closing quote, then name characters.
	j := opStart
	for k := 0; k < 4 && j > 0 && (text[j-1] == ' ' || text[j-1] == '\t'); k++ {
		j--
	}
	if j > 0 && text[j-1] == ']' { // $cfg['db_pass'] = …
		j--
	}
	if j > 0 && (text[j-1] == '"' || text[j-1] == '\'') {
		j--
	}
	ne := j
	for j > 0 && ne-j < maxNameLen && nameChars[text[j-1]] {
		j--
	}
	if ne-j < 3 || hasPrefixAt(text, j-3, "://") {
		return // no name, or user:password in a URL (connString's job)
	}
	var nbuf [maxNameLen]byte
	name := lower(nbuf[:0], text[j:ne])
	if !secretName(name) {
		return
	}

	// The value: optional spaces and an opening quote.
	v := opEnd
	for k := 0; k < 4 && v < len(text) && (text[v] == ' ' || text[v] == '\t'); k++ {
		v++
	}
	if v >= len(text) {
		return
	}
	quote := byte(0)
	if q := text[v]; q == '"' || q == '\'' || q == '`' {
		quote = q
		v++
	}
	ve := valueEnd(text, v, quote)
	// "Authorization: Bearer <token>": the scheme word is not the secret.
	if bytes.Contains(name, []byte("auth")) {
		for _, sch := range []string{"bearer ", "basic ", "token "} {
			var wbuf [8]byte
			if v+len(sch) < len(text) && string(lower(wbuf[:0], text[v:v+len(sch)])) == sch {
				v += len(sch)
				for v < ve && text[v] == ' ' {
					v++
				}
				ve = valueEnd(text, v, 0)
				break
			}
		}
	}
	val := text[v:ve]
	if !genericValue(val, quote != 0) {
		return
	}
	kind := KindGenericSecret
	if len(val) == 40 && run(val, 0, b64std, 40) == 40 &&
		(bytes.Contains(name, []byte("aws")) || bytes.Contains(name, []byte("secret_access_key")) || bytes.Contains(name, []byte("secretaccesskey"))) {
		kind = KindAWSSecret
	}
	c.add(kind, v, ve)
}

func valueEnd(text []byte, v int, quote byte) int {
	e := v
	for e < len(text) && e-v < maxValueLen {
		b := text[e]
		if b == '\n' || b == '\r' {
			break
		}
		if quote != 0 {
			if b == quote {
				break
			}
		} else if b <= ' ' || valueStop[b] {
			break
		} else if b == '=' && e+1 < len(text) && text[e+1] != '=' && text[e+1] > ' ' {
			// "a=b": a nested assignment or query string, not base64
			// padding. Stopping here keeps the values of successive '='
			// disjoint, so the scan stays linear.
			break
		}
		e++
	}
	return e
}

// secretName reports names that hold secrets (password, passwd, db_pass,
// api_key, apiKey, private_key, access_token, client_secret, Authorization,
// credentials) given in lower case.
func secretName(name []byte) bool {
	hit := false
	for i := 0; i < len(name) && !hit; i++ {
		// One pass with a switch on the first byte: this runs for every
		// '=' and ':' in the text.
		switch name[i] {
		case 'p':
			hit = hasPrefixAt(name, i, "pass") || hasPrefixAt(name, i, "pwd")
		case 's':
			hit = hasPrefixAt(name, i, "secret")
		case 't':
			hit = hasPrefixAt(name, i, "token")
		case 'k':
			hit = hasPrefixAt(name, i, "key")
		case 'a':
			hit = hasPrefixAt(name, i, "auth")
		case 'c':
			hit = hasPrefixAt(name, i, "credential")
		}
	}
	if !hit {
		return false
	}
	for _, s := range notSecretNames {
		if bytes.Contains(name, s) {
			return false
		}
	}
	return true
}

// genericValue reports whether a value assigned to a secret-like name looks
// like a secret: long enough, not a placeholder, a reference or an
// identifier, with two kinds of characters and enough entropy.
func genericValue(v []byte, quoted bool) bool {
	if len(v) < genericMinLen || len(v) >= maxValueLen {
		return false
	}
	var d, u, l, other, space bool
	for _, x := range v {
		switch {
		case x >= '0' && x <= '9':
			d = true
		case x >= 'A' && x <= 'Z':
			u = true
		case x >= 'a' && x <= 'z':
			l = true
		case x == ' ':
			space = true
		default:
			other = true
		}
	}
	if space && !quoted {
		return false
	}
	n := 0
	for _, b := range []bool{d, u, l} {
		if b {
			n++
		}
	}
	if n < 2 {
		return false
	}
	h := entropy(v)
	if !d && !other {
		// Letters only: identifiers and words unless long and random.
		if len(v) < 20 || h < 3.8 {
			return false
		}
	} else if h < genericMinEntropy {
		return false
	}
	if badGitHubChecksum(v) {
		return false // shaped like a GitHub token, but the checksum says it is not one
	}
	return !placeholder(v) && !weakPlaceholder(v) && !bytes.Contains(v, []byte("://")) &&
		!bytes.Contains(v, []byte("[REDACTED")) && !isUUID(v) && !dottedIdent(v) && !screamingIdent(v)
}

func badGitHubChecksum(v []byte) bool {
	return len(v) == 40 && v[0] == 'g' && v[1] == 'h' && v[3] == '_' && bytes.IndexByte([]byte("pousr"), v[2]) >= 0 &&
		run(v, 4, alnum, 36) == 40 && !githubChecksumOK(v[4:])
}

func isUUID(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, b := range v {
		switch i {
		case 8, 13, 18, 23:
			if b != '-' {
				return false
			}
		default:
			if !hexDigit[b] {
				return false
			}
		}
	}
	return true
}

// dottedIdent reports a reference such as process.env.API_KEY or
// settings.secret_key.
func dottedIdent(v []byte) bool {
	if bytes.IndexByte(v, '.') < 0 {
		return false
	}
	for _, part := range bytes.Split(v, []byte(".")) {
		if len(part) == 0 || (part[0] >= '0' && part[0] <= '9') || run(part, 0, word, len(part)) != len(part) {
			return false
		}
	}
	return true
}

// screamingIdent reports an environment variable name such as DB_PASSWORD.
func screamingIdent(v []byte) bool {
	if bytes.IndexByte(v, '_') < 0 {
		return false
	}
	for _, b := range v {
		if !(b == '_' || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')) {
			return false
		}
	}
	return true
}

var placeholderWords = bytesOf(
	"example", "xxxx", "****", "changeme", "placeholder", "your_", "your-", "yourapi", "yourkey",
	"<", ">", "${", "{{", "}}", "$(", "%(", "redacted", "dummy", "sample", "...", "insert", "replace_me",
	"replaceme", "todo", "fixme",
)

// placeholder reports documentation placeholders and obviously fake values.
func placeholder(v []byte) bool {
	if len(v) > 0 && v[0] == '$' {
		return true // a variable reference
	}
	var buf [maxValueLen]byte
	l := lower(buf[:0], v)
	for _, w := range placeholderWords {
		if bytes.Contains(l, w) {
			return true
		}
	}
	runLen := 1
	for i := 1; i < len(v); i++ {
		if v[i] == v[i-1] {
			runLen++
			if runLen >= placeholderRunSize {
				return true
			}
		} else {
			runLen = 1
		}
	}
	return false
}

func lower(dst, s []byte) []byte {
	for _, b := range s {
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// entropy returns the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, x := range b {
		counts[x]++
	}
	h := 0.0
	n := float64(len(b))
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
