package approval

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Risk ranks how much harm a gated call can do; Pending lists the riskiest
// first. The zero Risk is invalid, so a request nobody rated is refused
// rather than filed as harmless.
type Risk uint8

const (
	Low Risk = iota + 1
	Medium
	High
	Critical
)

// IsValid reports whether r is one of Low, Medium, High or Critical.
func (r Risk) IsValid() bool { return r >= Low && r <= Critical }

func (r Risk) String() string {
	switch r {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	case Critical:
		return "critical"
	}
	return "Risk(" + strconv.Itoa(int(r)) + ")"
}

// ParseRisk accepts exactly the forms String returns ("low", "medium",
// "high", "critical"); anything else, other cases included, is an error.
func ParseRisk(s string) (Risk, error) {
	for r := Low; r <= Critical; r++ {
		if s == r.String() {
			return r, nil
		}
	}
	const echo = 32 // enough to recognise a typo without echoing a flood
	if len(s) > echo {
		s = strings.ToValidUTF8(s[:echo], "") + "…"
	}
	return 0, fmt.Errorf("approval: ParseRisk(%q): unknown risk level", s)
}

// Outcome is where a request stands. The zero Outcome is invalid.
type Outcome uint8

const (
	Pending Outcome = iota + 1
	Approved
	Denied
	// Expired completes the set callers switch on. This store records a
	// timeout as the request's OnTimeout with Decision.TimedOut set, so it
	// never writes Expired itself; treat it as a denial by timeout.
	Expired
)

// IsValid reports whether o is one of Pending, Approved, Denied or Expired.
func (o Outcome) IsValid() bool { return o >= Pending && o <= Expired }

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Approved:
		return "approved"
	case Denied:
		return "denied"
	case Expired:
		return "expired"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Request is a gated tool call waiting for a human.
type Request struct {
	ID                  string // the tool call's request_id; unique per store
	Tenant, Agent, Tool string
	// Summary is the one line a human judges the call by. The caller
	// redacts secrets; Submit makes it one line of at most 200 runes with
	// no control or bidi characters, cutting long ones with "…".
	Summary     string
	Risk        Risk
	Why         string // why approval is needed (rule id, autonomy); cleaned like Summary
	Fingerprint string // hash of tool+arguments: a resumed request must match the retried call
	// Created defaults to the store's clock. Deadline is required; one
	// already past is allowed and expires at the first Wait.
	Created, Deadline time.Time
	// OnTimeout is what expiry means (the policy's default_if_timeout):
	// Approved or Denied. The zero value means Denied.
	OnTimeout Outcome
}

// Decision is how a request ended, or Outcome Pending while it has not.
type Decision struct {
	Outcome  Outcome
	By       string // who decided; "timeout" when TimedOut
	Reason   string
	At       time.Time // when it was recorded; zero while pending
	TimedOut bool      // the deadline decided, not a human
}

// Length limits. Summary's is part of the contract; the others keep a
// hostile peer from filling the file or a reviewer's screen.
const (
	maxSummary = 200 // runes
	maxWhy     = 200 // runes
	maxBy      = 100 // runes
	maxReason  = 500 // runes
	maxIdent   = 256 // bytes, for ID, Tenant, Agent, Tool and Fingerprint
)

// oneLine makes s fit to show a human on one line of at most max runes.
// Line breaks and tabs become spaces; other control and format characters
// (bidi overrides, zero-width marks) and invalid UTF-8 become U+FFFD, so a
// summary cannot fake extra lines such as "approved by admin" or reorder
// what the reviewer reads. It is idempotent.
func oneLine(s string, max int) string {
	out := make([]rune, 0, min(len(s), max+1))
	for _, r := range s {
		if len(out) > max {
			break
		}
		switch {
		case r == '\n', r == '\r', r == '\t', unicode.In(r, unicode.Zl, unicode.Zp):
			r = ' '
		case unicode.In(r, unicode.Cc, unicode.Cf):
			r = unicode.ReplacementChar
		}
		out = append(out, r)
	}
	if len(out) > max {
		out = append(out[:max-1], '…')
	}
	return string(out)
}

// invalidError reports a Request or argument Submit refuses.
type invalidError struct{ field, why string }

func (e *invalidError) Error() string {
	return "approval: invalid request: " + e.field + " " + e.why
}

// normalize checks r and returns the form the store keeps, so the Request
// Submit returns equals the one Get returns later.
func normalize(r Request, now time.Time) (Request, error) {
	for _, f := range []struct{ name, v string }{
		{"ID", r.ID}, {"Tool", r.Tool}, {"Fingerprint", r.Fingerprint},
	} {
		if f.v == "" {
			// An empty fingerprint would let any retry resume the request.
			return Request{}, &invalidError{f.name, "is empty"}
		}
	}
	for _, f := range []struct{ name, v string }{
		{"ID", r.ID}, {"Tenant", r.Tenant}, {"Agent", r.Agent}, {"Tool", r.Tool}, {"Fingerprint", r.Fingerprint},
	} {
		if len(f.v) > maxIdent {
			return Request{}, &invalidError{f.name, "is too long"}
		}
	}
	if !r.Risk.IsValid() {
		return Request{}, &invalidError{"Risk", "is not a valid risk level"}
	}
	switch r.OnTimeout {
	case 0:
		r.OnTimeout = Denied
	case Approved, Denied:
	default:
		return Request{}, &invalidError{"OnTimeout", "must be Approved or Denied"}
	}
	if r.Created.IsZero() {
		r.Created = now
	}
	var ok bool
	if r.Created, ok = storable(r.Created); !ok {
		return Request{}, &invalidError{"Created", "is out of range"}
	}
	if r.Deadline, ok = storable(r.Deadline); !ok {
		return Request{}, &invalidError{"Deadline", "is missing or out of range"}
	}
	r.Summary = oneLine(r.Summary, maxSummary)
	r.Why = oneLine(r.Why, maxWhy)
	return r, nil
}

// storable returns t as it reads back from the store (UTC, nanoseconds
// since the epoch) and whether it survives that trip; the zero time and
// years outside 1678-2262 do not.
func storable(t time.Time) (time.Time, bool) {
	back := fromNanos(t.UnixNano())
	return back, back.Equal(t)
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
