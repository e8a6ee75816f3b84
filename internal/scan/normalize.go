package scan

import (
	"slices"
	"sort"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normText is the "skeleton" of a text that the injection patterns are
// matched against, with a map from every skeleton byte back to the input.
//
// The skeleton is lowercase, compatibility-decomposed (NFKD, so full-width
// and ligature forms become plain letters) with combining marks dropped (so
// "précédentes" and "precedentes" agree), without zero-width and bidi
// controls, with Cyrillic and Greek look-alikes folded to Latin, leetspeak
// undone inside words that have letters, spaced-out letters joined and
// whitespace collapsed to one ' ' (or '\n' when the run held a line break).
// 'l' is folded to 'i' as well, so "1" read as either letter matches.
//
// Patterns go through the same function, so a fold only has to be
// consistent, not pretty: Russian "инструкции" becomes a mixed-script string
// in both the text and the pattern.
type normText struct {
	out []byte
	lo  []int32 // lo[i]: input offset where the unit that produced out[i] starts
	hi  []int32 // hi[i]: input offset where that unit ends
	// joined holds [start, end) pairs of out where spaced-out letters were
	// glued together; word-boundary checks are waived inside them.
	joined []int32
	// invisible reports that zero-width, bidi or tag characters were dropped.
	invisible bool
	// escapes reports an '&', '%' or '\\' in the input: there may be
	// entities or escapes to decode.
	escapes bool

	// separator pending emission: spaces are collapsed, and a single
	// separator between single letters is dropped.
	pendKind     uint8 // 0 none, 1 whitespace, 2 '.' or '-'
	pendByte     byte
	pendNL       bool
	pendN        int
	pendLo       int32
	pendHi       int32
	lastSingle   bool // the last byte of out is a letter standing alone in the input
	leetEnd      int  // leetspeak decision is known for input before leetEnd
	leetOK       bool // the current word has letters, so digits are letters
	wordLetters  bool // the current word has shown a letter so far
	joinedActive bool // the last emitted byte extended a joined run
}

const (
	normSpaceKind = 1
	normPunctKind = 2
)

// Byte classes for the ASCII fast path.
const (
	ncOther uint8 = iota
	ncSpace
	ncSep // '.' and '-': may separate spaced-out letters
	ncUpper
	ncLower
	ncDigit
	ncLeetSym // '@' and '$'
	ncHigh
)

var normClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 0x80:
			t[c] = ncHigh
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			t[c] = ncSpace
		case c == '.' || c == '-':
			t[c] = ncSep
		case c >= 'A' && c <= 'Z':
			t[c] = ncUpper
		case c >= 'a' && c <= 'z':
			t[c] = ncLower
		case c >= '0' && c <= '9':
			t[c] = ncDigit
		case c == '@' || c == '$':
			t[c] = ncLeetSym
		}
	}
	return t
}()

// normFold lowercases ASCII letters and folds 'l' to 'i'.
var normFold = func() (t [256]byte) {
	for c := range 256 {
		t[c] = byte(c)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + 'a' - 'A'
	}
	t['l'], t['L'] = 'i', 'i'
	return t
}()

// normLeet maps the leetspeak digits and symbols to letters; 0 means keep.
var normLeet = [256]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '9': 'g', '@': 'a', '$': 's'}

func normIsLetter(c byte) bool { return c >= 'a' && c <= 'z' }

// normWordByte reports bytes that belong to a word for the leetspeak rule.
func normWordByte(c byte) bool {
	k := normClass[c]
	return k == ncUpper || k == ncLower || k == ncDigit || k == ncLeetSym || k == ncHigh
}

func (n *normText) reset() {
	n.out = n.out[:0]
	n.lo = n.lo[:0]
	n.hi = n.hi[:0]
	n.joined = n.joined[:0]
	n.invisible = false
	n.escapes = false
	n.pendKind = 0
	n.pendN = 0
	n.lastSingle = false
	n.leetEnd = 0
	n.leetOK = false
	n.wordLetters = false
	n.joinedActive = false
}

func (n *normText) emit(c byte, lo, hi int32) {
	n.out = append(n.out, c)
	n.lo = append(n.lo, lo)
	n.hi = append(n.hi, hi)
}

// flush writes the pending separator, collapsing it into a separator
// already at the end of out.
func (n *normText) flush() {
	switch n.pendKind {
	case normSpaceKind:
		c := byte(' ')
		if n.pendNL {
			c = '\n'
		}
		if k := len(n.out); k > 0 && (n.out[k-1] == ' ' || n.out[k-1] == '\n') {
			if c == '\n' {
				n.out[k-1] = '\n'
			}
		} else {
			n.emit(c, n.pendLo, n.pendHi)
		}
	case normPunctKind:
		n.emit(n.pendByte, n.pendLo, n.pendHi)
	}
	if n.pendKind != 0 {
		n.lastSingle = false // a kept separator ends a run of spaced-out letters
	}
	n.pendKind = 0
	n.pendN = 0
	n.pendNL = false
	n.joinedActive = false
}

func (n *normText) space(lo, hi int32, nl bool) {
	if n.pendKind == normPunctKind {
		n.flush()
	}
	if n.pendKind == 0 {
		n.pendKind, n.pendLo, n.pendN = normSpaceKind, lo, 0
	}
	n.pendHi = hi
	n.pendN++
	n.pendNL = n.pendNL || nl
	n.wordLetters = false
}

func (n *normText) sep(c byte, lo, hi int32) {
	if n.pendKind != 0 {
		n.flush()
	}
	n.pendKind, n.pendByte, n.pendLo, n.pendHi, n.pendN = normPunctKind, c, lo, hi, 1
	n.wordLetters = false
}

// letter emits a lowercase ASCII letter. nextLetter tells whether the input
// continues with a letter, which decides whether this letter stands alone.
func (n *normText) letter(c byte, lo, hi int32, nextLetter bool) {
	if c == 'l' {
		c = 'i'
	}
	n.wordLetters = true
	if n.pendKind != 0 && n.pendN == 1 && n.lastSingle && !nextLetter {
		// "i g n o r e", "i.g.n.o.r.e": drop the lone separator.
		n.pendKind, n.pendN, n.pendNL = 0, 0, false
		k := int32(len(n.out))
		if n.joinedActive && len(n.joined) >= 2 {
			n.joined[len(n.joined)-1] = k + 1
		} else {
			n.joined = append(n.joined, k-1, k+1)
		}
		n.emit(c, lo, hi)
		n.joinedActive = true
		n.lastSingle = true
		return
	}
	if n.pendKind != 0 {
		n.flush()
	}
	k := len(n.out)
	prevLetter := k > 0 && normIsLetter(n.out[k-1])
	n.emit(c, lo, hi)
	n.lastSingle = !prevLetter && !nextLetter
	n.joinedActive = false
}

// other emits bytes that are neither letters nor separators.
func (n *normText) other(b []byte, lo, hi int32) {
	if n.pendKind != 0 {
		n.flush()
	}
	for _, c := range b {
		n.emit(c, lo, hi)
	}
	n.lastSingle = false
	n.joinedActive = false
}

func (n *normText) otherByte(c byte, lo, hi int32) {
	if n.pendKind != 0 {
		n.flush()
	}
	n.emit(c, lo, hi)
	n.lastSingle = false
	n.joinedActive = false
}

// ascii handles one ASCII byte that did not come straight from the input
// (a decomposition, a tag character or a homoglyph), without leetspeak.
func (n *normText) ascii(c byte, lo, hi int32, nextLetter bool) {
	switch normClass[c] {
	case ncSpace:
		n.space(lo, hi, c == '\n')
	case ncSep:
		n.sep(c, lo, hi)
	case ncUpper:
		n.letter(c+'a'-'A', lo, hi, nextLetter)
	case ncLower:
		n.letter(c, lo, hi, nextLetter)
	default:
		n.otherByte(c, lo, hi)
		if normClass[c] != ncDigit {
			n.wordLetters = false
		}
	}
}

// nextIsLetter reports whether s continues at i with something that reads
// as a letter; non-ASCII counts, which errs towards not joining.
func nextIsLetter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	k := normClass[s[i]]
	return k == ncUpper || k == ncLower || k == ncHigh
}

// normalize writes the skeleton of s into n. With lead set, a virtual '\n'
// is put first so that patterns anchored at a line start match at offset 0.
// Inputs longer than math.MaxInt32 are cut there: offsets are int32.
func (n *normText) normalize(s string, lead bool) {
	n.reset()
	if len(s) > 1<<31-1 {
		s = s[:1<<31-1]
	}
	if cap(n.out) < len(s)+2 {
		n.out = make([]byte, 0, len(s)+len(s)/8+16)
		n.lo = make([]int32, 0, cap(n.out))
		n.hi = make([]int32, 0, cap(n.out))
	}
	if lead {
		n.emit('\n', 0, 0)
	}
	for i := 0; i < len(s); {
		c := s[i]
		lo := int32(i)
		switch normClass[c] {
		case ncLower, ncUpper:
			n.letter(normFold[c], lo, lo+1, nextIsLetter(s, i+1))
			// Fast path: the rest of an ASCII word needs no decisions.
			j := i + 1
			for j < len(s) {
				k := normClass[s[j]]
				if k != ncLower && k != ncUpper {
					break
				}
				j++
			}
			if m := j - (i + 1); m > 0 {
				k := len(n.out)
				n.out = slices.Grow(n.out, m)[:k+m]
				n.lo = slices.Grow(n.lo, m)[:k+m]
				n.hi = slices.Grow(n.hi, m)[:k+m]
				out, olo, ohi := n.out[k:], n.lo[k:], n.hi[k:]
				for x := range m {
					p := i + 1 + x
					out[x] = normFold[s[p]]
					olo[x] = int32(p)
					ohi[x] = int32(p + 1)
				}
				n.lastSingle = false
			}
			i = j
			continue
		case ncSpace:
			n.space(lo, lo+1, c == '\n')
			i++
			continue
		case ncSep:
			n.sep(c, lo, lo+1)
			i++
			continue
		case ncDigit, ncLeetSym:
			if i >= n.leetEnd {
				j, ahead := i, false
				for j < len(s) && normWordByte(s[j]) {
					k := normClass[s[j]]
					ahead = ahead || k == ncUpper || k == ncLower || k == ncHigh
					j++
				}
				n.leetEnd, n.leetOK = j, ahead || n.wordLetters
			}
			if m := normLeet[c]; m != 0 && n.leetOK {
				n.letter(m, lo, lo+1, i+1 < n.leetEnd)
			} else {
				n.otherByte(c, lo, lo+1)
			}
			i++
			continue
		case ncOther:
			n.escapes = n.escapes || c == '&' || c == '%' || c == '\\'
			n.otherByte(c, lo, lo+1)
			n.wordLetters = false
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		hi := lo + int32(size)
		i += size
		n.rune(s, r, i, lo, hi)
	}
	n.flush()
}

// rune handles one non-ASCII rune of s ending at input offset end.
func (n *normText) rune(s string, r rune, end int, lo, hi int32) {
	next := nextIsLetter(s, end)
	switch {
	case r == utf8.RuneError:
		n.otherByte('?', lo, hi)
		return
	case r >= 0xE0020 && r <= 0xE007E:
		// Tag characters spell ASCII invisibly ("ASCII smuggling").
		n.invisible = true
		n.ascii(byte(r-0xE0000), lo, hi, next)
		return
	case normInvisible(r):
		n.invisible = true
		return
	case r == 0x2018 || r == 0x2019 || r == 0x201A || r == 0x201B || r == 0x2032:
		n.otherByte('\'', lo, hi)
		return
	case r == 0x201C || r == 0x201D || r == 0x201E || r == 0x201F || r == 0xAB || r == 0xBB || r == 0x2033:
		n.otherByte('"', lo, hi)
		return
	case unicode.IsSpace(r):
		n.space(lo, hi, r == 0x2028 || r == 0x2029 || r == 0x85)
		return
	}
	if c := normHomoglyph(unicode.ToLower(r)); c != 0 {
		n.letter(c, lo, hi, next)
		return
	}
	d := norm.NFKD.PropertiesString(s[int(lo):]).Decomposition()
	if d == nil {
		n.foldRune(r, lo, hi, next)
		return
	}
	for len(d) > 0 {
		rr, sz := utf8.DecodeRune(d)
		d = d[sz:]
		if rr < utf8.RuneSelf {
			n.ascii(byte(rr), lo, hi, next || len(d) > 0)
			continue
		}
		n.foldRune(rr, lo, hi, next)
	}
}

func (n *normText) foldRune(r rune, lo, hi int32, next bool) {
	if unicode.Is(unicode.Mn, r) {
		return // combining mark: accents are dropped
	}
	r = unicode.ToLower(r)
	if c := normHomoglyph(r); c != 0 {
		n.letter(c, lo, hi, next)
		return
	}
	if n.pendKind != 0 && normCJK(r) {
		n.joinCJK(r)
	}
	var buf [utf8.UTFMax]byte
	k := utf8.EncodeRune(buf[:], r)
	n.other(buf[:k], lo, hi)
	n.wordLetters = true
}

// joinCJK drops the separator pending before r when it stands between two
// CJK characters: "调 用" and "こ.の.行" are spaced out the way "i g n o r e"
// is. Chinese and Japanese do not put spaces between words, so any run of
// spaces on one line goes; Korean does, so there only a lone '.' or '-'
// between syllables goes.
func (n *normText) joinCJK(r rune) {
	prev, _ := utf8.DecodeLastRune(n.out)
	if !normCJK(prev) {
		return
	}
	punct := n.pendKind == normPunctKind && n.pendN == 1
	space := n.pendKind == normSpaceKind && !n.pendNL && !normHangul(r) && !normHangul(prev)
	if punct || space {
		n.pendKind, n.pendN, n.pendNL = 0, 0, false
	}
}

// normCJK reports Han ideographs, kana and Hangul syllables.
func normCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x3040 && r <= 0x30FF || normHangul(r)
}

func normHangul(r rune) bool { return r >= 0xAC00 && r <= 0xD7A3 }

// normInvisible reports characters that render as nothing: format
// controls (zero-width space and joiners, word joiner, BOM, soft hyphen,
// bidi embeddings, overrides and isolates), variation selectors and the
// Hangul fillers.
func normInvisible(r rune) bool {
	switch {
	case r == 0x034F, r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF,
		r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0:
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// normHomoglyph folds lowercase Cyrillic, Greek and other look-alikes of
// Latin letters; 0 means no fold.
func normHomoglyph(r rune) byte {
	switch r {
	case 'а', 'ɑ', 'α':
		return 'a'
	case 'в', 'β', 'ь':
		return 'b'
	case 'с', 'ϲ':
		return 'c'
	case 'ԁ':
		return 'd'
	case 'е', 'ε', 'ҽ':
		return 'e'
	case 'ɡ':
		return 'g'
	case 'һ', 'հ':
		return 'h'
	case 'і', 'ı', 'ɩ', 'ι', 'ӏ':
		return 'i'
	case 'ј', 'ϳ':
		return 'j'
	case 'κ', 'к':
		return 'k'
	case 'м':
		return 'm'
	case 'η', 'п':
		return 'n'
	case 'о', 'ο', 'օ', 'σ':
		return 'o'
	case 'р', 'ρ':
		return 'p'
	case 'ԛ':
		return 'q'
	case 'г':
		return 'r'
	case 'ѕ':
		return 's'
	case 'т', 'τ':
		return 't'
	case 'υ', 'ս', 'μ':
		return 'u'
	case 'ν', 'ѵ':
		return 'v'
	case 'ω', 'ш':
		return 'w'
	case 'х', 'χ':
		return 'x'
	case 'у', 'γ':
		return 'y'
	case 'ᴢ':
		return 'z'
	}
	return 0
}

// normJoinedAt reports whether out positions p-1 and p lie in one joined run
// of spaced-out letters.
func (n *normText) normJoinedAt(p int) bool {
	j := n.joined
	// Runs are disjoint and in order: find the first run ending after p.
	k := sort.Search(len(j)/2, func(k int) bool { return int(j[2*k+1]) > p })
	return k < len(j)/2 && int(j[2*k]) <= p-1
}
