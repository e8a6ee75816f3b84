package policy

import "strings"

// pattern is a compiled tool-name pattern. The literal text before the first
// '*' and after the last one is checked with plain string comparisons, which
// rejects most names before any wildcard matching runs.
type pattern struct {
	exact  bool   // no '*': the name must equal prefix
	prefix string // up to the first '*'
	suffix string // after the last '*'
	middle string // from the first '*' to the last, inclusive; "" when exact
	minLen int    // bytes a name needs: the pattern's non-'*' bytes
}

func compilePattern(s string) pattern {
	first := strings.IndexByte(s, '*')
	if first < 0 {
		return pattern{exact: true, prefix: s, minLen: len(s)}
	}
	last := strings.LastIndexByte(s, '*')
	return pattern{
		prefix: s[:first],
		suffix: s[last+1:],
		middle: s[first : last+1],
		minLen: len(s) - strings.Count(s, "*"),
	}
}

func (p *pattern) match(name string) bool {
	if p.exact {
		return name == p.prefix
	}
	if len(name) < p.minLen || !strings.HasPrefix(name, p.prefix) || !strings.HasSuffix(name, p.suffix) {
		return false
	}
	return wildcard(p.middle, name[len(p.prefix):len(name)-len(p.suffix)])
}

// wildcard reports whether name matches pat, where '*' matches any run of
// bytes and every other byte matches itself. It is the classic two-pointer
// algorithm: on a mismatch it retries only from the most recent '*', so the
// cost is at most len(pat)*len(name) steps, never exponential.
func wildcard(pat, name string) bool {
	p, n := 0, 0
	star, retry := -1, 0 // last '*' seen in pat, and where in name its run ends
	for n < len(name) {
		switch {
		case p < len(pat) && pat[p] == '*':
			star, retry = p, n
			p++
		case p < len(pat) && pat[p] == name[n]:
			p++
			n++
		case star >= 0:
			// Let the last '*' swallow one more byte and match the rest again.
			retry++
			p, n = star+1, retry
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}
