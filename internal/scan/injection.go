package scan

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	ahocorasick "github.com/petar-dambovaliev/aho-corasick"
)

// Injection families.
const (
	FamilyOverride   = "instruction-override" // "ignore previous instructions" and many phrasings
	FamilyRole       = "role-hijack"          // persona / jailbreak framing: "you are now DAN", "developer mode"
	FamilyDisclosure = "prompt-disclosure"    // "print your system prompt", "reveal your instructions"
	FamilyExfil      = "exfiltration"         // data carried to a URL, "send the contents of X to"
	FamilyToolHijack = "tool-hijack"          // "call the delete tool", "send an email to", "transfer $", "grant admin"
	FamilyFakeTurn   = "fake-turn"            // fake "System:", "<|im_start|>system", "[INST]" turns, fake tool results
	FamilySmuggling  = "smuggling"            // payload hidden by encoding, zero-width, bidi or delimiters
)

// DefaultInjectionThreshold is the Score at and above which Scan reports an
// injection.
const DefaultInjectionThreshold = 0.5

// InjectionVerdict is the result of a scan. Families and Spans describe every
// signal found, also when Score stays below the threshold.
type InjectionVerdict struct {
	Injection bool     // Score >= threshold
	Score     float64  // 0..1
	Families  []string // sorted, unique
	Spans     [][2]int // byte offsets in the original text, sorted, merged when overlapping
}

// InjectionDetector finds prompt injections in text an agent reads. It is
// safe for concurrent use: the automaton and tables are built once and never
// change. The zero InjectionDetector works like one from NewInjectionDetector.
//
// # Threat model
//
// An agent reads text it did not write: emails, web pages, tool output. An
// attacker who controls some of that text wants the model to take it as
// instructions: to drop its own ("ignore previous instructions"), to adopt a
// persona without limits, to reveal its prompt, to send data away or to call
// tools. The attacker may disguise the words: zero-width and bidi characters,
// look-alike letters, full-width forms, leetspeak, spaced-out letters, HTML
// entities, URL or base64 encoding, and places a human reader does not see
// (HTML comments, hidden elements, alt text, link targets).
//
// The detector folds the text into a normalised skeleton that undoes those
// disguises, decodes embedded encodings one level deep (base64, hex runs and
// "0xNN" byte lists, entities, %xx and \x escapes), reads text behind a
// right-to-left override or a "read this backwards" cue reversed, and matches a table
// of phrase fragments in ten languages with one Aho-Corasick automaton. Short
// anchors combine by proximity ("ignore" shortly before "instructions",
// with "previous" next to the object) so phrasings generalise without a
// sentence list. Text that discusses injection ("attackers may write ...")
// is damped; text addressed to an AI is boosted. Outside the automaton, a
// markdown image whose query holds a slot to fill ("?d=DATA") and a URL
// ending in an empty query value count as exfiltration channels, and text
// with invisible characters is matched once more with them read as spaces,
// since they may join words as well as split them.
//
// It is a heuristic, not a proof. It misses paraphrases that use none of the
// anchors, languages outside the ten, encodings nested twice, and payloads
// split across separate fields. Discussion cues ("for example", "attackers",
// "researchers") within a few hundred bytes damp a hit unless the text also
// addresses an AI reader outright, so an attacker can buy some headroom by
// writing like an article. Time is linear in the input: every stage is a
// single pass or a lookup bounded by a constant window.
type InjectionDetector struct {
	t *injTables
}

// NewInjectionDetector returns a detector. The pattern automaton is built on
// the first call and shared by every detector.
func NewInjectionDetector() *InjectionDetector {
	return &InjectionDetector{t: injShared()}
}

// Scan reports whether text carries a prompt injection at
// DefaultInjectionThreshold.
func (d *InjectionDetector) Scan(text string) InjectionVerdict {
	return d.ScanThreshold(text, DefaultInjectionThreshold)
}

// ScanThreshold is Scan with a caller-chosen threshold.
func (d *InjectionDetector) ScanThreshold(text string, threshold float64) InjectionVerdict {
	st := injStatePool.Get().(*injState)
	defer injStatePool.Put(st)
	t := d.t
	if t == nil {
		t = injShared()
	}
	st.reset()
	st.t = t
	t.scan(st, text)
	return st.verdict(threshold)
}

// injEntry is one meaning of an automaton pattern.
type injEntry struct {
	role, fam, group uint8
	stem             bool // no word boundary needed at the end
	w                float32
	key              int32 // distinct id, so repeats of one signal count once
}

type injTables struct {
	ac      ahocorasick.AhoCorasick
	entries [][]injEntry // by automaton pattern index
	// startLetter/endLetter: the normalised pattern starts or ends with an
	// ASCII letter, so a word boundary is checked there.
	startLetter, endLetter []bool
	maxLen                 int32
	neg                    []string // normalised injNegations
	weak                   [][]byte // normalised injWeakMods
}

var injShared = sync.OnceValue(func() *injTables {
	var n normText
	t := &injTables{}
	index := map[string]int{}
	var pats []string
	seen := map[injEntry]bool{}
	for _, p := range injPatternTable() {
		text, stem := p.text, false
		if strings.HasSuffix(text, "*") {
			text, stem = strings.TrimSuffix(text, "*"), true
		}
		n.normalize(text, false)
		s := string(n.out)
		if s == "" {
			panic("scan: internal error: empty injection pattern " + p.text)
		}
		i, ok := index[s]
		if !ok {
			i = len(pats)
			index[s] = i
			pats = append(pats, s)
			t.entries = append(t.entries, nil)
			t.startLetter = append(t.startLetter, normIsLetter(s[0]))
			t.endLetter = append(t.endLetter, normIsLetter(s[len(s)-1]))
			t.maxLen = max(t.maxLen, int32(len(s)))
		}
		e := injEntry{role: p.role, fam: p.fam, group: p.group, stem: stem, w: p.w}
		if seen[injEntry{role: e.role, fam: e.fam, group: e.group, stem: stem, w: e.w, key: int32(i)}] {
			continue
		}
		seen[injEntry{role: e.role, fam: e.fam, group: e.group, stem: stem, w: e.w, key: int32(i)}] = true
		e.key = int32(i)
		t.entries[i] = append(t.entries[i], e)
	}
	for _, w := range injNegations {
		n.normalize(w, false)
		t.neg = append(t.neg, strings.TrimSuffix(string(n.out), " "))
	}
	for _, w := range injWeakMods {
		n.normalize(w, false)
		t.weak = append(t.weak, slices.Clone(n.out))
	}
	b := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{MatchKind: ahocorasick.StandardMatch, DFA: true})
	t.ac = b.Build(pats)
	return t
})

// injEvent is one pattern entry matched in a skeleton.
type injEvent struct {
	start, end int32 // in the skeleton
	e          *injEntry
}

// injHit is one scored signal, already mapped to the original text.
type injHit struct {
	lo, hi int32
	fam    uint8
	w      float32
	key    int32
}

// Segment kinds: how skeleton offsets map back to the original text.
const (
	injSegPlain     = iota // the text itself
	injSegEscapes          // entities, %xx and \x escapes decoded; hits must touch a decoded byte
	injSegRuns             // base64 and hex runs decoded; every hit is smuggled
	injSegInvisible        // invisible characters read as spaces; hits must span one
)

type injState struct {
	t      *injTables
	n      normText
	events []injEvent
	hits   []injHit
	target []int32 // skeleton [start,end) pairs of strong (even) and weak targeting
	strong []int32
	disc   []int32
	// decoded intermediate text and its map to the original
	dec           []byte
	decLo, decHi  []int32
	decEsc        []int32 // prefix count of bytes that came from an escape
	hidden        []int32 // [lo,hi) pairs in the original: comments, hidden elements
	discOrig      []int32 // discussion cues of the plain pass, [lo,hi) pairs in the original
	strongOrig    []int32 // strong targeting of the plain pass, likewise
	text          string  // the original text, during the injSegInvisible pass only
	invisibleSeen bool
	reverseCue    bool // the text asks to be read backwards
	rotateCue     bool // the text names a letter rotation
}

var injStatePool = sync.Pool{New: func() any { return new(injState) }}

func (st *injState) reset() {
	st.events = st.events[:0]
	st.hits = st.hits[:0]
	st.hidden = st.hidden[:0]
	st.discOrig = st.discOrig[:0]
	st.strongOrig = st.strongOrig[:0]
	st.invisibleSeen = false
	st.reverseCue = false
	st.rotateCue = false
}

func (t *injTables) scan(st *injState, text string) {
	if len(text) > 1<<31-1 {
		text = text[:1<<31-1]
	}
	st.n.normalize(text, true)
	st.invisibleSeen = st.n.invisible
	escapes := st.n.escapes
	t.match(st, injSegPlain)
	st.markdownExfil(text)
	st.urlOpenQuery(text)

	if strings.IndexByte(text, '<') >= 0 {
		st.findHidden(text)
	}
	if escapes && st.decodeEscapes(text) {
		st.n.normalize(string(st.dec), true)
		t.match(st, injSegEscapes)
	}
	if st.decodeRuns(text) {
		st.n.normalize(string(st.dec), true)
		t.match(st, injSegRuns)
	}
	// Text written backwards behind a right-to-left override, or with a
	// request to read it backwards, is matched once more reversed. Both
	// cues are rare in honest text, so this costs nothing on prose.
	if st.reverseCue || st.invisibleSeen && strings.Contains(text, "\u202e") {
		st.reverseRunes(text)
		st.n.normalize(string(st.dec), true)
		t.match(st, injSegRuns)
	}
	// A text that names ROT13 or a Caesar shift is matched once per
	// rotation of its Latin letters (the shift is rarely stated the same
	// way twice). Only such texts pay for it, and only for their first
	// injRotateMax bytes, so the cost stays a constant factor.
	if st.rotateCue {
		for shift := byte(1); shift < 26; shift++ {
			st.rotate(text, shift)
			st.n.normalize(string(st.dec), true)
			t.match(st, injSegRuns)
		}
	}
	// Invisible characters used as word separators ("copia\u200ftal") were
	// dropped and joined the words; match once more with them as spaces.
	if st.invisibleSeen && st.invisibleAsSpace(text) {
		st.n.normalize(string(st.dec), true)
		st.text = text
		t.match(st, injSegInvisible)
		st.text = ""
	}
	if len(st.hidden) > 0 || st.invisibleSeen {
		st.adjustHits(text)
	}
}

// match runs the automaton over st.n and turns the matches into hits.
func (t *injTables) match(st *injState, seg int) {
	out := st.n.out
	st.events = st.events[:0]
	it := t.ac.IterOverlappingByte(out)
	for m := it.Next(); m != nil; m = it.Next() {
		s, e := m.Start(), m.End()
		p := m.Pattern()
		if t.startLetter[p] && s > 0 && normIsLetter(out[s-1]) && !st.n.normJoinedAt(s) {
			continue
		}
		endOK := !t.endLetter[p] || e >= len(out) || !normIsLetter(out[e]) || st.n.normJoinedAt(e)
		for i := range t.entries[p] {
			en := &t.entries[p][i]
			if !endOK && !en.stem {
				continue
			}
			end := e
			if en.stem && !st.n.normJoinedAt(e) {
				// A stem's span covers the rest of its word.
				for end < len(out) && end-e < 24 && normIsLetter(out[end]) {
					end++
				}
			}
			st.events = append(st.events, injEvent{start: int32(s), end: int32(end), e: en})
		}
	}
	if len(st.events) == 0 {
		return
	}
	// The iterator reports matches by end offset; keep that order stable.
	slices.SortStableFunc(st.events, func(a, b injEvent) int { return int(a.end) - int(b.end) })

	st.target, st.strong, st.disc = st.target[:0], st.strong[:0], st.disc[:0]
	for _, ev := range st.events {
		switch ev.e.role {
		case injRoleTarget:
			st.target = append(st.target, ev.start, ev.end)
		case injRoleTargetStrong:
			st.strong = append(st.strong, ev.start, ev.end)
			if seg == injSegPlain {
				st.strongOrig = append(st.strongOrig, st.n.lo[ev.start], st.n.hi[ev.end-1])
			}
		case injRoleDiscuss:
			if !injInHost(out, ev.start, ev.end) {
				st.disc = append(st.disc, ev.start, ev.end)
				if seg == injSegPlain {
					st.discOrig = append(st.discOrig, st.n.lo[ev.start], st.n.hi[ev.end-1])
				}
			}
		case injRoleReverse:
			st.reverseCue = st.reverseCue || seg == injSegPlain
		case injRoleRotate:
			st.rotateCue = st.rotateCue || seg == injSegPlain
		}
	}
	for j := range st.events {
		ev := &st.events[j]
		switch ev.e.role {
		case injRolePhrase:
			st.addHit(seg, ev.start, ev.end, ev.e.fam, ev.e.w, ev.e.key)
		case injRoleTargetStrong:
			// Text written for an AI reader ("if you are an AI model")
			// is suspicious in a document even before it asks anything.
			st.addHit(seg, ev.start, ev.end, injFamOverride, 0.2, ev.e.key)
		case injRoleObject:
			t.pair(st, seg, j)
		}
	}
}

// pair scores an object event together with the nearest verb of its group,
// a modifier next to it and a destination after it.
func (t *injTables) pair(st *injState, seg, j int) {
	const maxSteps = 48 // bounds the work per event whatever the input
	ev := st.events
	b := ev[j]
	g := injGroups[b.e.group]
	var verb *injEvent
	reverse := false
	for k, steps := j-1, 0; k >= 0 && steps < maxSteps; k, steps = k-1, steps+1 {
		a := &ev[k]
		if b.start-a.end > g.fwd {
			break
		}
		if a.e.role == injRoleVerb && a.e.group == b.e.group && a.end <= b.start && !st.negated(k) {
			verb = a
			break
		}
	}
	if verb == nil && g.rev > 0 {
		for k, steps := j+1, 0; k < len(ev) && steps < maxSteps; k, steps = k+1, steps+1 {
			a := &ev[k]
			if a.end-t.maxLen > b.end+g.rev {
				break
			}
			rev := g.rev
			if g.revLatin > 0 && st.n.out[a.start] < 0x80 {
				rev = g.revLatin
			}
			if a.e.role == injRoleVerb && a.e.group == b.e.group && a.start >= b.end && a.start-b.end <= rev && !st.negated(k) {
				verb, reverse = a, true
				break
			}
		}
	}
	if verb == nil {
		return
	}
	if b.e.group == injGroupOverride && (injIdent(st.n.out, b.start, b.end) || injIdent(st.n.out, verb.start, verb.end)) {
		// "PREVIOUS_INSTRUCTION_ID", "test_ignores_instructions": names in
		// code, not words addressed to anyone.
		return
	}
	lo, hi := min(verb.start, b.start), max(verb.end, b.end)
	w := verb.e.w + b.e.w
	// Modifier: between verb and object, just before the object, or just
	// after it ("las instrucciones anteriores").
	var mod float32
	modFrom := b.start - 24
	if !reverse {
		modFrom = max(modFrom, verb.end)
	}
	for k, steps := j-1, 0; k >= 0 && steps < maxSteps; k, steps = k-1, steps+1 {
		m := &ev[k]
		if m.end < modFrom {
			break
		}
		if m.e.role == injRoleMod && m.e.group == b.e.group && m.end <= b.start && m.start >= modFrom && m.e.w > mod {
			mod = m.e.w
			lo = min(lo, m.start)
		}
	}
	if mod < 0.15 && b.e.group == injGroupOverride && st.weakMod(modFrom, b.start) {
		mod = 0.15 // "ignore all instructions"
	}
	var dest float32
	for k, steps := j+1, 0; k < len(ev) && steps < maxSteps; k, steps = k+1, steps+1 {
		m := &ev[k]
		if m.end-t.maxLen > b.end+80 {
			break
		}
		if m.e.group != b.e.group || m.start < b.end {
			continue
		}
		if m.e.role == injRoleMod && m.start-b.end <= 16 && m.e.w > mod {
			mod = m.e.w
			hi = max(hi, m.end)
		}
		if m.e.role == injRoleDest && m.start-b.end <= 80 && m.e.w > dest {
			dest = m.e.w
			hi = max(hi, m.end)
		}
	}
	w += mod + dest
	if reverse && st.n.out[verb.start] < 0x80 {
		// Object-before-verb is unusual in Latin-script languages; in
		// Japanese and Korean the verb comes last anyway.
		w *= g.revFactor
	}
	// Objects sharing one verb are one signal ("send the contents of").
	st.addHit(seg, lo, hi, g.fam, w, injPairKey+verb.start)
}

// injInHost reports a word that is part of a host name or path
// ("attacker.example"): it names a place, it does not discuss anything.
func injInHost(out []byte, s, e int32) bool {
	if s > 0 && (out[s-1] == '/' || out[s-1] == '.' || out[s-1] == '@') {
		return true
	}
	return int(e)+1 < len(out) && (out[e] == '.' || out[e] == '/') && normIsLetter(out[e+1])
}

// injIdent reports a word joined to its neighbour by an underscore.
func injIdent(out []byte, s, e int32) bool {
	return s > 0 && out[s-1] == '_' || int(e) < len(out) && out[e] == '_'
}

// injPairKey offsets the keys of pair hits past the pattern indexes.
const injPairKey = 1 << 20

// negated reports a negation ending right before event k ("do not ignore").
func (st *injState) negated(k int) bool {
	out := st.n.out
	end := int(st.events[k].start)
	if end > 0 && out[end-1] == ' ' {
		end--
	}
	for _, w := range st.t.neg {
		if len(w) <= end && string(out[end-len(w):end]) == w && (end == len(w) || !normIsLetter(out[end-len(w)-1])) {
			return true
		}
	}
	return false
}

// weakMod reports one of injWeakMods as a word in out[lo:hi].
func (st *injState) weakMod(lo, hi int32) bool {
	out := st.n.out[max(lo, 0):hi]
	for _, w := range st.t.weak {
		for i := 0; i+len(w) <= len(out); {
			k := bytes.Index(out[i:], w)
			if k < 0 {
				break
			}
			k += i
			if (k == 0 || !normIsLetter(out[k-1])) && (k+len(w) == len(out) || !normIsLetter(out[k+len(w)])) {
				return true
			}
			i = k + 1
		}
	}
	return false
}

// near reports whether any [start,end) pair in spans lies within before
// bytes before lo or after bytes after hi. spans is ordered by end.
func near(spans []int32, lo, hi, before, after int32) bool {
	// Binary search over the pairs for the first one ending near lo.
	n := len(spans) / 2
	i, j := 0, n
	for i < j {
		h := (i + j) / 2
		if spans[2*h+1] < lo-before {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < n && spans[2*i] <= hi+after
}

// addHit adjusts a raw signal for its context in the skeleton and records it
// in original offsets.
func (st *injState) addHit(seg int, lo, hi int32, fam uint8, w float32, key int32) {
	strong := near(st.strong, lo, hi, 200, 40)
	weak := near(st.target, lo, hi, 120, 60)
	disc := near(st.disc, lo, hi, 220, 120)
	switch {
	case disc && strong:
		w *= 0.75
	case disc:
		w *= 0.3
		if st.quoted(lo, hi) {
			w *= 0.6
		}
	case fam == injFamFakeTurn:
		// "Assistant:" names the AI itself; a transcript is not aimed at it.
	case strong:
		w += 0.3
	case weak:
		w += 0.15
	}
	if !strong && (st.quotedBoth(lo, hi) || st.quotedLine(lo, hi)) {
		// A phrase in quotation marks is named, not spoken:
		// "why 'ignore all previous instructions' still works".
		w *= 0.5
	}
	// Map the skeleton span back.
	n := &st.n
	olo, ohi := n.lo[lo], n.hi[hi-1]
	if olo >= ohi && lo == 0 && hi > 1 {
		olo = n.lo[1] // the virtual leading newline has no width
	}
	smuggled := false
	switch seg {
	case injSegEscapes:
		if st.decEsc[ohi]-st.decEsc[olo] == 0 {
			return // nothing decoded here: the plain pass saw it already
		}
		olo, ohi = st.decLo[olo], st.decHi[ohi-1]
		smuggled = true
	case injSegRuns:
		// min and max: reversed text maps its first byte to the end.
		olo, ohi = min(st.decLo[olo], st.decLo[ohi-1]), max(st.decHi[olo], st.decHi[ohi-1])
		smuggled = true
	case injSegInvisible:
		olo, ohi = st.decLo[olo], st.decHi[ohi-1]
		if !injHasInvisible(st.text[olo:ohi]) {
			return // no invisible character here: the plain pass saw it already
		}
		smuggled = true
	}
	if smuggled {
		// Encoding an instruction to hide it is evidence of its own.
		w += 0.1
		st.hits = append(st.hits, injHit{lo: olo, hi: ohi, fam: injFamSmuggling, w: min(1, 0.6*w+0.2), key: key})
	}
	st.hits = append(st.hits, injHit{lo: olo, hi: ohi, fam: fam, w: min(1, w), key: key})
}

// quotedBoth reports a span that opens a quotation: a quotation mark right
// before it, not after a letter (so not "don't"), closed by the same mark
// on the same line shortly after the span: a short quoted phrase.
func (st *injState) quotedBoth(lo, hi int32) bool {
	out := st.n.out
	var q byte
	for i := lo - 1; i >= 0 && i >= lo-2; i-- {
		// Not backticks: a command in backticks is still a command.
		if c := out[i]; c == '"' || c == '\'' {
			if i == 0 || !normIsLetter(out[i-1]) {
				q = c
			}
			break
		}
	}
	if q == 0 {
		return false
	}
	for i := hi; i < int32(len(out)) && i < hi+32 && out[i] != '\n'; i++ {
		if out[i] == q {
			return true
		}
	}
	return false
}

// quotedLine reports a span inside a line that is one quotation: after an
// optional list or blockquote mark the line opens with a quotation mark and
// ends with the same mark (before trailing punctuation), the way articles
// list example attack strings. Both scans are bounded.
func (st *injState) quotedLine(lo, hi int32) bool {
	const maxLine = 400
	out := st.n.out
	s := lo
	for s > 0 && lo-s < maxLine && out[s-1] != '\n' {
		s--
	}
	if s > 0 && out[s-1] != '\n' {
		return false
	}
	for s < lo && (out[s] == ' ' || out[s] == '>' || out[s] == '-' || out[s] == '*') {
		s++
	}
	if s >= lo || out[s] != '"' && out[s] != '\'' {
		return false
	}
	q := out[s]
	e := hi
	for e < int32(len(out)) && e-hi < maxLine && out[e] != '\n' {
		e++
	}
	if e < int32(len(out)) && out[e] != '\n' {
		return false
	}
	for e > hi && (out[e-1] == ' ' || out[e-1] == '.' || out[e-1] == ',' || out[e-1] == ';') {
		e--
	}
	return e > hi && out[e-1] == q
}

// invisibleAsSpace writes text into st.dec with every invisible rune
// replaced by a space, each byte mapped to its place in text. It reports
// whether anything was replaced.
func (st *injState) invisibleAsSpace(text string) bool {
	st.dec, st.decLo, st.decHi = st.dec[:0], st.decLo[:0], st.decHi[:0]
	changed := false
	for i, r := range text {
		n := utf8.RuneLen(r)
		if n < 0 {
			n = 1
		}
		if r >= 0x80 && (normInvisible(r) || r >= 0xE0000 && r <= 0xE007F) {
			st.dec = append(st.dec, ' ')
			st.decLo = append(st.decLo, int32(i))
			st.decHi = append(st.decHi, int32(i+n))
			changed = true
			continue
		}
		for k := i; k < i+n && k < len(text); k++ {
			st.dec = append(st.dec, text[k])
			st.decLo = append(st.decLo, int32(i))
			st.decHi = append(st.decHi, int32(i+n))
		}
	}
	return changed
}

// injRotateMax bounds the text rotated when a rotation is named.
const injRotateMax = 16 << 10

// rotate writes the first injRotateMax bytes of text into st.dec with every
// ASCII letter moved shift places forward in the alphabet, each byte mapped
// to itself.
func (st *injState) rotate(text string, shift byte) {
	st.dec, st.decLo, st.decHi = st.dec[:0], st.decLo[:0], st.decHi[:0]
	for i := 0; i < len(text) && i < injRotateMax; i++ {
		c := text[i]
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+shift)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+shift)%26
		}
		st.dec = append(st.dec, c)
		st.decLo = append(st.decLo, int32(i))
		st.decHi = append(st.decHi, int32(i+1))
	}
}

// reverseRunes writes text into st.dec rune by rune in reverse order, each
// rune mapped to its place in text.
func (st *injState) reverseRunes(text string) {
	st.dec, st.decLo, st.decHi = st.dec[:0], st.decLo[:0], st.decHi[:0]
	for i := len(text); i > 0; {
		_, n := utf8.DecodeLastRuneInString(text[:i])
		for k := i - n; k < i; k++ {
			st.dec = append(st.dec, text[k])
			st.decLo = append(st.decLo, int32(i-n))
			st.decHi = append(st.decHi, int32(i))
		}
		i -= n
	}
}

// quoted reports a quotation mark right before the span or right after it.
func (st *injState) quoted(lo, hi int32) bool {
	out := st.n.out
	isQ := func(c byte) bool { return c == '"' || c == '\'' || c == '`' }
	for i := lo - 1; i >= 0 && i >= lo-2; i-- {
		if isQ(out[i]) {
			return true
		}
	}
	for i := hi; i < int32(len(out)) && i < hi+2; i++ {
		if isQ(out[i]) {
			return true
		}
	}
	return false
}

// adjustHits boosts hits inside hidden HTML and marks those written with
// invisible characters as smuggled.
func (st *injState) adjustHits(text string) {
	for i, n := 0, len(st.hits); i < n; i++ {
		h := &st.hits[i]
		if h.w < 0.2 {
			continue
		}
		if injOverlaps(st.hidden, h.lo, h.hi) {
			h.w = min(1, h.w+0.15)
		}
		if st.invisibleSeen && h.fam != injFamSmuggling && injHasInvisible(text[h.lo:h.hi]) {
			st.hits = append(st.hits, injHit{lo: h.lo, hi: h.hi, fam: injFamSmuggling, w: min(1, 0.6*h.w+0.2), key: h.key})
		}
	}
}

// injOverlaps reports whether [lo,hi) overlaps one of the [start,end)
// pairs, which are sorted and disjoint.
func injOverlaps(pairs []int32, lo, hi int32) bool {
	n := len(pairs) / 2
	k := sort.Search(n, func(k int) bool { return pairs[2*k+1] > lo })
	return k < n && pairs[2*k] < hi
}

func injHasInvisible(s string) bool {
	for _, r := range s {
		if r >= 0x80 && (normInvisible(r) || r >= 0xE0000 && r <= 0xE007F) {
			return true
		}
	}
	return false
}

// injClusterGap is how far apart two hits may be and still combine: an
// injection is a paragraph, and weak signals scattered over a long
// document are not one.
const injClusterGap = 512

// verdict combines the hits into a score. Hits combine only within a
// cluster (hits less than injClusterGap apart); the score is that of the
// strongest cluster. Within a cluster and family the three strongest
// distinct signals combine, the second at half and the third at a quarter
// weight, since signals in one family often come from the same words; across
// families the strongest counts fully and the others add 35%.
func (st *injState) verdict(threshold float64) InjectionVerdict {
	hits := st.hits
	slices.SortFunc(hits, func(a, b injHit) int {
		if a.lo != b.lo {
			return int(a.lo) - int(b.lo)
		}
		return int(a.hi) - int(b.hi)
	})
	var score float64
	var famMax [injFamCount]float64
	for i := 0; i < len(hits); {
		j, end := i+1, hits[i].hi
		for j < len(hits) && hits[j].lo <= end+injClusterGap {
			end = max(end, hits[j].hi)
			j++
		}
		p := injCluster(hits[i:j])
		var mx, sum float64
		for f, v := range p {
			sum += v
			mx = max(mx, v)
			famMax[f] = max(famMax[f], v)
		}
		score = max(score, min(1, mx+(sum-mx)*0.35))
		i = j
	}

	v := InjectionVerdict{Score: score, Injection: score >= threshold}
	for f, pv := range famMax {
		if pv >= 0.2 {
			v.Families = append(v.Families, injFamilyNames[f])
		}
	}
	slices.Sort(v.Families)
	for _, h := range hits {
		if h.w < 0.2 {
			continue
		}
		if n := len(v.Spans); n > 0 && int(h.lo) <= v.Spans[n-1][1] {
			v.Spans[n-1][1] = max(v.Spans[n-1][1], int(h.hi))
		} else {
			v.Spans = append(v.Spans, [2]int{int(h.lo), int(h.hi)})
		}
	}
	return v
}

// injCluster returns the combined weight of each family in one cluster.
func injCluster(hits []injHit) (p [injFamCount]float64) {
	type top struct {
		key int32
		w   float32
	}
	var best [injFamCount][3]top
	for _, h := range hits {
		b := &best[h.fam]
		placed := false
		for i := range b {
			if b[i].w > 0 && b[i].key == h.key {
				b[i].w = max(b[i].w, h.w)
				placed = true
				break
			}
		}
		if !placed {
			m := 0
			for i := range b {
				if b[i].w < b[m].w {
					m = i
				}
			}
			if h.w > b[m].w {
				b[m] = top{h.key, h.w}
			}
		}
	}
	for f := range best {
		b := best[f]
		slices.SortFunc(b[:], func(x, y top) int { return cmp.Compare(y.w, x.w) })
		q := (1 - float64(b[0].w)) * (1 - 0.5*float64(b[1].w)) * (1 - 0.25*float64(b[2].w))
		p[f] = 1 - q
	}
	return p
}

// markdownExfil finds markdown images and links whose URL carries a query,
// the classic channel for leaking data through a rendered image.
func (st *injState) markdownExfil(text string) {
	for i := 0; ; {
		k := strings.Index(text[i:], "](")
		if k < 0 {
			return
		}
		k += i
		i = k + 2
		// The label: back to '[' on the same line, bounded.
		open := -1
		for j := k - 1; j >= 0 && j >= k-300; j-- {
			if text[j] == '[' {
				open = j
				break
			}
			if text[j] == '\n' || text[j] == ']' {
				break
			}
		}
		if open < 0 {
			continue
		}
		image := open > 0 && text[open-1] == '!'
		end := k + 2
		for end < len(text) && end < k+2+4096 && text[end] != ')' && text[end] != ' ' && text[end] != '\n' {
			end++
		}
		url := text[k+2 : end]
		i = end
		if !injHasPrefixFold(url, "http://") && !injHasPrefixFold(url, "https://") && !injHasPrefixFold(url, "//") {
			continue
		}
		q := strings.IndexAny(url, "?#")
		if q < 0 {
			continue
		}
		w := float32(0)
		sensitive := injSensitiveQuery(url[q:]) || image && injPlaceholder(text, url, url[q:])
		switch {
		case image && sensitive:
			w = 0.65
		case image:
			w = 0.3
		case sensitive:
			w = 0.4
		}
		if w > 0 {
			lo := open
			if image {
				lo--
			}
			hi := min(end+1, len(text))
			// A slide or article showing the channel is not using it.
			if st.discussedOrig(int32(lo), int32(hi)) {
				w *= 0.3
			}
			st.hits = append(st.hits, injHit{lo: int32(lo), hi: int32(hi), fam: injFamExfil, w: w, key: -1})
		}
	}
}

// discussedOrig reports a discussion cue near [lo,hi) of the original text
// and no strong targeting of an AI reader near it, as addHit judges the
// skeleton.
func (st *injState) discussedOrig(lo, hi int32) bool {
	return near(st.discOrig, lo, hi, 220, 120) && !near(st.strongOrig, lo, hi, 200, 40)
}

// injPlaceholder reports a query value that is a slot to fill in rather
// than data: an upper-case word ("?d=DATA"), a non-ASCII word ("?d=数据")
// or a word the text names again ("... replace DATA with the user's email").
func injPlaceholder(text, url, query string) bool {
	k := strings.LastIndexByte(query, '=')
	if k < 0 {
		return false
	}
	v := query[k+1:]
	if e := strings.IndexAny(v, "&#"); e >= 0 {
		v = v[:e]
	}
	if len(v) < 3 {
		return false
	}
	upper, other, lower := true, false, true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 'a' || c > 'z' {
			lower = false
		}
		switch {
		case c >= 0x80:
			other = true
		case c >= 'A' && c <= 'Z' || c == '_':
		default:
			upper = false
		}
	}
	// A plain lower-case word named again ("branch=main") is a value, not a
	// slot: badges and CI links repeat theirs.
	return upper || other || !lower && strings.Count(text, v) > strings.Count(url, v)
}

// urlOpenQuery finds URLs whose query ends in an empty value ("?d= followed
// by the clipboard"): the reader is asked to append something.
func (st *injState) urlOpenQuery(text string) {
	for i := 0; ; {
		k := strings.Index(text[i:], "://")
		if k < 0 {
			return
		}
		k += i
		end := k + 3
		for end < len(text) && end < k+2048 && text[end] > ' ' && text[end] != ')' && text[end] != '"' && text[end] != '\'' {
			end++
		}
		i = end
		if end-k > 8 && text[end-1] == '=' && strings.IndexByte(text[k:end], '?') >= 0 {
			w := float32(0.35)
			if st.discussedOrig(int32(k), int32(end)) {
				w *= 0.3
			}
			st.hits = append(st.hits, injHit{lo: int32(k), hi: int32(end), fam: injFamExfil, w: w, key: -2})
		}
	}
}

func injHasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

var injSensitiveWords = []string{"{", "}", "$", "<", "%7b", "%24", "data=", "secret", "token", "key=",
	"password", "passwd", "conversation", "history", "chat", "prompt", "memory", "email=", "cookie",
	"session", "ssn", "[", "info=", "exfil", "leak", "payload", "content=", "email", "user_", "name="}

func injSensitiveQuery(q string) bool {
	var buf [256]byte
	n := copy(buf[:], q)
	b := buf[:n]
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	for _, w := range injSensitiveWords {
		if bytes.Contains(b, []byte(w)) {
			return true
		}
	}
	return false
}

// findHidden records HTML comments and elements a reader does not see.
func (st *injState) findHidden(text string) {
	gt := -1
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '<')
		if k < 0 {
			return
		}
		i += k
		if strings.HasPrefix(text[i:], "<!--") {
			e := strings.Index(text[i+4:], "-->")
			end := len(text)
			if e >= 0 {
				end = i + 4 + e + 3
			}
			st.hidden = append(st.hidden, int32(i), int32(end))
			i = end
			continue
		}
		if gt < i {
			gt = strings.IndexByte(text[i:], '>')
			if gt < 0 {
				return
			}
			gt += i
		}
		if gt-i > 2048 {
			i++
			continue
		}
		tag := text[i : gt+1]
		i = gt + 1
		hidden, attr := injHiddenTag(tag)
		if attr {
			st.hidden = append(st.hidden, int32(i-len(tag)), int32(i))
		}
		if !hidden {
			continue
		}
		// The tag name, then the region up to its closing tag.
		j := 1
		for j < len(tag) && (tag[j] >= 'a' && tag[j] <= 'z' || tag[j] >= 'A' && tag[j] <= 'Z' || tag[j] >= '0' && tag[j] <= '9') {
			j++
		}
		end := len(text)
		if j > 1 && !strings.HasSuffix(tag, "/>") {
			if e := injIndexFold(text[i:], "</"+tag[1:j]); e >= 0 {
				end = i + e
			}
		} else {
			end = i
		}
		st.hidden = append(st.hidden, int32(i-len(tag)), int32(end))
		i = max(i, end)
	}
}

func injIndexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); {
		k := strings.IndexByte(s[i:], '<')
		if k < 0 {
			return -1
		}
		i += k
		if i+len(sub) <= len(s) && strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
		i++
	}
	return -1
}

var injHiddenMarks = []string{"display:none", "display: none", "visibility:hidden", "visibility: hidden",
	" hidden", "aria-hidden=\"true\"", "aria-hidden='true'", "font-size:0", "font-size: 0", "opacity:0",
	"opacity: 0"}

var injAttrMarks = []string{" alt=", " title="}

// injHiddenTag reports a tag that hides its element, and one whose
// attributes carry text a reader rarely sees (alt, title).
func injHiddenTag(tag string) (hidden, attr bool) {
	var buf [2048 + 1]byte
	n := copy(buf[:], tag)
	b := buf[:n]
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	for _, m := range injHiddenMarks {
		if bytes.Contains(b, []byte(m)) {
			return true, false
		}
	}
	for _, m := range injAttrMarks {
		if bytes.Contains(b, []byte(m)) {
			return false, true
		}
	}
	return false, false
}

// decodeEscapes writes the neighbourhoods of HTML entities, %xx and
// \xNN / \uNNNN escapes into st.dec, decoded, with the map back to text. Only
// injEscapeContext bytes either side of each escape are copied: text far
// from any escape was matched by the plain pass already, and copying it
// again would double the work on ordinary HTML. Regions are separated by a
// blank line so a match cannot join two of them. It reports whether anything
// was decoded.
func (st *injState) decodeEscapes(text string) bool {
	const injEscapeContext = 64
	st.dec, st.decLo, st.decHi, st.decEsc = st.dec[:0], st.decLo[:0], st.decHi[:0], st.decEsc[:0]
	var tmp [utf8.UTFMax]byte
	put := func(b []byte, lo, hi int, esc int32) {
		for _, c := range b {
			st.dec = append(st.dec, c)
			st.decLo = append(st.decLo, int32(lo))
			st.decHi = append(st.decHi, int32(hi))
			st.decEsc = append(st.decEsc, esc)
		}
	}
	plain := func(from, to int) {
		for k := from; k < to; k++ {
			put([]byte{text[k]}, k, k+1, 0)
		}
	}
	pos, end, changed := 0, 0, false // pos: next byte to copy; end: where the open region stops
	for i := 0; i < len(text); {
		k := strings.IndexAny(text[i:], "&%\\")
		if k < 0 {
			break
		}
		i += k
		r, n := injEscape(text[i:])
		if n == 0 {
			i++
			continue
		}
		if changed && i-injEscapeContext <= end {
			plain(pos, i)
		} else {
			if changed {
				plain(pos, min(end, len(text)))
				put([]byte{'\n', '\n'}, end, end, 0)
			}
			plain(max(i-injEscapeContext, 0), i)
		}
		changed = true
		if r < 0 {
			tmp[0] = byte(-r - 1)
			put(tmp[:1], i, i+n, 1)
		} else {
			put(tmp[:utf8.EncodeRune(tmp[:], r)], i, i+n, 1)
		}
		i += n
		pos, end = i, i+injEscapeContext
	}
	if !changed {
		return false
	}
	plain(pos, min(end, len(text)))
	// Turn decEsc into a prefix count with one extra slot, so that
	// decEsc[hi]-decEsc[lo] counts the escaped bytes in [lo,hi).
	var sum int32
	st.decEsc = append(st.decEsc, 0)
	for i, e := range st.decEsc {
		st.decEsc[i] = sum
		sum += e
	}
	return true
}

var injEntities = map[string]rune{"lt": '<', "gt": '>', "amp": '&', "quot": '"', "apos": '\'', "nbsp": ' ',
	"colon": ':', "sol": '/', "period": '.', "comma": ',', "lpar": '(', "rpar": ')', "excl": '!', "quest": '?',
	"num": '#', "equals": '=', "lowbar": '_', "hyphen": '-', "shy": 0xAD, "zwj": 0x200D, "zwnj": 0x200C}

// injEscape decodes one escape at the start of s. It returns the rune (or
// -1-b for a raw byte from %xx or \xNN) and the escape's length, 0 if none.
func injEscape(s string) (rune, int) {
	hexv := injHexVal
	switch s[0] {
	case '%':
		if len(s) >= 3 && hexv(s[1]) >= 0 && hexv(s[2]) >= 0 {
			return rune(-1 - (hexv(s[1])<<4 | hexv(s[2]))), 3
		}
	case '\\':
		if len(s) >= 4 && s[1] == 'x' && hexv(s[2]) >= 0 && hexv(s[3]) >= 0 {
			return rune(-1 - (hexv(s[2])<<4 | hexv(s[3]))), 4
		}
		if len(s) >= 6 && s[1] == 'u' {
			v := 0
			for k := 2; k < 6; k++ {
				h := hexv(s[k])
				if h < 0 {
					return 0, 0
				}
				v = v<<4 | h
			}
			return rune(v), 6
		}
	case '&':
		if len(s) >= 3 && s[1] == '#' {
			v, k, base := 0, 2, 10
			if s[2] == 'x' || s[2] == 'X' {
				k, base = 3, 16
			}
			start := k
			for k < len(s) && k-start < 8 {
				var h int
				if base == 16 {
					h = hexv(s[k])
				} else if s[k] >= '0' && s[k] <= '9' {
					h = int(s[k] - '0')
				} else {
					h = -1
				}
				if h < 0 {
					break
				}
				v = v*base + h
				k++
			}
			if k == start || v > utf8.MaxRune {
				return 0, 0
			}
			if k < len(s) && s[k] == ';' {
				k++
			}
			return rune(v), k
		}
		end := strings.IndexByte(s[:min(len(s), 12)], ';')
		if end > 1 {
			if r, ok := injEntities[strings.ToLower(s[1:end])]; ok {
				return r, end + 1
			}
		}
	}
	return 0, 0
}

// decodeRuns finds base64 and hex runs of at least 16 characters that decode
// to mostly printable text and writes the decoded texts into st.dec, each
// byte mapped to its whole run. It reports whether any run decoded.
func (st *injState) decodeRuns(text string) bool {
	st.dec, st.decLo, st.decHi = st.dec[:0], st.decLo[:0], st.decHi[:0]
	var buf [4096]byte
	for i := 0; i < len(text); {
		if !injB64[text[i]] {
			i++
			continue
		}
		j := i
		for j < len(text) && injB64[text[j]] {
			j++
		}
		run := text[i:j]
		for j < len(text) && text[j] == '=' && j-i < len(run)+2 {
			j++
		}
		lo, hi := i, j
		i = j
		if len(run) < 16 {
			continue
		}
		if len(run) > len(buf)/3*4 {
			run = run[:len(buf)/3*4] // longer payloads are judged by their start
		}
		var dst []byte
		if injAllHex(run) {
			if len(run)%2 == 1 {
				run = run[:len(run)-1]
			}
			n, err := hex.Decode(buf[:], []byte(run))
			if err == nil {
				dst = buf[:n]
			}
		}
		if dst == nil {
			enc := base64.RawStdEncoding
			if strings.ContainsAny(run, "-_") {
				enc = base64.RawURLEncoding
			}
			if len(run)%4 == 1 {
				run = run[:len(run)-1]
			}
			n, err := enc.Decode(buf[:], []byte(run))
			if err != nil {
				continue
			}
			dst = buf[:n]
		}
		if !injPrintable(dst) {
			continue
		}
		for _, c := range dst {
			st.dec = append(st.dec, c)
			st.decLo = append(st.decLo, int32(lo))
			st.decHi = append(st.decHi, int32(hi))
		}
		st.dec = append(st.dec, '\n', '\n')
		st.decLo = append(st.decLo, int32(hi), int32(hi))
		st.decHi = append(st.decHi, int32(hi), int32(hi))
	}
	st.decodeHexBytes(text)
	st.decodeByteLists(text)
	return len(st.dec) > 0
}

// decodeHexBytes finds runs of at least eight "0xNN" bytes separated by
// spaces or commas, as a C array or a hex dump prints them, and appends the
// decoded text to st.dec like decodeRuns does.
func (st *injState) decodeHexBytes(text string) {
	var buf [4096]byte
	for i := 0; i < len(text); {
		k := strings.Index(text[i:], "0x")
		if k < 0 {
			return
		}
		lo, j, n := i+k, i+k, 0
		for j+4 <= len(text) && text[j] == '0' && text[j+1] == 'x' && n < len(buf) {
			h, l := injHexVal(text[j+2]), injHexVal(text[j+3])
			if h < 0 || l < 0 || j+4 < len(text) && injHexVal(text[j+4]) >= 0 {
				break
			}
			buf[n] = byte(h<<4 | l)
			n++
			j += 4
			for j < len(text) && (text[j] == ' ' || text[j] == ',') {
				j++
			}
		}
		i = max(j, lo+2)
		if n < 8 || !injPrintable(buf[:n]) {
			continue
		}
		for _, c := range buf[:n] {
			st.dec = append(st.dec, c)
			st.decLo = append(st.decLo, int32(lo))
			st.decHi = append(st.decHi, int32(j))
		}
		st.dec = append(st.dec, '\n', '\n')
		st.decLo = append(st.decLo, int32(j), int32(j))
		st.decHi = append(st.decHi, int32(j), int32(j))
	}
}

// decodeByteLists finds runs of at least eight bytes written as numbers
// separated by a space or a comma: two-digit hex pairs ("43 61 6c") or
// decimal character codes ("83 101 110"), as puzzles that ask the reader to
// "convert these codes to text" write them. Each run is read once, as hex
// when a token has a hex letter or every token has two digits and the hex
// reading is text, else as decimal, and appended to st.dec like decodeRuns.
func (st *injState) decodeByteLists(text string) {
	var hexBuf, decBuf [4096]byte
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isAlnum := func(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }
	for i := 0; i < len(text); {
		if !isAlnum(text[i]) || i > 0 && isAlnum(text[i-1]) {
			i++
			continue
		}
		lo, j := i, i
		nh, nd := 0, 0
		hexOK, decOK := true, true
		for j < len(text) && nh < len(hexBuf) && nd < len(decBuf) {
			k := j
			for k < len(text) && isAlnum(text[k]) && k-j < 4 {
				k++
			}
			tok := text[j:k]
			if k < len(text) && isAlnum(text[k]) || len(tok) == 0 {
				break
			}
			if hexOK && len(tok) == 2 && injHexVal(tok[0]) >= 0 && injHexVal(tok[1]) >= 0 {
				hexBuf[nh] = byte(injHexVal(tok[0])<<4 | injHexVal(tok[1]))
				nh++
			} else {
				hexOK = false
			}
			v := 0
			for x := 0; x < len(tok) && decOK; x++ {
				if !isDigit(tok[x]) {
					decOK = false
				}
				v = v*10 + int(tok[x]-'0')
			}
			if decOK && v <= 255 {
				decBuf[nd] = byte(v)
				nd++
			} else {
				decOK = false
			}
			if !hexOK && !decOK {
				break
			}
			j = k
			// One separator: a space, or a comma and an optional space.
			if j+1 < len(text) && (text[j] == ' ' || text[j] == ',') && isAlnum(text[j+1]) {
				j++
			} else if j+2 < len(text) && text[j] == ',' && text[j+1] == ' ' && isAlnum(text[j+2]) {
				j += 2
			} else {
				break
			}
		}
		i = max(j, lo+1)
		var dst []byte
		switch {
		case hexOK && nh >= 8 && injPrintable(hexBuf[:nh]):
			dst = hexBuf[:nh]
		case decOK && nd >= 8 && injPrintable(decBuf[:nd]):
			dst = decBuf[:nd]
		default:
			continue
		}
		for _, c := range dst {
			st.dec = append(st.dec, c)
			st.decLo = append(st.decLo, int32(lo))
			st.decHi = append(st.decHi, int32(i))
		}
		st.dec = append(st.dec, '\n', '\n')
		st.decLo = append(st.decLo, int32(i), int32(i))
		st.decHi = append(st.decHi, int32(i), int32(i))
	}
}

func injHexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

var injB64 = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		t[c] = true
	}
	return t
}()

func injAllHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// injPrintable reports text that reads as words: valid UTF-8, at least
// eight bytes, no more than 10% control bytes and at least half letters.
func injPrintable(b []byte) bool {
	if len(b) < 8 || !utf8.Valid(b) {
		return false
	}
	bad, letters := 0, 0
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			letters++
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
		case c < 0x20 || c == 0x7f:
			bad++
		}
	}
	return bad*10 <= len(b) && letters*2 >= len(b)
}
