package policy

import (
	"strings"
	"testing"
)

// refGlob is the obviously-correct definition of a pattern match, by
// recursion on the first byte of the pattern, memoized so that fuzzing with
// many '*' stays fast.
func refGlob(pat, name string) bool {
	memo := make(map[[2]int]bool)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var v bool
		switch {
		case i == len(pat):
			v = j == len(name)
		case pat[i] == '*':
			v = match(i+1, j) || (j < len(name) && match(i, j+1))
		default:
			v = j < len(name) && pat[i] == name[j] && match(i+1, j+1)
		}
		memo[key] = v
		return v
	}
	return match(0, 0)
}

func globMatch(pat, name string) bool {
	p := compilePattern(pat)
	return p.match(name)
}

func TestGlobEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"*", "", true},
		{"**", "", true},
		{"*", "anything-at-all", true},
		{"a", "", false},
		{"*a", "", false},
		{"web-*", "web-", true},
		{"web-*", "web-fetch", true},
		{"web-*", "web", false},
		{"web-*", "xweb-fetch", false}, // a prefix pattern is anchored
		{"*-delete", "file-delete", true},
		{"*-delete", "-delete", true},
		{"*-delete", "file-delete-now", false}, // a suffix pattern is anchored
		{"file-*-tmp", "file--tmp", true},
		{"file-*-tmp", "file-a-b-tmp", true},
		{"file-*-tmp", "file-tmp", false}, // prefix and suffix may not overlap
		{"a*a", "a", false},               // likewise, with one shared byte
		{"a*a", "aa", true},
		{"a**b", "ab", true},
		{"*a*b", "ab", true},
		{"*a*b", "ba", false},
		{"*a*a*a*a*b", strings.Repeat("a", 64), false},
		{"*a*a*a*a*b", strings.Repeat("a", 64) + "b", true},
		{"Web-*", "web-fetch", false}, // matching is case-sensitive
		{"web-fetch", "web-fetch", true},
		{"web-fetch", "web-fetch ", false}, // no trimming
		{"é*", "éa", true},
		{"*\x00", "a\x00", true}, // other bytes, NUL included, are literal
	} {
		if got := globMatch(tc.pat, tc.name); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pat, tc.name, got, tc.want)
		}
		if ref := refGlob(tc.pat, tc.name); ref != tc.want {
			t.Errorf("reference match(%q, %q) = %v, want %v (bad test case)", tc.pat, tc.name, ref, tc.want)
		}
	}
}

// TestGlobPathologicalPatternDoesNotBacktrack would not finish with a
// backtracking matcher: the number of ways to split 20,000 bytes among 16
// stars is astronomical. The two-pointer matcher takes len(pat)*len(name)
// steps at most.
func TestGlobPathologicalPatternDoesNotBacktrack(t *testing.T) {
	pat := strings.Repeat("*a", 16) + "*b"
	name := strings.Repeat("a", 20000)
	if globMatch(pat, name) {
		t.Fatal("matched a name without the final b")
	}
	if !globMatch(pat, name+"b") {
		t.Fatal("missed a name with the final b")
	}
}

// FuzzGlob checks the fast matcher against the recursive definition.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"*", ""}, {"**", "x"}, {"web-*", "web-fetch"}, {"*-delete", "file-delete"},
		{"file-*-tmp", "file-tmp"}, {"a*a", "a"}, {"*a*a*a*a*b", "aaaaaaaab"}, {"*a*b", "ba"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if len(pat) > 256 || len(name) > 256 {
			t.Skip("the reference is quadratic in memory")
		}
		if got, want := globMatch(pat, name), refGlob(pat, name); got != want {
			t.Fatalf("match(%q, %q) = %v, reference says %v", pat, name, got, want)
		}
	})
}
