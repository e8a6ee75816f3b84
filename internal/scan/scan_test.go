package scan

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/clawkeep/clawkeep/internal/scan/scantest"
)

func loadCorpus(t testing.TB) []scantest.Line {
	t.Helper()
	lines, err := scantest.LoadCorpus("testdata/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func kinds(fs []Finding) []string {
	var ks []string
	for _, f := range fs {
		ks = append(ks, f.Kind)
	}
	return ks
}

// TestCorpusPrecisionAndRecallAtLeast95Percent is the detector's quality
// claim: over the labelled corpus, at least 95% of reported lines hold a
// secret and at least 95% of secrets are reported with the right kind.
func TestCorpusPrecisionAndRecallAtLeast95Percent(t *testing.T) {
	lines := loadCorpus(t)
	if len(lines) < 200 {
		t.Fatalf("corpus has %d lines, want at least 200", len(lines))
	}
	d := NewDetector([][]byte{scantest.VaultValue})
	var tp, fp, fn, tn int
	for i, l := range lines {
		text := scantest.NewGen(uint64(i)).Expand(l.Text)
		fs := d.Scan([]byte(text))
		switch {
		case *l.Secret && slices.Contains(kinds(fs), l.Kind):
			tp++
		case *l.Secret:
			fn++
			// Only the template goes to the log: the expanded text holds fake keys.
			t.Logf("missed line %d (%s): %q found %v", i+1, l.Kind, l.Text, kinds(fs))
		case len(fs) > 0:
			fp++
			t.Logf("false positive line %d: %q found %v", i+1, l.Text, kinds(fs))
		default:
			tn++
		}
	}
	precision := float64(tp) / float64(max(1, tp+fp))
	recall := float64(tp) / float64(max(1, tp+fn))
	t.Logf("corpus: %d lines, tp=%d fp=%d fn=%d tn=%d precision=%.3f recall=%.3f", len(lines), tp, fp, fn, tn, precision, recall)
	if precision < 0.95 || recall < 0.95 {
		t.Fatalf("precision %.3f recall %.3f, want both >= 0.95", precision, recall)
	}
}

// TestScanFindsVaultValueInEveryEncoding: an agent that base64-, hex- or
// URL-encodes a vault value to get it past an exact match is still caught.
func TestScanFindsVaultValueInEveryEncoding(t *testing.T) {
	d := NewDetector([][]byte{scantest.VaultValue})
	for _, form := range []string{"vaultraw", "vaultb64", "vaultb64raw", "vaultb64url", "vaultb64urlraw", "vaulthex", "vaultHEX", "vaulturl", "vaultpath"} {
		enc := scantest.NewGen(0).Make(form)
		text := []byte("prefix " + enc + " suffix")
		fs := d.Scan(text)
		if len(fs) != 1 || fs[0].Kind != KindVault || string(text[fs[0].Start:fs[0].End]) != enc {
			t.Errorf("%s form: got %v", form, fs)
		}
		if out := d.Redact(text); bytes.Contains(out, []byte(enc)) || string(out) != "prefix [REDACTED:vault] suffix" {
			t.Errorf("%s form survives redaction", form)
		}
	}
}

// TestNewDetectorIgnoresShortKnownValues: a 3-byte vault value would turn
// every occurrence of a common word into a finding.
func TestNewDetectorIgnoresShortKnownValues(t *testing.T) {
	d := NewDetector([][]byte{[]byte("abc"), []byte("1234567"), nil})
	if fs := d.Scan([]byte("abc 1234567 abcabc")); len(fs) != 0 {
		t.Fatalf("short values matched: %v", fs)
	}
}

// TestNewDetectorCopiesKnownValues: a caller that reuses (or wipes) its
// buffer must not change what the detector looks for.
func TestNewDetectorCopiesKnownValues(t *testing.T) {
	v := []byte("s3cr3t-vault-value")
	d := NewDetector([][]byte{v})
	copy(v, "zzzzzzzzzzzzzzzzzz")
	if fs := d.Scan([]byte("x s3cr3t-vault-value x")); len(fs) != 1 {
		t.Fatalf("got %v", fs)
	}
}

// TestDetectorNeverPrintsKnownValues: a detector that ends up in a log line
// or an error message must not carry the tenant's secrets with it.
func TestDetectorNeverPrintsKnownValues(t *testing.T) {
	d := NewDetector([][]byte{scantest.VaultValue})
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, d)
		for _, form := range encodings(scantest.VaultValue) {
			if strings.Contains(out, form) {
				t.Fatalf("%s prints a known value: %q", verb, out)
			}
		}
	}
	var zero *Detector
	if zero.String() == "" || len(zero.Scan([]byte("x"))) != 0 {
		t.Fatal("nil detector misbehaves")
	}
}

// TestGitHubTokenWithBadChecksumIsNotReported: the checksum is what lets
// the detector tell a real token from random text of the same shape.
func TestGitHubTokenWithBadChecksumIsNotReported(t *testing.T) {
	g := scantest.NewGen(7)
	var d Detector
	for range 50 {
		good, bad := g.GitHub("ghp_", true), g.GitHub("ghp_", false)
		if fs := d.Scan([]byte("t " + good)); len(fs) != 1 || fs[0].Kind != KindGitHub {
			t.Fatalf("valid token not found: %v", fs)
		}
		if fs := d.Scan([]byte("t " + bad)); len(fs) != 0 {
			t.Fatalf("bad checksum reported: %v", fs)
		}
	}
}

// TestHardNegativesAreNotSecrets: documentation placeholders, digests, ids
// and images must not drown the real findings in noise.
func TestHardNegativesAreNotSecrets(t *testing.T) {
	var d Detector
	for _, s := range []string{
		"AKIAIOSFODNN7EXAMPLE",                            // AWS documentation key id
		"sk-XXXXXXXX",                                     // placeholder
		`api_key = "<your-api-key>"`,                      // placeholder
		`password = "changeme"`,                           // famous default, documented as such
		`password: "********"`,                            // masked
		"token: ${TOKEN}",                                 // variable reference
		"password: {{ secret }}",                          // template
		"password = correcthorsebatterystaple",            // low-entropy words
		"id=123e4567-e89b-42d3-a456-426614174000",         // UUID
		"commit 9fceb02d0ae598e95dc970b74767f19372d61af8", // git SHA
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // digest
	} {
		if fs := d.Scan([]byte(s)); len(fs) != 0 {
			t.Errorf("%q: got %v", s, fs)
		}
	}
}

// TestImagePayloadIsNotAScannedSecret: a base64 image is megabytes of
// random-looking text; nothing inside it is a finding.
func TestImagePayloadIsNotAScannedSecret(t *testing.T) {
	var d Detector
	g := scantest.NewGen(3)
	payload := g.Str(scantest.B64, 2000, false) + "AIza" + g.Str(scantest.B64URL, 35, true) + "/" + g.Str(scantest.B64, 100, false)
	if fs := d.Scan([]byte(`<img src="data:image/png;base64,` + payload + `">`)); len(fs) != 0 {
		t.Fatalf("got %v", fs)
	}
}

// TestOverlappingFindingsLongerWins: a vault value that contains a
// provider key is reported once, as the longer finding.
func TestOverlappingFindingsLongerWins(t *testing.T) {
	g := scantest.NewGen(11)
	key := g.Make("npm")
	vault := []byte("prefix-" + key + "-suffix")
	d := NewDetector([][]byte{vault})
	text := []byte("a " + string(vault) + " b " + key)
	fs := d.Scan(text)
	want := []Finding{{KindVault, 2, 2 + len(vault)}, {KindNPM, 5 + len(vault), len(text)}}
	if !slices.Equal(fs, want) {
		t.Fatalf("got %v, want %v", fs, want)
	}
}

// TestRedactRemovesEveryOccurrenceOfAFinding: a value found in an
// assignment is also redacted where it appears bare, so the bare copy does
// not leak what the assignment gave away.
func TestRedactRemovesEveryOccurrenceOfAFinding(t *testing.T) {
	var d Detector
	pw := scantest.NewGen(5).Make("pw")
	text := []byte("password=" + pw + "\nlater the log said " + pw + " again")
	out := d.Redact(text)
	if bytes.Contains(out, []byte(pw)) {
		t.Fatalf("value survives redaction: %q", out)
	}
	want := "password=[REDACTED:generic-secret]\nlater the log said [REDACTED:generic-secret] again"
	if string(out) != want {
		t.Fatalf("got %q", out)
	}
}

// TestRedactKeepsCleanTextIntact: redaction must not damage text without
// secrets, nor alias the caller's buffer.
func TestRedactKeepsCleanTextIntact(t *testing.T) {
	var d Detector
	in := []byte("nothing to see: request_id=123e4567-e89b-42d3-a456-426614174000")
	out := d.Redact(in)
	if !bytes.Equal(in, out) {
		t.Fatalf("got %q", out)
	}
	out[0] = 'X'
	if in[0] == 'X' {
		t.Fatal("Redact aliases its input")
	}
}

// TestScanSurvivesTruncatedCandidates: every prefix of a text full of
// secrets is scanned without panicking and with findings in bounds; the
// attacker chooses where input ends.
func TestScanSurvivesTruncatedCandidates(t *testing.T) {
	g := scantest.NewGen(9)
	var b strings.Builder
	for _, l := range loadCorpus(t)[:120] {
		b.WriteString(g.Expand(l.Text) + "\n")
	}
	full := []byte(b.String())
	d := NewDetector([][]byte{scantest.VaultValue})
	for n := 0; n <= len(full); n += 7 {
		checkFindings(t, full[:n], d.Scan(full[:n]))
	}
}

func checkFindings(t *testing.T, text []byte, fs []Finding) {
	t.Helper()
	prev := 0
	for _, f := range fs {
		if f.Start < prev || f.End <= f.Start || f.End > len(text) || f.Kind == "" {
			t.Fatalf("bad finding %v (prev end %d, len %d) in %v", f, prev, len(text), fs)
		}
		prev = f.End
	}
}

// TestEncryptedLegacyPEMKeyIsFound: the Proc-Type and DEK-Info headers of
// an old encrypted key must not hide the body from the detector.
func TestEncryptedLegacyPEMKeyIsFound(t *testing.T) {
	g := scantest.NewGen(13)
	key := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF\n\n" +
		g.Str(scantest.B64, 64, false) + "\n" + g.Str(scantest.B64, 64, false) + "\n-----END RSA PRIVATE KEY-----"
	text := []byte("id_rsa:\n" + key + "\ndone")
	fs := new(Detector).Scan(text)
	if len(fs) != 1 || fs[0].Kind != KindPrivateKey || string(text[fs[0].Start:fs[0].End]) != key {
		t.Fatalf("got %v", fs)
	}
}

// TestTruncatedPEMKeyIsStillFound: cutting the END line off (a log line
// limit, a hostile tool) must not let the key body through.
func TestTruncatedPEMKeyIsStillFound(t *testing.T) {
	key := scantest.NewGen(14).Make("pemec")
	cut := key[:len(key)-40]
	fs := new(Detector).Scan([]byte(cut))
	if len(fs) != 1 || fs[0].Kind != KindPrivateKey || fs[0].Start != 0 {
		t.Fatalf("got %v", fs)
	}
}

// TestRedactTerminatesWhenAValueContainsTheMarker: a vault value that
// contains "[REDACTED:vault]" must neither loop forever nor survive.
func TestRedactTerminatesWhenAValueContainsTheMarker(t *testing.T) {
	v := []byte("[REDACTED:vault]zz[REDACTED:vault]q1")
	d := NewDetector([][]byte{v})
	text := []byte("a " + string(v) + " b")
	out := d.Redact(text)
	if bytes.Contains(out, v) {
		t.Fatalf("value survives: %q", out)
	}
}

// TestFindingsCarryNoSecretText: findings go into audit records and logs,
// so they hold offsets and a kind, never the value.
func TestFindingsCarryNoSecretText(t *testing.T) {
	key := scantest.NewGen(15).Make("ghp")
	fs := new(Detector).Scan([]byte("GITHUB_TOKEN=" + key))
	if len(fs) != 1 {
		t.Fatalf("got %v", fs)
	}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(verb, fs); strings.Contains(s, key) || strings.Contains(s, key[4:20]) {
			t.Fatalf("%s of findings prints the token", verb)
		}
	}
}

// TestDetectorIsSafeForConcurrentScans: one detector serves every tool
// call of a tenant at once (run with -race).
func TestDetectorIsSafeForConcurrentScans(t *testing.T) {
	d := NewDetector([][]byte{scantest.VaultValue})
	text := mixedText(64 << 10)
	want := d.Scan(text)
	done := make(chan []Finding)
	for range 4 {
		go func() { done <- d.Scan(text) }()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Error("concurrent scans disagree")
		}
	}
}

// TestRedactManyDistinctFindings: an attacker who fills a text with
// thousands of distinct keys gets the Rabin-Karp path; it must find exactly
// what the plain search finds, bare copies included.
func TestRedactManyDistinctFindings(t *testing.T) {
	g := scantest.NewGen(21)
	var secrets []secret
	var b strings.Builder
	for i := range 300 {
		k := g.Make([]string{"awsid", "npm", "ghp", "google"}[i%4])
		secrets = append(secrets, secret{[]byte(k), "k"})
		b.WriteString("key " + k + " and again" + k + "\n") // the second copy has no boundary
	}
	text := []byte(b.String())
	got := merge(occurrences(text, secrets))
	var want []Finding
	for _, s := range secrets {
		want = append(want, occurrences(text, []secret{s})...)
	}
	want = merge(want)
	if !slices.Equal(got, want) || len(want) != 600 {
		t.Fatalf("rabin-karp found %d spans, plain search %d", len(got), len(want))
	}
	out := new(Detector).Redact(text)
	for _, s := range secrets {
		if bytes.Contains(out, s.val) {
			t.Fatal("a key survives redaction")
		}
	}
}
