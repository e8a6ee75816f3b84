package scan

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

type corpusCase struct {
	ID        string `json:"id"`
	Text      string `json:"text"`
	Injection bool   `json:"injection"`
	Family    string `json:"family"`
	Lang      string `json:"lang"`
	Disguise  string `json:"disguise"`
}

func loadInjectionCorpus(t testing.TB, path string) []corpusCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

type tally struct{ tp, fp, fn, tn int }

func (c tally) precision() float64 { return ratio(c.tp, c.tp+c.fp) }
func (c tally) recall() float64    { return ratio(c.tp, c.tp+c.fn) }
func (c tally) fpr() float64       { return ratio(c.fp, c.fp+c.tn) }
func (c tally) f1() float64 {
	p, r := c.precision(), c.recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// TestInjectionCorpus scores the detector on the development corpus
// (testdata/injection/corpus.jsonl, written without reading the detector,
// then used to tune its patterns) and reports precision, recall, F1 and
// the false-positive rate overall and by family, language and disguise.
// Run with -v for the tables.
func TestInjectionCorpus(t *testing.T) {
	evalInjectionCorpus(t, "testdata/injection/corpus.jsonl", 400, devRecallFloor, devFPRCeiling)
}

// TestInjectionTrain2 scores the detector on the second training corpus
// (testdata/injection/train2.jsonl, written by an author who never saw the
// detector). Its halves keep the tuning honest: patterns were tuned on the
// odd-numbered cases first and the even-numbered ones were scored before
// they were looked at. The "odd" and "even" subtests score one half each
// (go test -run 'TestInjectionTrain2/odd' -v); the parent test scores all.
func TestInjectionTrain2(t *testing.T) {
	const path = "testdata/injection/train2.jsonl"
	t.Run("odd", func(t *testing.T) {
		evalInjectionCases(t, path, train2Half(loadInjectionCorpus(t, path), 1), 250, train2RecallFloor, train2FPRCeiling)
	})
	t.Run("even", func(t *testing.T) {
		evalInjectionCases(t, path, train2Half(loadInjectionCorpus(t, path), 0), 250, train2RecallFloor, train2FPRCeiling)
	})
	t.Run("all", func(t *testing.T) {
		evalInjectionCorpus(t, path, 500, train2RecallFloor, train2FPRCeiling)
	})
}

// train2Half keeps the cases whose id number ("t2-0007") has the given
// parity: 1 for odd, 0 for even.
func train2Half(cases []corpusCase, parity int) []corpusCase {
	var out []corpusCase
	for _, c := range cases {
		n, err := strconv.Atoi(c.ID[strings.LastIndexByte(c.ID, '-')+1:])
		if err == nil && n%2 == parity {
			out = append(out, c)
		}
	}
	return out
}

// TestInjectionHeldOut scores it on a second corpus (heldout.jsonl) that
// nobody working on the detector has read: the honest figures.
func TestInjectionHeldOut(t *testing.T) {
	evalInjectionCorpus(t, "testdata/injection/heldout.jsonl", 300, heldRecallFloor, heldFPRCeiling)
}

// TestInjectionHeldOut2 scores it on a third corpus (heldout2.jsonl),
// written in session 9 by a helper who read neither the detector nor any
// other corpus, after the second round of tuning and never tuned on.
func TestInjectionHeldOut2(t *testing.T) {
	evalInjectionCorpus(t, "testdata/injection/heldout2.jsonl", 400, held2RecallFloor, held2FPRCeiling)
}

// Floors below the figures recorded in docs/BENCHMARKS.md, so that a
// regression fails here; the targets are recall 0.95 and FPR
// 0.02, and the benchmarks page says whether they are met.
const (
	devRecallFloor   = 0.95
	devFPRCeiling    = 0.01
	heldRecallFloor  = 0.75
	heldFPRCeiling   = 0.08
	held2RecallFloor = 0.62
	held2FPRCeiling  = 0.03

	// train2.jsonl: tuned on its odd half, then on all of it (see the
	// report of that change for the figures before tuning).
	train2RecallFloor = 0.89
	train2FPRCeiling  = 0.04
)

func evalInjectionCorpus(t *testing.T, path string, minCases int, recallFloor, fprCeiling float64) {
	evalInjectionCases(t, path, loadInjectionCorpus(t, path), minCases, recallFloor, fprCeiling)
}

func evalInjectionCases(t *testing.T, path string, cases []corpusCase, minCases int, recallFloor, fprCeiling float64) {
	d := NewInjectionDetector()
	var all tally
	byFamily, byLang, byDisguise := map[string]*tally{}, map[string]*tally{}, map[string]*tally{}
	get := func(m map[string]*tally, k string) *tally {
		if m[k] == nil {
			m[k] = &tally{}
		}
		return m[k]
	}
	var missed, flagged []string
	for _, c := range cases {
		v := d.Scan(c.Text)
		for _, s := range v.Spans {
			if s[0] < 0 || s[1] > len(c.Text) || s[0] >= s[1] {
				t.Fatalf("%s: span %v out of the text", c.ID, s)
			}
		}
		switch {
		case c.Injection && v.Injection:
			all.tp++
			get(byFamily, c.Family).tp++
			get(byLang, c.Lang).tp++
			get(byDisguise, c.Disguise).tp++
		case c.Injection:
			all.fn++
			get(byFamily, c.Family).fn++
			get(byLang, c.Lang).fn++
			get(byDisguise, c.Disguise).fn++
			missed = append(missed, c.ID)
		case v.Injection:
			all.fp++
			get(byLang, c.Lang).fp++
			get(byDisguise, c.Disguise).fp++
			flagged = append(flagged, c.ID)
		default:
			all.tn++
			get(byLang, c.Lang).tn++
			get(byDisguise, c.Disguise).tn++
		}
	}
	table := func(name string, m map[string]*tally) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Logf("| %s | injections caught | recall | false positives | FPR |", name)
		for _, k := range keys {
			c := m[k]
			t.Logf("| %s | %d/%d | %.3f | %d/%d | %.3f |", k, c.tp, c.tp+c.fn, c.recall(), c.fp, c.fp+c.tn, c.fpr())
		}
	}
	t.Logf("overall: %d cases, precision %.3f, recall %.3f, F1 %.3f, FPR %.3f (tp %d fp %d fn %d tn %d)",
		len(cases), all.precision(), all.recall(), all.f1(), all.fpr(), all.tp, all.fp, all.fn, all.tn)
	table("family", byFamily)
	table("lang", byLang)
	table("disguise", byDisguise)
	t.Logf("missed: %v", missed)
	t.Logf("false positives: %v", flagged)
	if len(cases) < minCases {
		t.Fatalf("%s has %d cases; want at least %d", path, len(cases), minCases)
	}
	if all.recall() < recallFloor || all.fpr() > fprCeiling {
		t.Fatalf("recall %.3f (floor %.2f), FPR %.3f (ceiling %.2f)", all.recall(), recallFloor, all.fpr(), fprCeiling)
	}
}
