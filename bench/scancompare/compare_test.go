package scancompare

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/clawkeep/clawkeep/internal/scan"
	"github.com/clawkeep/clawkeep/internal/scan/scantest"
	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// corpusPath is internal/scan's labelled corpus; its «markers» are filled
// with the same seeds (the line index) as internal/scan's own corpus test.
const corpusPath = "../../internal/scan/testdata/corpus.jsonl"

func TestMain(m *testing.M) {
	// gitleaks logs through a package-level zerolog logger to stderr, and
	// its debug lines carry finding values: silence it before any scan.
	logging.Logger = zerolog.Nop()
	os.Exit(m.Run())
}

func loadCorpus(t testing.TB) []scantest.Line {
	t.Helper()
	lines, err := scantest.LoadCorpus(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func newGitleaks(t testing.TB) *detect.Detector {
	t.Helper()
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatalf("scancompare: gitleaks default config: %v", err)
	}
	return d
}

// tally counts line-level outcomes: a secret line is a true positive when
// the tool reports anything on it, a clean line a false positive when it does.
type tally struct{ lines, tp, fp, fn, tn int }

func (c *tally) add(secret, found bool) {
	c.lines++
	switch {
	case secret && found:
		c.tp++
	case secret:
		c.fn++
	case found:
		c.fp++
	default:
		c.tn++
	}
}

func (c tally) precision() float64 { return float64(c.tp) / float64(max(1, c.tp+c.fp)) }
func (c tally) recall() float64    { return float64(c.tp) / float64(max(1, c.tp+c.fn)) }

func (c tally) log(t *testing.T, name string) {
	t.Helper()
	t.Logf("%-34s lines=%d tp=%d fp=%d fn=%d tn=%d precision=%.3f recall=%.3f",
		name, c.lines, c.tp, c.fp, c.fn, c.tn, c.precision(), c.recall())
}

// TestRecallOnCorpus runs clawkeep and gitleaks (default config) over every
// labelled corpus line and logs their precision and recall. It asserts only
// that both tools saw every line; the numbers are for docs/BENCHMARKS.md.
//
// Rows: "all" is every line; "no-vault" leaves out the lines whose secret is
// the tenant's own vault value, which only clawkeep is told about. clawkeep
// is also scored by kind ("kind"), as internal/scan's own test does, where a
// secret line counts only if the expected kind is reported.
func TestRecallOnCorpus(t *testing.T) {
	lines := loadCorpus(t)
	if len(lines) == 0 {
		t.Fatal("scancompare: empty corpus")
	}
	ck := scan.NewDetector([][]byte{scantest.VaultValue})
	gl := newGitleaks(t)

	var ckAll, ckNoVault, ckKind, glAll, glNoVault tally
	glRules := map[string]int{}
	for i, l := range lines {
		text := scantest.NewGen(uint64(i)).Expand(l.Text)
		secret := *l.Secret
		vault := l.Kind == scan.KindVault

		fs := ck.Scan([]byte(text))
		var ks []string
		for _, f := range fs {
			ks = append(ks, f.Kind)
		}
		ckAll.add(secret, len(fs) > 0)
		ckKind.add(secret, secret && slices.Contains(ks, l.Kind) || !secret && len(fs) > 0)

		gs := gl.DetectString(text)
		glAll.add(secret, len(gs) > 0)
		for _, g := range gs {
			glRules[g.RuleID]++
		}
		if !vault {
			ckNoVault.add(secret, len(fs) > 0)
			glNoVault.add(secret, len(gs) > 0)
		}
		if secret != (len(gs) > 0) {
			// Only the template and rule names: the expanded text holds fake keys.
			var rs []string
			for _, g := range gs {
				rs = append(rs, g.RuleID)
			}
			t.Logf("gitleaks differs on line %d (secret=%v kind=%s): %q rules=%v", i+1, secret, l.Kind, l.Text, rs)
		}
	}
	if ckAll.lines != len(lines) || glAll.lines != len(lines) {
		t.Fatalf("scancompare: clawkeep scanned %d, gitleaks %d of %d lines", ckAll.lines, glAll.lines, len(lines))
	}
	ckAll.log(t, "clawkeep all (any finding)")
	ckKind.log(t, "clawkeep all (expected kind)")
	ckNoVault.log(t, "clawkeep no-vault (any finding)")
	glAll.log(t, "gitleaks all (any finding)")
	glNoVault.log(t, "gitleaks no-vault (any finding)")
	t.Logf("gitleaks rules fired: %v", glRules)
}

// mixedText returns about n bytes of prose, Go code, JSON and log lines with
// a fake secret of a rotating kind every 64 KiB.
func mixedText(n int) string {
	g := scantest.NewGen(42)
	parts := scantest.Prose
	secrets := []string{
		"export GITHUB_TOKEN=«ghp»\n",
		"aws_access_key_id = «awsid»\n",
		`{"stripe_key":"«sklive»","live":true}` + "\n",
		"2026-04-01T12:00:02Z DEBUG slack token=«slackbot»\n",
		"GITLAB_TOKEN=«glpat»\n",
		"«pemrsa»\n",
	}
	var b strings.Builder
	next, k := 64<<10, 0
	for i := 0; b.Len() < n; i++ {
		b.WriteString(parts[i%len(parts)])
		if b.Len() >= next {
			b.WriteString(g.Expand(secrets[k%len(secrets)]))
			k++
			next += 64 << 10
		}
	}
	return b.String()
}

// TestMixedTextFindsPlantedSecrets checks the benchmark input: both tools
// report every planted secret in it, so neither benchmark times an empty result.
func TestMixedTextFindsPlantedSecrets(t *testing.T) {
	text := mixedText(256 << 10) // four planted secrets; 1 MiB is slow under -race
	ck := len(scan.NewDetector(nil).Scan([]byte(text)))
	gl := len(newGitleaks(t).DetectString(text))
	t.Logf("mixed text %d bytes: clawkeep %d findings, gitleaks %d findings", len(text), ck, gl)
	if ck < 4 || gl < 4 {
		t.Fatalf("scancompare: clawkeep found %d, gitleaks %d secrets in the benchmark text", ck, gl)
	}
}

// TestLogsHoldNoFakeKey: the counts and templates the recall test logs never
// include an expanded value, and gitleaks' logger writes nothing.
func TestLogsHoldNoFakeKey(t *testing.T) {
	if logging.Logger.GetLevel() != zerolog.Disabled {
		t.Fatalf("scancompare: gitleaks logger level %v, want disabled", logging.Logger.GetLevel())
	}
	key := scantest.NewGen(0).Make("ghp")
	var buf bytes.Buffer
	logging.Logger = zerolog.New(&buf).Level(zerolog.Disabled)
	defer func() { logging.Logger = zerolog.Nop() }()
	if fs := newGitleaks(t).DetectString("token=" + key); len(fs) == 0 {
		t.Fatal("scancompare: gitleaks missed a plain GitHub token")
	}
	if strings.Contains(buf.String(), key) || buf.Len() != 0 {
		t.Fatalf("scancompare: gitleaks wrote %d bytes of log", buf.Len())
	}
}

func BenchmarkClawkeepScan(b *testing.B) {
	text := []byte(mixedText(1 << 20))
	d := scan.NewDetector(nil)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Scan(text)
	}
}

func BenchmarkGitleaksDetect(b *testing.B) {
	text := mixedText(1 << 20)
	d := newGitleaks(b)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.DetectString(text)
	}
}
