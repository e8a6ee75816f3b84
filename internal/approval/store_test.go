package approval

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func open(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tempStore(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "approvals.db")
	return open(t, path, opts), path
}

func request(id string, deadline time.Time) Request {
	return Request{
		ID: id, Tenant: "acme", Agent: "ops-bot", Tool: "file-delete",
		Summary: `file-delete(path="/srv/data")`, Risk: High, Why: "rule delete-needs-approval",
		Fingerprint: "fp-" + id, Deadline: deadline,
	}
}

func submit(t testing.TB, s *Store, r Request) Request {
	t.Helper()
	got, err := s.Submit(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitAsync runs Wait in a goroutine; the result arrives on the channel.
func waitAsync(s *Store, id string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		d, err := s.Wait(context.Background(), id)
		ch <- waitResult{d, err}
	}()
	return ch
}

type waitResult struct {
	d   Decision
	err error
}

func TestApprovalWakesWaiter(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	res := waitAsync(s, "r1")
	d, err := s.Decide("r1", true, "alice", "looks fine")
	if err != nil {
		t.Fatal(err)
	}
	got := <-res
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.d != d || d.Outcome != Approved || d.By != "alice" || d.Reason != "looks fine" || d.TimedOut {
		t.Fatalf("Wait = %+v, Decide = %+v", got.d, d)
	}
	if _, stored, _ := s.Get("r1"); stored != d {
		t.Fatalf("store holds %+v, Decide returned %+v", stored, d)
	}
}

func TestDenialWakesWaiterWithReason(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	res := waitAsync(s, "r1")
	if _, err := s.Decide("r1", false, "bob", "not on a Friday"); err != nil {
		t.Fatal(err)
	}
	got := <-res
	if got.err != nil || got.d.Outcome != Denied || got.d.By != "bob" || got.d.Reason != "not on a Friday" || got.d.TimedOut {
		t.Fatalf("Wait = %+v, %v", got.d, got.err)
	}
}

func TestTimeoutDecidesAsPolicyDefault(t *testing.T) {
	for _, tc := range []struct {
		onTimeout, want Outcome
	}{
		{0, Denied}, // unset must fail closed
		{Denied, Denied},
		{Approved, Approved},
	} {
		t.Run(fmt.Sprint(tc.onTimeout), func(t *testing.T) {
			s, _ := tempStore(t, Options{})
			r := request("r1", time.Now().Add(20*time.Millisecond))
			r.OnTimeout = tc.onTimeout
			submit(t, s, r)
			d, err := s.Wait(context.Background(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tc.want || !d.TimedOut || d.By != "timeout" || d.At.IsZero() {
				t.Fatalf("Wait = %+v, want %v by timeout", d, tc.want)
			}
			if _, err := s.Decide("r1", true, "alice", ""); !errors.Is(err, ErrDecided) {
				t.Fatalf("Decide after timeout: %v, want ErrDecided", err)
			}
		})
	}
}

func TestPastDeadlineAtSubmitExpiresAtFirstWait(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(-time.Minute)))
	d, err := s.Wait(context.Background(), "r1")
	if err != nil || d.Outcome != Denied || !d.TimedOut {
		t.Fatalf("Wait = %+v, %v; want denied by timeout", d, err)
	}
}

// A decision racing the timer: whichever wins, it wins for everyone, once.
// Half the decisions come through a second Store on the same file, as from
// another process.
func TestDecisionRacingTimeoutWinsExactlyOnce(t *testing.T) {
	a, path := tempStore(t, Options{})
	b := open(t, path, Options{})
	var humans, timeouts int
	for i := range 100 {
		id := fmt.Sprintf("race-%d", i)
		deadline := time.Now().Add(2 * time.Millisecond)
		r := request(id, deadline)
		r.OnTimeout = Approved // so a timeout is told apart from a human denial by more than a flag
		submit(t, a, r)
		res := waitAsync(a, id)
		decider := a
		if i%2 == 1 {
			decider = b
		}
		// Aim at the deadline, spread a little either side.
		time.Sleep(time.Until(deadline.Add(time.Duration(i%5-2) * 200 * time.Microsecond)))
		dec, err := decider.Decide(id, false, "alice", "no")
		got := <-res
		if got.err != nil {
			t.Fatalf("%s: Wait: %v", id, got.err)
		}
		switch {
		case err == nil:
			humans++
			if got.d != dec || got.d.TimedOut {
				t.Fatalf("%s: human won in Decide (%+v) but Wait saw %+v", id, dec, got.d)
			}
		case errors.Is(err, ErrDecided):
			timeouts++
			if got.d.Outcome != Approved || !got.d.TimedOut || got.d.By != "timeout" {
				t.Fatalf("%s: timeout won in Decide but Wait saw %+v", id, got.d)
			}
		default:
			t.Fatalf("%s: Decide: %v", id, err)
		}
		for _, s := range []*Store{a, b} {
			if _, stored, err := s.Get(id); err != nil || stored != got.d {
				t.Fatalf("%s: store holds %+v (%v), Wait returned %+v", id, stored, err, got.d)
			}
		}
	}
	t.Logf("human won %d, timeout won %d", humans, timeouts)
}

// Both sides of the race, made deterministic with the clock knob.
func TestDecisionJustBeforeDeadlineWins(t *testing.T) {
	c := newClock()
	s, _ := tempStore(t, Options{Now: c.Now})
	deadline := c.Now().Add(time.Minute)
	submit(t, s, request("r1", deadline))
	c.Set(deadline.Add(-time.Nanosecond))
	if _, err := s.Decide("r1", false, "alice", ""); err != nil {
		t.Fatal(err)
	}
	c.Set(deadline.Add(time.Hour))
	d, err := s.Wait(context.Background(), "r1")
	if err != nil || d.TimedOut || d.By != "alice" {
		t.Fatalf("Wait = %+v, %v; want alice's decision", d, err)
	}
}

func TestDecisionAtDeadlineLosesToTimeout(t *testing.T) {
	c := newClock()
	s, _ := tempStore(t, Options{Now: c.Now})
	deadline := c.Now().Add(time.Minute)
	submit(t, s, request("r1", deadline)) // OnTimeout Denied
	c.Set(deadline)
	// A late "yes" must not turn a timed-out denial into an approval.
	if _, err := s.Decide("r1", true, "alice", ""); !errors.Is(err, ErrDecided) {
		t.Fatalf("Decide at deadline: %v, want ErrDecided", err)
	}
	_, d, err := s.Get("r1")
	if err != nil || d.Outcome != Denied || !d.TimedOut {
		t.Fatalf("stored %+v, %v; want denied by timeout", d, err)
	}
	if w, err := s.Wait(context.Background(), "r1"); err != nil || w != d {
		t.Fatalf("Wait = %+v, %v; store holds %+v", w, err, d)
	}
}

func TestSecondDecisionIsRefused(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	first, err := s.Decide("r1", true, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide("r1", false, "mallory", "changed my mind"); !errors.Is(err, ErrDecided) {
		t.Fatalf("second Decide: %v, want ErrDecided", err)
	}
	if _, d, _ := s.Get("r1"); d != first {
		t.Fatalf("store holds %+v, want the first decision %+v", d, first)
	}
}

func TestConcurrentDecisionsOnOneRequestExactlyOneWins(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Decide("r1", i%2 == 0, fmt.Sprint("human-", i), "") })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrDecided):
			t.Fatal(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d decisions won, want exactly 1", wins)
	}
}

func TestUnknownRequestIsNotFound(t *testing.T) {
	s, _ := tempStore(t, Options{})
	if _, err := s.Decide("nope", true, "alice", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Decide: %v", err)
	}
	if _, _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Wait(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Wait: %v", err)
	}
}

func TestPendingRequestSurvivesRestart(t *testing.T) {
	s, path := tempStore(t, Options{})
	want := submit(t, s, request("r1", time.Now().Add(time.Hour)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{})
	if expired, err := s.Recover(); err != nil || len(expired) != 0 {
		t.Fatalf("Recover = %v, %v; nothing was overdue", expired, err)
	}
	r, d, err := s.Get("r1")
	if err != nil || r != want || d.Outcome != Pending {
		t.Fatalf("after reopen: %+v %+v %v", r, d, err)
	}
	// The retried call resumes it and can still be approved.
	if got := submit(t, s, request("r1", time.Now().Add(5*time.Hour))); got != want {
		t.Fatalf("resume = %+v, want %+v", got, want)
	}
	res := waitAsync(s, "r1")
	if _, err := s.Decide("r1", true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if got := <-res; got.err != nil || got.d.Outcome != Approved {
		t.Fatalf("Wait = %+v", got)
	}
}

func TestRecoverExpiresOverdueAndKeepsOthers(t *testing.T) {
	c := newClock()
	s, path := tempStore(t, Options{Now: c.Now})
	start := c.Now()
	deny := request("overdue-deny", start.Add(time.Minute))
	allow := request("overdue-allow", start.Add(2*time.Minute))
	allow.OnTimeout = Approved
	later := request("later", start.Add(time.Hour))
	for _, r := range []Request{deny, allow, later} {
		submit(t, s, r)
	}
	s.Close()

	c.Set(start.Add(30 * time.Minute)) // the runtime was down for half an hour
	s = open(t, path, Options{Now: c.Now})
	expired, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range expired {
		ids[r.ID] = true
	}
	if len(expired) != 2 || !ids["overdue-deny"] || !ids["overdue-allow"] {
		t.Fatalf("Recover returned %v, want the two overdue requests", ids)
	}
	for id, want := range map[string]Outcome{"overdue-deny": Denied, "overdue-allow": Approved} {
		if _, d, _ := s.Get(id); d.Outcome != want || !d.TimedOut || d.By != "timeout" {
			t.Errorf("%s: %+v, want %v by timeout", id, d, want)
		}
	}
	pending, err := s.Pending()
	if err != nil || len(pending) != 1 || pending[0].ID != "later" {
		t.Fatalf("Pending = %v, %v; want only later", pending, err)
	}
	if again, err := s.Recover(); err != nil || len(again) != 0 {
		t.Fatalf("second Recover = %v, %v; each expiry is reported once", again, err)
	}
	if _, err := s.Decide("later", true, "alice", ""); err != nil {
		t.Fatalf("the request still in time must stay decidable: %v", err)
	}
}

func TestResubmitWithSameFingerprintResumes(t *testing.T) {
	s, _ := tempStore(t, Options{})
	first := submit(t, s, request("r1", time.Now().Add(time.Hour)))
	if got := submit(t, s, request("r1", time.Now().Add(time.Hour))); got != first {
		t.Fatalf("resume pending = %+v, want %+v", got, first)
	}
	dec, err := s.Decide("r1", false, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	// A decided request is resumed as decided: retrying does not reopen it.
	if got := submit(t, s, request("r1", time.Now().Add(time.Hour))); got != first {
		t.Fatalf("resume decided = %+v", got)
	}
	if d, err := s.Wait(context.Background(), "r1"); err != nil || d != dec {
		t.Fatalf("Wait = %+v, %v; want %+v", d, err, dec)
	}
}

// A retry must not buy a fresh deadline (or a different timeout default).
func TestResubmitCannotExtendDeadline(t *testing.T) {
	s, _ := tempStore(t, Options{})
	first := submit(t, s, request("r1", time.Now().Add(time.Minute)))
	again := request("r1", time.Now().Add(24*time.Hour))
	again.OnTimeout = Approved
	again.Risk = Low
	got := submit(t, s, again)
	if !got.Deadline.Equal(first.Deadline) || got.OnTimeout != Denied || got.Risk != High {
		t.Fatalf("resubmit changed the request: %+v", got)
	}
}

func TestResubmitWithDifferentFingerprintConflicts(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	if _, err := s.Decide("r1", true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	// Same request_id, other arguments: must not inherit the approval.
	r := request("r1", time.Now().Add(time.Hour))
	r.Fingerprint = "fp-rm-rf-slash"
	if _, err := s.Submit(context.Background(), r); !errors.Is(err, ErrConflict) {
		t.Fatalf("Submit = %v, want ErrConflict", err)
	}
}

func TestResubmitFromAnotherTenantCannotResume(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	for name, change := range map[string]func(*Request){
		"tenant": func(r *Request) { r.Tenant = "evil-corp" },
		"agent":  func(r *Request) { r.Agent = "other-bot" },
		"tool":   func(r *Request) { r.Tool = "shell" },
	} {
		r := request("r1", time.Now().Add(time.Hour))
		change(&r)
		if _, err := s.Submit(context.Background(), r); !errors.Is(err, ErrConflict) {
			t.Errorf("other %s with the same id and fingerprint: %v, want ErrConflict", name, err)
		}
	}
}

func TestPendingListsMostUrgentFirst(t *testing.T) {
	c := newClock()
	s, _ := tempStore(t, Options{Now: c.Now})
	now := c.Now()
	mk := func(id string, risk Risk, in time.Duration) Request {
		r := request(id, now.Add(in))
		r.Risk = risk
		return r
	}
	for _, r := range []Request{
		mk("low-soon", Low, time.Minute),
		mk("crit-late", Critical, time.Hour),
		mk("high-late", High, time.Hour),
		mk("crit-soon", Critical, time.Minute),
		mk("high-soon", High, 2*time.Minute),
		mk("decided", Critical, time.Second),
		mk("overdue", Critical, -time.Second), // no decision on it would count
	} {
		submit(t, s, r)
	}
	if _, err := s.Decide("decided", true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	want := "crit-soon crit-late high-soon high-late low-soon"
	if strings.Join(ids, " ") != want {
		t.Fatalf("Pending = %v, want %s", ids, want)
	}
}

func TestCancelledWaitLeavesRequestPending(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Wait(ctx, "r1")
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if _, d, err := s.Get("r1"); err != nil || d.Outcome != Pending {
		t.Fatalf("after cancel: %+v, %v; want pending", d, err)
	}
	if _, err := s.Decide("r1", true, "alice", ""); err != nil {
		t.Fatalf("still decidable: %v", err)
	}
}

func TestDecisionFromAnotherStoreWakesWaiter(t *testing.T) {
	a, path := tempStore(t, Options{})
	a.poll = 10 * time.Millisecond // test knob: see b's decision without waiting the default poll
	b := open(t, path, Options{})
	submit(t, a, request("r1", time.Now().Add(time.Hour)))
	res := waitAsync(a, "r1")
	dec, err := b.Decide("r1", true, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := <-res; got.err != nil || got.d != dec {
		t.Fatalf("Wait = %+v, want %+v", got, dec)
	}
}

func TestWaitEndsWhenStoreCloses(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	res := waitAsync(s, "r1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-res; got.err == nil {
		t.Fatalf("Wait on a closed store = %+v, want an error", got.d)
	}
	if err := s.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}

func TestStoreFileIsPrivate(t *testing.T) {
	s, path := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestOpenTightensWorldReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	open(t, path, Options{})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Open: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// A '?' in the path must name a directory, not start SQLite URI parameters.
func TestPathCannotInjectSQLiteParameters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x?mode=memory&_pragma=journal_mode(off)#")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "approvals.db")
	s := open(t, path, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	s.Close()
	s = open(t, path, Options{})
	if _, _, err := s.Get("r1"); err != nil {
		t.Fatalf("request not on disk at %q: %v", path, err)
	}
}

func TestConcurrentSubmitAndDecide(t *testing.T) {
	s, _ := tempStore(t, Options{})
	const n = 100
	deadline := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	decisions := make([]Decision, n)
	waited := make([]waitResult, n)
	for i := range n {
		id := fmt.Sprint("c-", i)
		wg.Go(func() {
			if _, err := s.Submit(context.Background(), request(id, deadline)); err != nil {
				t.Error(err)
				return
			}
			var inner sync.WaitGroup
			inner.Go(func() {
				d, err := s.Wait(context.Background(), id)
				waited[i] = waitResult{d, err}
			})
			d, err := s.Decide(id, i%2 == 0, "alice", "")
			if err != nil {
				t.Error(err)
			}
			decisions[i] = d
			inner.Wait()
		})
	}
	wg.Wait()
	for i := range n {
		if waited[i].err != nil || waited[i].d != decisions[i] {
			t.Fatalf("c-%d: Wait = %+v, Decide = %+v", i, waited[i], decisions[i])
		}
	}
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Fatalf("Pending = %d, %v; all were decided", len(p), err)
	}
}

func TestSummaryCannotFakeLinesForReviewer(t *testing.T) {
	s, _ := tempStore(t, Options{})
	r := request("r1", time.Now().Add(time.Hour))
	r.Summary = "read(path=\"/tmp/x\")\nApproved by admin\u2028\u202egnp.exe\x1b[2K" + strings.Repeat("é", 300)
	r.Why = "rule\r\nfake-rule"
	got := submit(t, s, r)
	for _, field := range []string{got.Summary, got.Why} {
		if strings.ContainsAny(field, "\n\r\u2028\u202e\x1b") {
			t.Errorf("line break or control character kept: %q", field)
		}
	}
	if n := utf8.RuneCountInString(got.Summary); n != maxSummary || !strings.HasSuffix(got.Summary, "…") {
		t.Errorf("summary has %d runes, want %d ending in …", n, maxSummary)
	}
	if !strings.HasPrefix(got.Summary, `read(path="/tmp/x") Approved by admin `) {
		t.Errorf("summary = %q", got.Summary)
	}
	if stored, _, _ := s.Get("r1"); stored != got {
		t.Fatalf("stored %+v, Submit returned %+v", stored, got)
	}
}

func TestSubmitRejectsInvalidRequests(t *testing.T) {
	s, _ := tempStore(t, Options{})
	ok := request("r1", time.Now().Add(time.Hour))
	for name, change := range map[string]func(*Request){
		"empty id":           func(r *Request) { r.ID = "" },
		"empty tool":         func(r *Request) { r.Tool = "" },
		"empty fingerprint":  func(r *Request) { r.Fingerprint = "" },                         // any retry would resume it
		"zero risk":          func(r *Request) { r.Risk = 0 },                                 // unrated is not harmless
		"risk out of range":  func(r *Request) { r.Risk = Critical + 1 },                      // no such level
		"timeout pending":    func(r *Request) { r.OnTimeout = Pending },                      // would never end
		"timeout expired":    func(r *Request) { r.OnTimeout = Expired },                      // not a policy default
		"timeout garbage":    func(r *Request) { r.OnTimeout = 200 },                          // not a policy default
		"no deadline":        func(r *Request) { r.Deadline = time.Time{} },                   // wait forever or never
		"deadline year 3000": func(r *Request) { r.Deadline = r.Deadline.AddDate(975, 0, 0) }, // overflows storage
		"huge id":            func(r *Request) { r.ID = strings.Repeat("x", maxIdent+1) },
	} {
		r := ok
		change(&r)
		if _, err := s.Submit(context.Background(), r); err == nil || !strings.HasPrefix(err.Error(), "approval: ") {
			t.Errorf("%s: Submit = %v, want an approval: error", name, err)
		}
	}
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Fatalf("rejected requests were stored: %v %v", p, err)
	}
}

// Someone who can edit the file but turns a row into nonsense gets an
// error from every reader, never an approval.
func TestTamperedOutcomeFailsClosed(t *testing.T) {
	s, path := tempStore(t, Options{})
	submit(t, s, request("r1", time.Now().Add(time.Hour)))
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`PRAGMA ignore_check_constraints = ON`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE approvals SET outcome = 9 WHERE id = 'r1'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get("r1"); err == nil {
		t.Error("Get accepted outcome 9")
	}
	if d, err := s.Wait(context.Background(), "r1"); err == nil {
		t.Errorf("Wait accepted outcome 9: %+v", d)
	}
}

func TestRiskAndOutcomeStrings(t *testing.T) {
	for r := Low; r <= Critical; r++ {
		if got, err := ParseRisk(r.String()); err != nil || got != r {
			t.Errorf("ParseRisk(%q) = %v, %v", r.String(), got, err)
		}
	}
	for _, bad := range []string{"", "High", " high", "high\x00", "5", "Risk(5)"} {
		if _, err := ParseRisk(bad); err == nil {
			t.Errorf("ParseRisk(%q) accepted", bad)
		}
	}
	if Risk(0).IsValid() || Outcome(0).IsValid() {
		t.Error("zero values must be invalid")
	}
	want := map[Outcome]string{Pending: "pending", Approved: "approved", Denied: "denied", Expired: "expired", 0: "Outcome(0)"}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, o.String(), s)
		}
	}
}

func BenchmarkSubmitDecide(b *testing.B) {
	s, _ := tempStore(b, Options{})
	deadline := time.Now().Add(time.Hour)
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprint("b-", i)
		if _, err := s.Submit(context.Background(), request(id, deadline)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Decide(id, true, "alice", ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPending100(b *testing.B) {
	s, _ := tempStore(b, Options{})
	for i := range 100 {
		r := request(fmt.Sprint("p-", i), time.Now().Add(time.Duration(i+1)*time.Minute))
		r.Risk = Risk(i%4 + 1)
		submit(b, s, r)
	}
	for b.Loop() {
		if p, err := s.Pending(); err != nil || len(p) != 100 {
			b.Fatal(len(p), err)
		}
	}
}

// TestDecisionRacingSubmitIsNotRefusedAsLate: a decision whose UPDATE runs
// just before the request is inserted must not report the fresh request as
// already decided (found by the CLI conformance test, where an approve can
// arrive while its call is being submitted).
func TestDecisionRacingSubmitIsNotRefusedAsLate(t *testing.T) {
	s, _ := tempStore(t, Options{})
	for i := range 200 {
		id := fmt.Sprint("race-submit-", i)
		var wg sync.WaitGroup
		wg.Go(func() { submit(t, s, request(id, time.Now().Add(time.Hour))) })
		var err error
		for {
			if _, err = s.Decide(id, true, "alice", ""); !errors.Is(err, ErrNotFound) {
				break
			}
		}
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: Decide on a fresh request: %v", i, err)
		}
	}
}

func TestApprovalIsConsumedOnce(t *testing.T) {
	s, _ := tempStore(t, Options{})
	submit(t, s, request("c1", time.Now().Add(time.Hour)))
	if err := s.Consume("c1"); !errors.Is(err, ErrConsumed) {
		t.Fatalf("a pending request was consumed: %v", err)
	}
	if _, err := s.Decide("c1", true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume("c1"); !errors.Is(err, ErrConsumed) {
		t.Fatalf("an approval was used twice: %v", err)
	}
	submit(t, s, request("c2", time.Now().Add(time.Hour)))
	s.Decide("c2", false, "alice", "")
	if err := s.Consume("c2"); !errors.Is(err, ErrConsumed) {
		t.Fatalf("a denied request was consumed: %v", err)
	}
}
