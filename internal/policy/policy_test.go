package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustCompile(t testing.TB, rules ...Rule) *Policy {
	t.Helper()
	p, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hints(kv ...any) Hints {
	var h Hints
	for i := 0; i < len(kv); i += 2 {
		h = h.With(kv[i].(Hint), kv[i+1].(bool))
	}
	return h
}

func TestParseActionAndScope(t *testing.T) {
	for s, want := range map[string]Action{"allow": Allow, "deny": Deny, "require-approval": RequireApproval, "audit-only": AuditOnly} {
		if a, err := ParseAction(s); err != nil || a != want || a.String() != s {
			t.Errorf("ParseAction(%q) = %v, %v", s, a, err)
		}
	}
	for s, want := range map[string]Scope{"tool": ScopeTool, "category": ScopeCategory, "all": ScopeAll} {
		if sc, err := ParseScope(s); err != nil || sc != want || sc.String() != s {
			t.Errorf("ParseScope(%q) = %v, %v", s, sc, err)
		}
	}
	// Near misses are refused, not normalized: a manifest that says
	// "Allow " should fail loudly rather than be read as something.
	for _, s := range []string{"", "Allow", "allow ", "ALLOW", "permit", "require_approval", "audit", "0", "allow\x00"} {
		if a, err := ParseAction(s); !errors.Is(err, ErrInvalidRule) || a != 0 {
			t.Errorf("ParseAction(%q) = %v, %v; want ErrInvalidRule", s, a, err)
		}
	}
	for _, s := range []string{"", "Tool", "tools", "any", "*"} {
		if sc, err := ParseScope(s); !errors.Is(err, ErrInvalidRule) || sc != 0 {
			t.Errorf("ParseScope(%q) = %v, %v; want ErrInvalidRule", s, sc, err)
		}
	}
	if s := Action(0).String(); s != "Action(0)" {
		t.Errorf("zero Action prints as %q", s)
	}
}

func TestParseErrorDoesNotEchoHugeInput(t *testing.T) {
	_, err := ParseAction(strings.Repeat("x", 1<<20))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error is %d bytes long", len(err.Error()))
	}
}

func FuzzParseAction(f *testing.F) {
	f.Add("allow")
	f.Add("require-approval")
	f.Add("Allow")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAction(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) || a != 0 {
				t.Fatalf("ParseAction(%q) = %v, %v", s, a, err)
			}
			return
		}
		if !a.valid() || a.String() != s {
			t.Fatalf("ParseAction(%q) = %v, which does not round-trip", s, a)
		}
	})
}

func FuzzParseScope(f *testing.F) {
	f.Add("tool")
	f.Add("all")
	f.Add("All")
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) || sc != 0 {
				t.Fatalf("ParseScope(%q) = %v, %v", s, sc, err)
			}
			return
		}
		if !sc.valid() || sc.String() != s {
			t.Fatalf("ParseScope(%q) = %v, which does not round-trip", s, sc)
		}
	})
}

func TestHints(t *testing.T) {
	var h Hints
	if v, ok := h.Get(Destructive); v || ok {
		t.Fatal("zero Hints declares destructive")
	}
	h = h.With(Destructive, true).With(ReadOnly, false)
	if v, ok := h.Get(Destructive); !v || !ok {
		t.Fatal("destructive=true lost")
	}
	if v, ok := h.Get(ReadOnly); v || !ok {
		t.Fatal("readOnly=false lost")
	}
	if _, ok := h.Get(Idempotent); ok {
		t.Fatal("idempotent declared by accident")
	}
	if h.With(Destructive, false) == h || h.With(Destructive, false).With(Destructive, true) != h {
		t.Fatal("redeclaring a hint does not replace its value")
	}
	if v, ok := h.Get(Hint(0)); v || ok {
		t.Fatal("invalid hint reads as declared")
	}
}

// TestInvalidHintFailsClosed: a hint outside the enum must not vanish, or a
// rule "allow when destructive=false" built with a bad constant would allow
// everything, and a tool's bad annotation would hide it from deny rules.
func TestInvalidHintFailsClosed(t *testing.T) {
	if _, err := Compile([]Rule{{ID: "r", Action: Allow, Scope: ScopeAll, Hints: Hints{}.With(Hint(9), false)}}); !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("Compile accepted a rule with an invalid hint: %v", err)
	}
	p := mustCompile(t, Rule{ID: "all", Action: Allow, Scope: ScopeAll})
	if d := p.Decide(&Input{Tool: "x", Hints: Hints{}.With(Hint(0), true)}); d.Action != Deny || d.Rule != nil {
		t.Fatalf("input with an invalid hint: got %v, want the default deny", d.Action)
	}
}

func TestCompileRejectsInvalidRules(t *testing.T) {
	ok := Rule{ID: "ok", Action: Allow, Scope: ScopeAll}
	for _, tc := range []struct {
		why   string
		rules []Rule
	}{
		{"zero action must never become a verdict", []Rule{{ID: "r", Scope: ScopeAll}}},
		{"action out of range", []Rule{{ID: "r", Action: 5, Scope: ScopeAll}}},
		{"zero scope", []Rule{{ID: "r", Action: Allow}}},
		{"scope out of range", []Rule{{ID: "r", Action: Allow, Scope: 4}}},
		{"empty id cannot be audited", []Rule{{Action: Allow, Scope: ScopeAll}}},
		{"duplicate id makes audit records ambiguous", []Rule{ok, ok}},
		{"category scope without a category would be a catch-all", []Rule{{ID: "r", Action: Allow, Scope: ScopeCategory}}},
		{"empty pattern", []Rule{{ID: "r", Action: Allow, Scope: ScopeTool, Tools: []string{"echo", ""}}}},
		{"relative path_within", []Rule{{ID: "r", Action: Allow, Scope: ScopeAll, PathWithin: "ws"}}},
		{"unclean path_within", []Rule{{ID: "r", Action: Allow, Scope: ScopeAll, PathWithin: "/ws/../etc"}}},
		{"trailing slash is unclean", []Rule{{ID: "r", Action: Allow, Scope: ScopeAll, PathWithin: "/ws/"}}},
		{"NUL in path_within", []Rule{{ID: "r", Action: Allow, Scope: ScopeAll, PathWithin: "/ws\x00"}}},
		{"negative timeout", []Rule{{ID: "r", Action: RequireApproval, Scope: ScopeAll, ApprovalTimeout: -time.Second}}},
		{"timeout default must be allow or deny", []Rule{{ID: "r", Action: RequireApproval, Scope: ScopeAll, DefaultIfTimeout: AuditOnly}}},
		{"approval settings on an allow rule suggest a gate that is not there", []Rule{{ID: "r", Action: Allow, Scope: ScopeAll, ApprovalTimeout: time.Minute}}},
		{"default_if_timeout on a deny rule", []Rule{{ID: "r", Action: Deny, Scope: ScopeAll, DefaultIfTimeout: Allow}}},
	} {
		if p, err := Compile(tc.rules); !errors.Is(err, ErrInvalidRule) || p != nil {
			t.Errorf("%s: Compile = %v, %v; want ErrInvalidRule", tc.why, p, err)
		}
	}
}

func TestCompileFillsApprovalDefaults(t *testing.T) {
	p := mustCompile(t,
		Rule{ID: "a", Action: RequireApproval, Scope: ScopeTool, Tools: []string{"a"}},
		Rule{ID: "b", Action: RequireApproval, Scope: ScopeTool, Tools: []string{"b"}, ApprovalTimeout: time.Second, DefaultIfTimeout: Allow},
	)
	a := p.Decide(&Input{Tool: "a"}).Rule
	if a.ApprovalTimeout != DefaultApprovalTimeout || a.DefaultIfTimeout != Deny {
		t.Errorf("defaults: %v, %v", a.ApprovalTimeout, a.DefaultIfTimeout)
	}
	b := p.Decide(&Input{Tool: "b"}).Rule
	if b.ApprovalTimeout != time.Second || b.DefaultIfTimeout != Allow {
		t.Errorf("explicit: %v, %v", b.ApprovalTimeout, b.DefaultIfTimeout)
	}
}

func TestDecideCriteria(t *testing.T) {
	destructive := hints(Destructive, true)
	safe := hints(Destructive, false, ReadOnly, true)
	for _, tc := range []struct {
		name  string
		rule  Rule
		in    Input
		match bool
	}{
		{"all matches anything", Rule{Scope: ScopeAll}, Input{Tool: "x", Category: "c", Hints: destructive, Path: "/p"}, true},
		{"all matches an empty input", Rule{Scope: ScopeAll}, Input{}, true},
		{"exact tool", Rule{Scope: ScopeTool, Tools: []string{"echo"}}, Input{Tool: "echo"}, true},
		{"exact tool, other name", Rule{Scope: ScopeTool, Tools: []string{"echo"}}, Input{Tool: "echo2"}, false},
		{"exact tool, empty name", Rule{Scope: ScopeTool, Tools: []string{"echo"}}, Input{}, false},
		{"any of several patterns", Rule{Scope: ScopeTool, Tools: []string{"a", "web-*"}}, Input{Tool: "web-fetch"}, true},
		{"any of several, exact one", Rule{Scope: ScopeTool, Tools: []string{"a", "web-*"}}, Input{Tool: "a"}, true},
		{"none of several", Rule{Scope: ScopeTool, Tools: []string{"a", "web-*"}}, Input{Tool: "b"}, false},
		{"glob suffix", Rule{Scope: ScopeTool, Tools: []string{"*-delete"}}, Input{Tool: "file-delete"}, true},
		{"glob middle", Rule{Scope: ScopeTool, Tools: []string{"file-*-tmp"}}, Input{Tool: "file-x-tmp"}, true},
		{"star matches the empty name", Rule{Scope: ScopeTool, Tools: []string{"*"}}, Input{}, true},
		{"tool scope, no tools = any tool", Rule{Scope: ScopeTool, Hints: destructive}, Input{Tool: "rm", Hints: destructive}, true},
		{"category", Rule{Scope: ScopeCategory, Category: "fs"}, Input{Tool: "x", Category: "fs"}, true},
		{"category differs", Rule{Scope: ScopeCategory, Category: "fs"}, Input{Tool: "x", Category: "net"}, false},
		{"category missing", Rule{Scope: ScopeCategory, Category: "fs"}, Input{Tool: "x"}, false},
		{"category is case-sensitive", Rule{Scope: ScopeCategory, Category: "fs"}, Input{Category: "FS"}, false},
		{"hint equal", Rule{Scope: ScopeAll, Hints: destructive}, Input{Hints: destructive}, true},
		{"hint differs", Rule{Scope: ScopeAll, Hints: destructive}, Input{Hints: hints(Destructive, false)}, false},
		// A tool that leaves a hint out must not get a rule written for tools
		// that declare it, either way round.
		{"undeclared hint never matches true", Rule{Scope: ScopeAll, Hints: destructive}, Input{}, false},
		{"undeclared hint never matches false", Rule{Scope: ScopeAll, Hints: hints(Destructive, false)}, Input{}, false},
		{"extra tool hints are fine", Rule{Scope: ScopeAll, Hints: destructive}, Input{Hints: destructive.With(OpenWorld, true)}, true},
		{"all declared hints must hold", Rule{Scope: ScopeAll, Hints: safe}, Input{Hints: hints(Destructive, false, ReadOnly, false)}, false},
		{"all declared hints hold", Rule{Scope: ScopeAll, Hints: safe}, Input{Hints: safe.With(Idempotent, true)}, true},
		{"path within", Rule{Scope: ScopeAll, PathWithin: "/ws"}, Input{Path: "/ws/a"}, true},
		{"path is the dir", Rule{Scope: ScopeAll, PathWithin: "/ws"}, Input{Path: "/ws"}, true},
		{"path outside", Rule{Scope: ScopeAll, PathWithin: "/ws"}, Input{Path: "/etc/passwd"}, false},
		{"path sibling prefix", Rule{Scope: ScopeAll, PathWithin: "/ws"}, Input{Path: "/ws2/a"}, false},
		{"call without a path never matches path_within", Rule{Scope: ScopeAll, PathWithin: "/ws"}, Input{}, false},
		{"path_within root", Rule{Scope: ScopeAll, PathWithin: "/"}, Input{Path: "/x"}, true},
		{"all criteria", Rule{Scope: ScopeTool, Tools: []string{"file-*"}, Category: "fs", Hints: destructive, PathWithin: "/ws"},
			Input{Tool: "file-delete", Category: "fs", Hints: destructive, Path: "/ws/x"}, true},
		{"all criteria but the tool", Rule{Scope: ScopeTool, Tools: []string{"file-*"}, Category: "fs", Hints: destructive, PathWithin: "/ws"},
			Input{Tool: "web-delete", Category: "fs", Hints: destructive, Path: "/ws/x"}, false},
		{"all criteria but the category", Rule{Scope: ScopeTool, Tools: []string{"file-*"}, Category: "fs", Hints: destructive, PathWithin: "/ws"},
			Input{Tool: "file-delete", Category: "net", Hints: destructive, Path: "/ws/x"}, false},
		{"all criteria but the hint", Rule{Scope: ScopeTool, Tools: []string{"file-*"}, Category: "fs", Hints: destructive, PathWithin: "/ws"},
			Input{Tool: "file-delete", Category: "fs", Path: "/ws/x"}, false},
		{"all criteria but the path", Rule{Scope: ScopeTool, Tools: []string{"file-*"}, Category: "fs", Hints: destructive, PathWithin: "/ws"},
			Input{Tool: "file-delete", Category: "fs", Hints: destructive, Path: "/tmp/x"}, false},
		{"exact tool and category", Rule{Scope: ScopeTool, Tools: []string{"rm"}, Category: "fs"}, Input{Tool: "rm", Category: "net"}, false},
	} {
		tc.rule.ID, tc.rule.Action = "r", AuditOnly
		d := mustCompile(t, tc.rule).Decide(&tc.in)
		if got := d.Rule != nil; got != tc.match {
			t.Errorf("%s: matched = %v, want %v", tc.name, got, tc.match)
		}
		if tc.match && (d.Action != AuditOnly || d.Index != 0) {
			t.Errorf("%s: got %+v", tc.name, d)
		}
		if !tc.match && (d.Action != Deny || d.Index != -1) {
			t.Errorf("%s: no match gave %+v, want the default deny", tc.name, d)
		}
	}
}

func TestDecideDeniesWhenNothingMatches(t *testing.T) {
	want := Decision{Action: Deny, Index: -1}
	for name, p := range map[string]*Policy{
		"nil policy":  nil,
		"zero policy": {},
		"no rules":    mustCompile(t),
		"no match":    mustCompile(t, Rule{ID: "r", Action: Allow, Scope: ScopeTool, Tools: []string{"echo"}}),
	} {
		if d := p.Decide(&Input{Tool: "rm"}); d != want {
			t.Errorf("%s: got %+v", name, d)
		}
	}
	if d := mustCompile(t, Rule{ID: "r", Action: Allow, Scope: ScopeAll}).Decide(nil); d != want {
		t.Errorf("nil input: got %+v", d)
	}
}

// TestDecideDeniesUnresolvedPath: Decide trusts a path only in the form
// ResolvePath gives. Anything else might not mean what it spells.
func TestDecideDeniesUnresolvedPath(t *testing.T) {
	p := mustCompile(t, Rule{ID: "any", Action: Allow, Scope: ScopeAll})
	for _, path := range []string{"ws/a", "/ws/../etc", "/ws/./a", "/ws/", "//ws", "/ws\x00"} {
		if d := p.Decide(&Input{Tool: "x", Path: path}); d.Action != Deny || d.Rule != nil {
			t.Errorf("%q: got %v, want the default deny", path, d.Action)
		}
	}
}

func TestDecideFirstMatchWins(t *testing.T) {
	p := mustCompile(t,
		Rule{ID: "deny-rm", Action: Deny, Scope: ScopeTool, Tools: []string{"rm"}},
		Rule{ID: "web-approve", Action: RequireApproval, Scope: ScopeTool, Tools: []string{"web-*"}},
		Rule{ID: "allow-web-fetch", Action: Allow, Scope: ScopeTool, Tools: []string{"web-fetch"}},
		Rule{ID: "fs", Action: AuditOnly, Scope: ScopeCategory, Category: "fs"},
		Rule{ID: "destructive", Action: Deny, Scope: ScopeAll, Hints: hints(Destructive, true)},
		Rule{ID: "rest", Action: Allow, Scope: ScopeAll},
	)
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Tool: "rm", Category: "fs"}, "deny-rm"},
		// The exact rule comes after the wildcard: it must not jump ahead.
		{Input{Tool: "web-fetch"}, "web-approve"},
		{Input{Tool: "cp", Category: "fs", Hints: hints(Destructive, true)}, "fs"},
		{Input{Tool: "cp", Hints: hints(Destructive, true)}, "destructive"},
		{Input{Tool: "cp"}, "rest"},
	} {
		if d := p.Decide(&tc.in); d.Rule == nil || d.Rule.ID != tc.want || d.Action != d.Rule.Action || p.rules[d.Index].ID != tc.want {
			t.Errorf("%+v: got %+v, want rule %s", tc.in, d, tc.want)
		}
	}
}

// TestDecideExactRuleDoesNotJumpAheadOfWildcard checks order across many
// bit-set words, where exact names and categories live in separate indexes.
func TestDecideExactRuleDoesNotJumpAheadOfWildcard(t *testing.T) {
	for _, first := range []int{0, 63, 64, 65, 127, 128, 199} {
		var rules []Rule
		for i := range 200 {
			r := Rule{ID: fmt.Sprint(i), Action: Allow, Scope: ScopeTool, Tools: []string{fmt.Sprintf("other-%d", i)}}
			switch {
			case i == first:
				r.Action, r.Tools = Deny, []string{"web-*"}
			case i > first && i%3 == 0:
				r.Tools = []string{"web-fetch"}
			case i > first && i%3 == 1:
				r.Scope, r.Tools, r.Category = ScopeCategory, nil, "net"
			}
			rules = append(rules, r)
		}
		d := mustCompile(t, rules...).Decide(&Input{Tool: "web-fetch", Category: "net"})
		if d.Index != first || d.Action != Deny {
			t.Errorf("wildcard at %d: got index %d, action %v", first, d.Index, d.Action)
		}
	}
}

func TestExplicit(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule *Rule
		want bool
	}{
		{"no rule", nil, false},
		{"tool scope naming the tool", &Rule{Scope: ScopeTool, Tools: []string{"write-file"}}, true},
		{"tool scope with a family glob", &Rule{Scope: ScopeTool, Tools: []string{"file-*"}}, true},
		{"tool scope with no tools is a catch-all", &Rule{Scope: ScopeTool, Hints: hints(ReadOnly, true)}, false},
		// "*" names nothing; a supervised agent must not lose its approval
		// gate to a catch-all dressed as a tool rule.
		{"tool scope with *", &Rule{Scope: ScopeTool, Tools: []string{"*"}}, false},
		{"tool scope with ** among names", &Rule{Scope: ScopeTool, Tools: []string{"echo", "**"}}, false},
		{"category scope", &Rule{Scope: ScopeCategory, Category: "fs"}, true},
		{"all scope, even with tools", &Rule{Scope: ScopeAll, Tools: []string{"echo"}}, false},
	} {
		if got := (Decision{Action: Allow, Rule: tc.rule}).Explicit(); got != tc.want {
			t.Errorf("%s: Explicit = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDecideIgnoresCallerMutation: neither the slice given to Compile nor
// the Rule a Decision points at can change later verdicts.
func TestDecideIgnoresCallerMutation(t *testing.T) {
	rules := []Rule{{ID: "deny-rm", Action: Deny, Scope: ScopeTool, Tools: []string{"rm"}}, {ID: "rest", Action: Allow, Scope: ScopeAll}}
	p := mustCompile(t, rules...)
	rules[0].Action, rules[0].Tools[0] = Allow, "echo"
	d := p.Decide(&Input{Tool: "rm"})
	if d.Action != Deny || d.Rule.Tools[0] != "rm" {
		t.Fatalf("mutating Compile's input changed the policy: %+v", d)
	}
	d.Rule.Action = Allow
	if d := p.Decide(&Input{Tool: "rm"}); d.Action != Deny {
		t.Fatalf("mutating a Decision's rule changed the verdict to %v", d.Action)
	}
}

func TestDecideConcurrent(t *testing.T) {
	p := mustCompile(t, Rule{ID: "web", Action: Allow, Scope: ScopeTool, Tools: []string{"web-*"}}, Rule{ID: "rest", Action: Deny, Scope: ScopeAll})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				in := Input{Tool: fmt.Sprintf("web-%d", i)}
				if g%2 == 1 {
					in.Tool = "rm"
				}
				if d := p.Decide(&in); (d.Action == Allow) != (g%2 == 0) {
					t.Errorf("%s: %v", in.Tool, d.Action)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := benchPolicy(t, 300)
	in := benchInput()
	if n := testing.AllocsPerRun(100, func() { p.Decide(&in) }); n != 0 {
		t.Fatalf("Decide allocates %v times per call", n)
	}
}

// refDecide is the slow, obviously-correct reading of the matching rules.
func refDecide(rules []Rule, in Input) (Action, int) {
	if in.Path != "" && (!filepath.IsAbs(in.Path) || filepath.Clean(in.Path) != in.Path) {
		return Deny, -1
	}
next:
	for i, r := range rules {
		if len(r.Tools) > 0 {
			hit := false
			for _, pat := range r.Tools {
				hit = hit || refGlob(pat, in.Tool)
			}
			if !hit {
				continue
			}
		}
		if r.Category != "" && r.Category != in.Category {
			continue
		}
		for h := ReadOnly; h <= OpenWorld; h++ {
			want, declared := r.Hints.Get(h)
			got, has := in.Hints.Get(h)
			if declared && (!has || got != want) {
				continue next
			}
		}
		if r.PathWithin != "" && (in.Path == "" || !refWithin(r.PathWithin, in.Path)) {
			continue
		}
		return r.Action, i
	}
	return Deny, -1
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func randHints(rng *rand.Rand) Hints {
	var h Hints
	for hint := ReadOnly; hint <= OpenWorld; hint++ {
		switch rng.IntN(4) {
		case 0:
			h = h.With(hint, false)
		case 1:
			h = h.With(hint, true)
		}
	}
	return h
}

// TestDecideMatchesReference compares Decide with refDecide on random rule
// sets, sized to cross bit-set word boundaries, and random inputs.
func TestDecideMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tools := []string{"", "a", "aa", "ab", "echo", "web-fetch", "web-search", "file-delete", "file-x-tmp", "file-tmp"}
	patterns := append([]string{"*", "**", "a*", "*a*b", "*b", "web-*", "*-delete", "file-*-tmp", "*-*", "f*e*e"}, tools[1:]...)
	cats := []string{"", "", "fs", "net", "x"}
	dirs := []string{"", "", "", "/", "/ws", "/ws/a", "/ws2"}
	paths := []string{"", "/", "/ws", "/ws2", "/ws/a", "/ws/a/b", "/ws2/a", "/wsx", "/ws/ab", "ws/a", "/ws/../etc"}
	for range 400 {
		rules := make([]Rule, rng.IntN(200))
		for i := range rules {
			r := Rule{ID: fmt.Sprint(i), Action: Action(1 + rng.IntN(4)), Scope: ScopeTool}
			for range rng.IntN(3) {
				r.Tools = append(r.Tools, pick(rng, patterns...))
			}
			r.Category = pick(rng, cats...)
			if r.Category != "" && rng.IntN(2) == 0 {
				r.Scope = ScopeCategory
			}
			if rng.IntN(2) == 0 {
				r.Hints = randHints(rng)
			}
			r.PathWithin = pick(rng, dirs...)
			rules[i] = r
		}
		p := mustCompile(t, rules...)
		for range 50 {
			in := Input{Tool: pick(rng, tools...), Category: pick(rng, cats...), Hints: randHints(rng), Path: pick(rng, paths...)}
			d := p.Decide(&in)
			action, index := refDecide(rules, in)
			if d.Action != action || d.Index != index || (index >= 0) != (d.Rule != nil) {
				t.Fatalf("%d rules, input %+v: got %v at %d, reference %v at %d", len(rules), in, d.Action, d.Index, action, index)
			}
			if d.Rule != nil && d.Rule.ID != rules[index].ID {
				t.Fatalf("decision points at rule %s, want %s", d.Rule.ID, rules[index].ID)
			}
		}
	}
}

// benchPolicy is a worst case for Decide: n rules mixing exact names,
// globs, categories and hints, none of which matches benchInput except the
// last. Many globs share benchInput's prefix.
func benchPolicy(tb testing.TB, n int) *Policy {
	rules := make([]Rule, n)
	for i := range n - 1 {
		r := Rule{ID: fmt.Sprintf("r%d", i), Action: Deny, Scope: ScopeTool}
		switch i % 5 {
		case 0:
			r.Tools = []string{fmt.Sprintf("tool-%d", i), fmt.Sprintf("file-delete-%d", i)}
		case 1:
			r.Tools = []string{fmt.Sprintf("file-*-%d", i), "web-*"}
		case 2:
			r.Tools = []string{fmt.Sprintf("*-tmp-%d", i)}
		case 3:
			r.Scope, r.Category = ScopeCategory, fmt.Sprintf("cat-%d", i)
		case 4:
			r.Hints = hints(Destructive, true, ReadOnly, false)
		}
		rules[i] = r
	}
	rules[n-1] = Rule{ID: "last", Action: Allow, Scope: ScopeTool, Tools: []string{"file-*-tmp"}, Category: "fs", Hints: hints(ReadOnly, true), PathWithin: "/ws"}
	return mustCompile(tb, rules...)
}

func benchInput() Input {
	return Input{Tool: "file-write-tmp", Category: "fs", Hints: hints(ReadOnly, true, Destructive, false), Path: "/ws/notes/today.md"}
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			p, in := benchPolicy(b, n), benchInput()
			if d := p.Decide(&in); d.Index != n-1 {
				b.Fatalf("matched rule %d, want the last", d.Index)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(&in)
			}
		})
	}
}

// BenchmarkDecideGlobsShareEnds is the adversarial case for the wildcard
// index: every rule is a wildcard with the input's first and last byte, so
// each one runs its pattern before the last rule matches.
func BenchmarkDecideGlobsShareEnds(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := make([]Rule, n)
			for i := range n - 1 {
				rules[i] = Rule{ID: fmt.Sprint(i), Action: Deny, Scope: ScopeTool, Tools: []string{fmt.Sprintf("file-*-%d-tmp", i)}}
			}
			rules[n-1] = Rule{ID: "last", Action: Allow, Scope: ScopeTool, Tools: []string{"file-*-tmp"}}
			p, in := mustCompile(b, rules...), benchInput()
			if d := p.Decide(&in); d.Index != n-1 {
				b.Fatalf("matched rule %d, want the last", d.Index)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(&in)
			}
		})
	}
}
