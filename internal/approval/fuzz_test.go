package approval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// ParseRisk accepts exactly the canonical names and rejects the rest
// cleanly, with a bounded message.
func FuzzParseRisk(f *testing.F) {
	for _, s := range []string{"low", "medium", "high", "critical", "High", "", "Risk(0)", "high\n", strings.Repeat("x", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRisk(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "approval: ") || len(err.Error()) > 200 {
				t.Fatalf("bad error for %q: %q", s, err)
			}
			return
		}
		if !r.IsValid() || r.String() != s {
			t.Fatalf("ParseRisk(%q) = %v, which does not round-trip", s, r)
		}
	})
}

// oneLine's output is what a reviewer sees: one line, bounded, no control
// or format characters, stable under a second pass, and untouched when the
// input was already clean and short.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{
		"file-delete(path=\"/srv\")", "a\nb", "\u202eexe.txt", "\xff\xfe", "x\u2029y",
		strings.Repeat("é", 250), "tab\there", "zero\u200bwidth",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := oneLine(s, maxSummary)
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxSummary {
			t.Fatalf("oneLine(%q) = %q: invalid or too long", s, got)
		}
		for _, r := range got {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Fatalf("oneLine(%q) kept %U", s, r)
			}
		}
		if again := oneLine(got, maxSummary); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
		clean := utf8.ValidString(s) && utf8.RuneCountInString(s) <= maxSummary &&
			strings.IndexFunc(s, func(r rune) bool {
				return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
			}) < 0
		if clean && got != s {
			t.Fatalf("clean input %q changed to %q", s, got)
		}
	})
}

// Whatever Submit accepts reads back exactly as Submit returned it, resumes
// to the same value, and takes exactly one decision; whatever it refuses
// is refused with an approval: error and leaves nothing behind.
func FuzzSubmitRoundTrip(f *testing.F) {
	f.Add("r1", "acme", "file-delete", "rm(\"/srv\")", "rule x", "fp", uint8(3), uint8(0), int64(time.Hour))
	f.Add("", "", "", "", "", "", uint8(0), uint8(1), int64(0))
	f.Add("r\x00id", "t\xff", "tool", "a\nb\u202e", "\r\n", "fp\x00", uint8(4), uint8(2), int64(-time.Hour))
	f.Add("r", "t", "tool", strings.Repeat("🙂", 300), "why", "fp", uint8(1), uint8(9), int64(1<<62))
	s, _ := tempStore(f, Options{})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, id, tenant, tool, summary, why, fp string, risk, onTimeout uint8, in int64) {
		// A fresh id per run keeps earlier runs from turning this into a resume.
		id = fmt.Sprintf("%d/%s", n.Add(1), id)
		r := Request{
			ID: id, Tenant: tenant, Agent: "agent", Tool: tool, Summary: summary, Why: why,
			Fingerprint: fp, Risk: Risk(risk), OnTimeout: Outcome(onTimeout),
			Deadline: time.Now().Add(time.Duration(in)),
		}
		got, err := s.Submit(context.Background(), r)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "approval: ") {
				t.Fatalf("Submit: %v", err)
			}
			if _, _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused request left behind: %v", err)
			}
			return
		}
		stored, d, err := s.Get(id)
		if err != nil || stored != got || d.Outcome != Pending {
			t.Fatalf("Get = %+v %+v %v, Submit returned %+v", stored, d, err, got)
		}
		if again, err := s.Submit(context.Background(), r); err != nil || again != got {
			t.Fatalf("resume = %+v, %v", again, err)
		}
		dec, err := s.Decide(id, true, "fuzz", "")
		switch {
		case err == nil:
			if _, d, _ := s.Get(id); d != dec {
				t.Fatalf("stored %+v, Decide returned %+v", d, dec)
			}
		case errors.Is(err, ErrDecided):
			if _, d, _ := s.Get(id); !d.TimedOut || d.Outcome != got.OnTimeout {
				t.Fatalf("late decision refused but stored %+v", d)
			}
		default:
			t.Fatal(err)
		}
	})
}
