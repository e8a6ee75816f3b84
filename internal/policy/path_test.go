package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workspace builds, under a fresh temp dir (itself resolved, since the temp
// dir may sit behind a symlink):
//
//	root/ws/            the allowed directory
//	root/ws/sub/        a real subdirectory
//	root/ws/file        a regular file
//	root/ws/escape  ->  root/outside   (absolute symlink out)
//	root/ws/rel     ->  ../outside     (relative symlink out)
//	root/ws/inner   ->  sub            (symlink that stays inside)
//	root/ws/deep    ->  root/outside/a/b (for "deep/../..")
//	root/ws2/           a sibling whose name extends "ws"
//	root/outside/a/b/
func workspace(t *testing.T) (root, ws string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws = filepath.Join(root, "ws")
	for _, d := range []string{"ws/sub", "ws2", "outside/a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"escape": filepath.Join(root, "outside"),
		"rel":    "../outside",
		"inner":  "sub",
		"deep":   filepath.Join(root, "outside/a/b"),
	} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, ws
}

// pathPolicy allows calls whose path is within ws and denies everything else.
func pathPolicy(t *testing.T, ws string) *Policy {
	t.Helper()
	p, err := Compile([]Rule{{ID: "ws-only", Action: Allow, Scope: ScopeTool, Tools: []string{"write-file"}, PathWithin: ws}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decidePath resolves arg the way the kernel does and decides; an
// unresolvable path leaves Input.Path empty, as the kernel leaves it.
func decidePath(p *Policy, ws, arg string) Decision {
	in := Input{Tool: "write-file"}
	if r, err := ResolvePath(ws, arg); err == nil {
		in.Path = r
	}
	return p.Decide(&in)
}

func TestPathWithinRejectsSymlinkEscape(t *testing.T) {
	root, ws := workspace(t)
	p := pathPolicy(t, ws)
	for _, arg := range []string{
		"escape/secret",           // absolute link to a directory outside
		"rel/secret",              // relative link climbing out
		ws + "/escape/a/b/new",    // absolute argument through the link
		"inner/../escape/x",       // inside link first, then out
		"escape",                  // the link itself names the outside dir
		"./escape/../outside/a/b", // ".." after the link is taken from the target
	} {
		r, err := ResolvePath(ws, arg)
		if err != nil {
			t.Errorf("ResolvePath(%q): %v", arg, err)
			continue
		}
		if Within(ws, r) || !Within(root, r) {
			t.Errorf("ResolvePath(%q) = %q, want a path outside %q", arg, r, ws)
		}
		if d := decidePath(p, ws, arg); d.Action != Deny || d.Rule != nil {
			t.Errorf("%q: got %v by %v, want the default deny", arg, d.Action, d.Rule)
		}
	}
	// A symlink that stays inside is fine.
	if d := decidePath(p, ws, "inner/new-file"); d.Action != Allow {
		t.Errorf("inner/new-file: got %v, want allow", d.Action)
	}
}

// TestPathWithinRejectsSymlinkDotDotEscape is the lexical-cleaning trap:
// "deep/../../x" cleaned as text is "ws/x" (inside), but the OS climbs from
// the link's target, outside/a/b, to outside/x.
func TestPathWithinRejectsSymlinkDotDotEscape(t *testing.T) {
	root, ws := workspace(t)
	r, err := ResolvePath(ws, "deep/../../x")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "outside/x"); r != want {
		t.Fatalf("ResolvePath = %q, want %q", r, want)
	}
	if d := decidePath(pathPolicy(t, ws), ws, "deep/../../x"); d.Action != Deny {
		t.Fatalf("got %v, want deny", d.Action)
	}
}

func TestPathWithinRejectsDotDotEscape(t *testing.T) {
	_, ws := workspace(t)
	p := pathPolicy(t, ws)
	for _, arg := range []string{
		"../outside/a",
		"sub/../../outside",
		"../ws2/x",       // the sibling with the shared prefix
		"../../../../..", // climbing past the root stays at the root
		ws + "/../outside",
		"sub/../../ws/../outside/new",
	} {
		if d := decidePath(p, ws, arg); d.Action != Deny || d.Rule != nil {
			t.Errorf("%q: got %v, want the default deny", arg, d.Action)
		}
	}
	for _, arg := range []string{"sub/../file", "./sub/./x", "sub/../../ws/new"} {
		if d := decidePath(p, ws, arg); d.Action != Allow {
			t.Errorf("%q: got %v, want allow (stays inside)", arg, d.Action)
		}
	}
}

func TestPathWithinRejectsSiblingPrefix(t *testing.T) {
	root, ws := workspace(t)
	p := pathPolicy(t, ws)
	for _, path := range []string{root + "/ws2", root + "/ws2/x", root + "/wsx", root + "/w", root} {
		if d := p.Decide(&Input{Tool: "write-file", Path: path}); d.Action != Deny {
			t.Errorf("%q: got %v, want deny", path, d.Action)
		}
	}
}

func TestResolvePathNonexistentTail(t *testing.T) {
	root, ws := workspace(t)
	for arg, want := range map[string]string{
		"new":                    ws + "/new",
		"sub/new/deeper/file":    ws + "/sub/new/deeper/file",
		"inner/new":              ws + "/sub/new",
		"escape/new/x":           root + "/outside/new/x",
		"new/./x/":               ws + "/new/x",
		"file":                   ws + "/file",
		"/" + ws[1:] + "//sub//": ws + "/sub",
	} {
		got, err := ResolvePath(ws, arg)
		if err != nil || got != want {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
}

func TestResolvePathRejectsHostileInput(t *testing.T) {
	_, ws := workspace(t)
	if err := os.Symlink("loop", filepath.Join(ws, "loop")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ base, arg, why string }{
		{ws, "", "empty"},
		{ws, "sub/x\x00/../../etc", "NUL byte: the OS would stop at it"},
		{ws, "\x00", "NUL byte alone"},
		{ws + "\x00", "x", "NUL byte in the base"},
		{ws, "new/../../outside", "'..' after a missing directory cannot be resolved honestly"},
		{ws, "file/x", "a component under a regular file"},
		{ws, "loop/x", "a symlink cycle"},
		{"relative", "x", "a relative path needs an absolute base"},
	} {
		r, err := ResolvePath(tc.base, tc.arg)
		if !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ResolvePath(%q, %q) = %q, %v; want ErrInvalidPath (%s)", tc.base, tc.arg, r, err, tc.why)
		}
		if err != nil && strings.ContainsRune(err.Error(), 0) {
			t.Errorf("error for %q carries a raw NUL: %q", tc.arg, err)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		dir, path string
		want      bool
	}{
		{"/ws", "/ws", true},
		{"/ws", "/ws/a", true},
		{"/ws", "/ws/a/b", true},
		{"/ws", "/ws2", false},   // sibling sharing a prefix
		{"/a/b", "/a/bc", false}, // same, deeper
		{"/ws", "/w", false},
		{"/ws", "/", false},
		{"/", "/anything", true},
		{"/", "/", true},
		{"/ws/", "/ws/a", true},           // cleaned
		{"/ws", "/ws/a/../../etc", false}, // cleaned before comparing
		{"/ws", "ws/a", false},            // relative: within nothing
		{"ws", "/ws/a", false},
		{"", "/ws", false},
	} {
		if got := Within(tc.dir, tc.path); got != tc.want {
			t.Errorf("Within(%q, %q) = %v, want %v", tc.dir, tc.path, got, tc.want)
		}
	}
}

// refWithin compares component lists, a different formulation from Within's
// byte-prefix test.
func refWithin(dir, path string) bool {
	if !filepath.IsAbs(dir) || !filepath.IsAbs(path) {
		return false
	}
	split := func(p string) []string {
		var out []string
		for _, c := range strings.Split(filepath.Clean(p), "/") {
			if c != "" {
				out = append(out, c)
			}
		}
		return out
	}
	d, p := split(dir), split(path)
	if len(p) < len(d) {
		return false
	}
	for i := range d {
		if d[i] != p[i] {
			return false
		}
	}
	return true
}

func FuzzWithin(f *testing.F) {
	f.Add("/ws", "/ws2")
	f.Add("/a/b", "/a/bc")
	f.Add("/", "/x")
	f.Add("/ws/", "/ws/../ws/x")
	f.Fuzz(func(t *testing.T, dir, path string) {
		if got, want := Within(dir, path), refWithin(dir, path); got != want {
			t.Fatalf("Within(%q, %q) = %v, reference says %v", dir, path, got, want)
		}
	})
}

// FuzzResolvePath checks that ResolvePath either refuses cleanly or returns
// an absolute, clean path that it resolves to itself again (nothing left to
// resolve). Paths are confined to a temp tree so the fuzzer does not walk
// the host's /proc.
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"x", "sub/../x", "escape/../y", "a\x00b", "..", "inner/./new//z", "loop/x", "file/.."} {
		f.Add(s)
	}
	root, err := filepath.EvalSymlinks(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	ws := filepath.Join(root, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "sub"), 0o700); err != nil {
		f.Fatal(err)
	}
	for link, target := range map[string]string{"escape": root, "inner": "sub", "loop": "loop"} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "file"), nil, 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		arg = strings.TrimLeft(arg, "/")
		r, err := ResolvePath(ws, arg)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("ResolvePath(%q): error %v does not wrap ErrInvalidPath", arg, err)
			}
			return
		}
		if !filepath.IsAbs(r) || filepath.Clean(r) != r || strings.ContainsRune(r, 0) {
			t.Fatalf("ResolvePath(%q) = %q, not absolute and clean", arg, r)
		}
		if !Within(root, r) {
			return // climbed out of the tree into the host's file system
		}
		if again, err := ResolvePath(ws, r); err != nil || again != r {
			t.Fatalf("ResolvePath(%q) = %q, which resolves again to %q, %v", arg, r, again, err)
		}
	})
}
