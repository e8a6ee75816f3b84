// Package policy decides which CKP policy rule applies to a tool call and what it says.
//
// # Threat model
//
// Rules come from the operator's manifest and are trusted to mean what they
// say; a mistake in them (an unknown action, a relative path_within, a
// duplicate id) is refused at Compile rather than guessed at. The call is
// hostile: the model chooses the tool name and the path argument, and will try
// "..", symlinks planted inside an allowed directory, sibling prefixes
// ("/ws2" against "/ws") and names built to make wildcard matching slow.
//
// # Guarantees
//
//   - Rules are tried in the order written and the first that matches decides.
//     No match, a nil Policy, a nil Input or an Input that Decide cannot judge
//     (a relative or unclean path, an invalid hint) gives Deny with no Rule.
//   - The zero Action is never a verdict: Compile refuses it, and callers are
//     told to treat it as deny.
//   - Decide does not allocate and does not retain its Input. Its cost is
//     linear in the number of rules and in pattern and name lengths: wildcard
//     matching never backtracks exponentially.
//   - A path_within rule applies only to a path that ResolvePath has made
//     absolute, clean and free of symlinks in its existing part, so a symlink
//     or ".." that leads outside the directory is seen as outside.
//
// ResolvePath checks the file system as it is at decision time. A symlink
// swapped in between the decision and the tool's open is not covered here:
// tools must open paths beneath an os.Root (or with no-follow semantics).
package policy

import (
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"strings"
	"time"
)

// ErrInvalidRule is wrapped by every error from ParseAction, ParseScope and Compile.
var ErrInvalidRule = errors.New("policy: invalid rule")

// DefaultApprovalTimeout is how long a require-approval rule waits when it names no timeout.
const DefaultApprovalTimeout = 5 * time.Minute

// Action is a rule's verdict. The zero Action is invalid and must be treated as deny.
type Action uint8

const (
	Allow Action = iota + 1
	Deny
	RequireApproval
	AuditOnly
)

// ParseAction parses a manifest action: "allow", "deny", "require-approval" or
// "audit-only", exactly (no case folding, no surrounding space).
func ParseAction(s string) (Action, error) {
	for a := Allow; a <= AuditOnly; a++ {
		if s == a.String() {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown action %s (want allow, deny, require-approval or audit-only)", ErrInvalidRule, quote(s))
}

func (a Action) valid() bool { return a >= Allow && a <= AuditOnly }

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case RequireApproval:
		return "require-approval"
	case AuditOnly:
		return "audit-only"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Scope says what a rule is about. It decides whether a match is Explicit and
// what Compile requires; matching itself looks only at the criteria set.
// The zero Scope is invalid.
type Scope uint8

const (
	ScopeTool Scope = iota + 1
	ScopeCategory
	ScopeAll
)

// ParseScope parses a manifest scope: "tool", "category" or "all", exactly.
func ParseScope(s string) (Scope, error) {
	for sc := ScopeTool; sc <= ScopeAll; sc++ {
		if s == sc.String() {
			return sc, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown scope %s (want tool, category or all)", ErrInvalidRule, quote(s))
}

func (s Scope) valid() bool { return s >= ScopeTool && s <= ScopeAll }

func (s Scope) String() string {
	switch s {
	case ScopeTool:
		return "tool"
	case ScopeCategory:
		return "category"
	case ScopeAll:
		return "all"
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// Hint is one MCP tool annotation. The zero Hint is invalid.
type Hint uint8

const (
	ReadOnly Hint = iota + 1
	Destructive
	Idempotent
	OpenWorld
)

const numHints = 4

// badHint marks Hints that were given an invalid Hint. Compile refuses such a
// rule and Decide denies such an input, because silently dropping the hint
// would widen an allow rule or hide a tool's destructiveness.
const badHint = 1 << 7

// Hints is a tool's MCP annotations as a tri-state bit set (undeclared, true,
// false), precomputed once per tool. The zero Hints declares nothing.
type Hints struct {
	set uint8 // declared hints, plus badHint
	val uint8 // values of declared hints; always a subset of set
}

// With returns a copy of h with hint declared as value.
func (h Hints) With(hint Hint, value bool) Hints {
	if hint < ReadOnly || hint > OpenWorld {
		h.set |= badHint
		return h
	}
	bit := uint8(1) << (hint - 1)
	h.set |= bit
	if value {
		h.val |= bit
	} else {
		h.val &^= bit
	}
	return h
}

// Get reports hint's value and whether it was declared at all.
func (h Hints) Get(hint Hint) (value, declared bool) {
	if hint < ReadOnly || hint > OpenWorld {
		return false, false
	}
	bit := uint8(1) << (hint - 1)
	return h.val&bit != 0, h.set&bit != 0
}

// state is hint i's column in Policy.hints: 0 undeclared, 1 false, 2 true.
func (h Hints) state(i int) int {
	bit := uint8(1) << i
	switch {
	case h.set&bit == 0:
		return 0
	case h.val&bit == 0:
		return 1
	default:
		return 2
	}
}

// Rule is one policy rule, as the kernel converts it from the manifest.
type Rule struct {
	ID     string
	Action Action
	Scope  Scope
	// Tools are name patterns: exact, or with '*' matching any run of bytes
	// ("web-*", "*-delete", "file-*-tmp"). Empty means any tool.
	Tools []string
	// Category must equal the tool's category; "" means any.
	Category string
	// Hints declared here must be declared with the same value by the tool;
	// a tool that leaves a hint undeclared never matches a rule that declares it.
	Hints Hints
	// PathWithin is an absolute, clean directory, or "". When set, the call
	// must carry a resolved path inside it: a call with no path never matches.
	PathWithin string
	Reason     string
	// ApprovalTimeout and DefaultIfTimeout apply to RequireApproval only;
	// Compile fills in DefaultApprovalTimeout and Deny for zero values.
	ApprovalTimeout  time.Duration
	DefaultIfTimeout Action
}

// Policy is a compiled rule list. It is immutable and safe for concurrent use.
// The zero Policy denies everything.
//
// Decide narrows the rules with bit sets: one bit per rule, ANDed over the
// criteria that a table lookup settles (exact tool names, category, each
// hint, whether a path is needed) or bounds (a wildcard pattern's first and
// last byte). Only the surviving rules, in index order, get the checks a
// table cannot settle (wildcards, path_within), so first-match order is
// exactly the written order.
type Policy struct {
	rules    []Rule    // Compile's deep copies, handed out in Decisions
	matchers []matcher // what Decide checks after the bit sets; same indexes

	// Dense bit sets have a bit for every rule, (len(rules)+63)/64 words.
	// Sparse sets are per key, so their memory stays linear in the rules; a
	// rule passes a criterion if it is in the dense set or the key's sparse set.
	anyTool []uint64             // no tool patterns
	exact   map[string]sparseSet // a wildcard-free pattern equal to the name
	// Wildcard patterns are filed by their literal ends, which a name must
	// share; matches then runs the patterns themselves.
	globAny []uint64              // a pattern that starts and ends with '*'
	byFirst [256]sparseSet        // a pattern with a prefix only, by its first byte
	byLast  [256]sparseSet        // a pattern with a suffix only, by its last byte
	byEnds  map[[2]byte]sparseSet // a pattern with both, by first and last byte
	noCat   []uint64              // no category
	byCat   map[string]sparseSet  // the category
	hints   [numHints][3][]uint64 // [hint][the input's state]: rules that accept it
	noPath  []uint64              // no path_within
}

// matcher holds what a bit set cannot decide about a rule.
type matcher struct {
	action     Action
	patterns   []pattern // nil unless the rule has a wildcard pattern
	pathWithin string
}

// sparseSet is a bit set stored as its non-zero words, in word order.
type sparseSet []sparseWord

type sparseWord struct {
	word int
	bits uint64
}

// take returns the bits of word w and drops the words up to it. Decide
// visits words in order, so each set is walked once.
func (s *sparseSet) take(w int) uint64 {
	if len(*s) > 0 && (*s)[0].word == w {
		b := (*s)[0].bits
		*s = (*s)[1:]
		return b
	}
	return 0
}

func (s sparseSet) add(i int) sparseSet {
	w, b := i/64, uint64(1)<<(i%64)
	if n := len(s); n > 0 && s[n-1].word == w {
		s[n-1].bits |= b
		return s
	}
	return append(s, sparseWord{w, b})
}

// Compile validates rules and builds a Policy. It refuses an empty or
// duplicate ID, an invalid action or scope, a category scope without a
// category, an empty tool pattern, a relative or unclean path_within, an
// invalid hint, and approval settings on a rule that does not require
// approval (they would suggest a gate that is not there). No rules is valid
// and denies everything.
func Compile(rules []Rule) (*Policy, error) {
	n := len(rules)
	words := (n + 63) / 64
	dense := func() []uint64 { return make([]uint64, words) }
	p := &Policy{
		rules:    make([]Rule, n),
		matchers: make([]matcher, n),
		anyTool:  dense(),
		exact:    map[string]sparseSet{},
		globAny:  dense(),
		byEnds:   map[[2]byte]sparseSet{},
		noCat:    dense(),
		byCat:    map[string]sparseSet{},
		noPath:   dense(),
	}
	for h := range p.hints {
		for s := range p.hints[h] {
			p.hints[h][s] = dense()
		}
	}
	ids := make(map[string]bool, n)
	for i, r := range rules {
		if err := check(r, ids); err != nil {
			return nil, fmt.Errorf("%w: rule %d (id %s): %s", ErrInvalidRule, i, quote(r.ID), err)
		}
		ids[r.ID] = true
		r.Tools = append([]string(nil), r.Tools...)
		if r.Action == RequireApproval {
			if r.ApprovalTimeout == 0 {
				r.ApprovalTimeout = DefaultApprovalTimeout
			}
			if r.DefaultIfTimeout == 0 {
				r.DefaultIfTimeout = Deny
			}
		}
		p.rules[i] = r
		p.add(i, r)
	}
	return p, nil
}

// check returns why r cannot be compiled, or nil.
func check(r Rule, ids map[string]bool) error {
	switch {
	case r.ID == "":
		return errors.New("empty id")
	case ids[r.ID]:
		return errors.New("duplicate id")
	case !r.Action.valid():
		return fmt.Errorf("invalid action %v", r.Action)
	case !r.Scope.valid():
		return fmt.Errorf("invalid scope %v", r.Scope)
	case r.Scope == ScopeCategory && r.Category == "":
		return errors.New("scope category needs a category")
	case r.Hints.set&badHint != 0:
		return errors.New("invalid hint")
	case r.PathWithin != "" && (!filepath.IsAbs(r.PathWithin) || filepath.Clean(r.PathWithin) != r.PathWithin || strings.IndexByte(r.PathWithin, 0) >= 0):
		return fmt.Errorf("path_within %s is not an absolute, clean path", quote(r.PathWithin))
	case r.ApprovalTimeout < 0:
		return errors.New("negative approval timeout")
	case r.DefaultIfTimeout != 0 && r.DefaultIfTimeout != Allow && r.DefaultIfTimeout != Deny:
		return fmt.Errorf("default_if_timeout must be allow or deny, not %v", r.DefaultIfTimeout)
	case r.Action != RequireApproval && (r.ApprovalTimeout != 0 || r.DefaultIfTimeout != 0):
		return fmt.Errorf("approval settings on a %v rule", r.Action)
	}
	for _, t := range r.Tools {
		if t == "" {
			return errors.New("empty tool pattern")
		}
	}
	return nil
}

// add files rule i under every bit set whose criterion it satisfies.
func (p *Policy) add(i int, r Rule) {
	w, b := i/64, uint64(1)<<(i%64)
	m := matcher{action: r.Action, pathWithin: r.PathWithin}
	if len(r.Tools) == 0 {
		p.anyTool[w] |= b
	}
	for _, t := range r.Tools {
		if !strings.Contains(t, "*") {
			p.exact[t] = p.exact[t].add(i)
			continue
		}
		if m.patterns == nil {
			for _, t := range r.Tools {
				m.patterns = append(m.patterns, compilePattern(t))
			}
		}
		switch first, last := t[0], t[len(t)-1]; {
		case first == '*' && last == '*':
			p.globAny[w] |= b
		case last == '*':
			p.byFirst[first] = p.byFirst[first].add(i)
		case first == '*':
			p.byLast[last] = p.byLast[last].add(i)
		default:
			key := [2]byte{first, last}
			p.byEnds[key] = p.byEnds[key].add(i)
		}
	}
	if r.Category == "" {
		p.noCat[w] |= b
	} else {
		p.byCat[r.Category] = p.byCat[r.Category].add(i)
	}
	for h := range numHints {
		need := r.Hints.state(h)
		for s := range 3 {
			if need == 0 || need == s {
				p.hints[h][s][w] |= b
			}
		}
	}
	if r.PathWithin == "" {
		p.noPath[w] |= b
	}
	p.matchers[i] = m
}

// Input describes one call. The caller fills it; Decide does not retain it.
type Input struct {
	Tool     string
	Category string
	Hints    Hints
	// Path is the call's path argument as returned by ResolvePath, or "" when
	// the call has none. Any other non-empty form (relative, unclean) is denied.
	Path string
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action // Deny when nothing matched
	// Rule is the matching rule, or nil when nothing matched and the default
	// deny applies. It is the Policy's own copy: read it, never modify it.
	Rule  *Rule
	Index int // position of the rule, -1 when nothing matched
}

// defaultDeny is the verdict when no rule matches or the input cannot be judged.
func defaultDeny() Decision { return Decision{Action: Deny, Index: -1} }

// Decide returns the first rule that matches in, or the default deny.
func (p *Policy) Decide(in *Input) Decision {
	if p == nil || in == nil || in.Hints.set&badHint != 0 {
		return defaultDeny()
	}
	if in.Path != "" && !cleanAbs(in.Path) {
		return defaultDeny()
	}
	ex, cat := p.exact[in.Tool], p.byCat[in.Category]
	var first, last, ends sparseSet // nil for the empty name: only "*…*" patterns can match it
	if n := len(in.Tool); n > 0 {
		first, last, ends = p.byFirst[in.Tool[0]], p.byLast[in.Tool[n-1]], p.byEnds[[2]byte{in.Tool[0], in.Tool[n-1]}]
	}
	h0, h1, h2, h3 := p.hints[0][in.Hints.state(0)], p.hints[1][in.Hints.state(1)], p.hints[2][in.Hints.state(2)], p.hints[3][in.Hints.state(3)]
	for w, tools := range p.anyTool {
		tools |= p.globAny[w] | ex.take(w) | first.take(w) | last.take(w) | ends.take(w)
		cats := p.noCat[w] | cat.take(w)
		c := tools & cats & h0[w] & h1[w] & h2[w] & h3[w]
		if in.Path == "" {
			c &= p.noPath[w]
		}
		for ; c != 0; c &= c - 1 {
			i := w*64 + bits.TrailingZeros64(c)
			if m := &p.matchers[i]; m.matches(in) {
				return Decision{Action: m.action, Rule: &p.rules[i], Index: i}
			}
		}
	}
	return defaultDeny()
}

// matches checks the criteria the bit sets left open.
func (m *matcher) matches(in *Input) bool {
	if m.pathWithin != "" && (in.Path == "" || !within(m.pathWithin, in.Path)) {
		return false
	}
	if m.patterns == nil {
		return true
	}
	for i := range m.patterns {
		if m.patterns[i].match(in.Tool) {
			return true
		}
	}
	return false
}

// Explicit reports whether d was made by a rule that names the tool or its
// category (scope tool with Tools set, or scope category), as opposed to a
// catch-all. Supervised agents need an explicit allow for side-effecting
// tools, so a tool pattern made only of '*' does not count: it names nothing.
func (d Decision) Explicit() bool {
	if d.Rule == nil {
		return false
	}
	switch d.Rule.Scope {
	case ScopeCategory:
		return d.Rule.Category != ""
	case ScopeTool:
		for _, t := range d.Rule.Tools {
			if strings.Trim(t, "*") == "" {
				return false
			}
		}
		return len(d.Rule.Tools) > 0
	}
	return false
}

// quote renders untrusted text for an error message, cut short so that a
// huge input cannot bloat logs.
func quote(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return fmt.Sprintf("%q...", s[:maxLen])
	}
	return fmt.Sprintf("%q", s)
}
