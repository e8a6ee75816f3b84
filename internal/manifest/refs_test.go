package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	identityFile = "claw: \"0.3.0\"\nkind: Identity\nmetadata: {name: me, version: 1.0.0}\nspec: {personality: From a file., autonomy: observer}\n"
	providerFile = "claw: \"0.3.0\"\nkind: Provider\nmetadata: {name: %s, version: 1.0.0}\nspec: {protocol: custom, endpoint: \"http://x.example\", model: m, auth: {type: none}}\n"
)

func toolFile(name, extra string) string {
	return "claw: \"0.3.0\"\nkind: Tool\nmetadata: {name: " + name + "}\nspec:\n  description: d\n  input_schema: {type: object}\n" + extra
}

// refTree writes a manifest whose every slot is a ref of a different form.
func refTree(t *testing.T) string {
	dir := t.TempDir()
	write(t, dir, "claw.yaml", `claw: "0.3.0"
kind: Claw
metadata: {name: refs}
spec:
  identity: ./identity.yaml
  providers: ["claw://local/provider/local@1.0.0", "claw://provider/backup"]
  tools: ["./tools/*.yaml"]
  policies: [policies/main.yaml]
  sandbox: claw://sandbox/box
`)
	write(t, dir, "identity.yaml", identityFile)
	write(t, dir, "provider/local.yaml", strings.Replace(providerFile, "%s", "local", 1))
	write(t, dir, "provider/backup.yaml", strings.Replace(providerFile, "%s", "backup", 1))
	write(t, dir, "tools/b.yaml", toolFile("b", "  sandbox_ref: box\n"))
	write(t, dir, "tools/a.yaml", toolFile("a", "  policy_ref: ../policies/main.yaml\n"))
	write(t, dir, "policies/main.yaml", "claw: \"0.3.0\"\nkind: Policy\nmetadata: {name: main}\nspec: {rules: [{id: r, action: allow, scope: all}]}\n")
	write(t, dir, "sandbox/box.yaml", "claw: \"0.3.0\"\nkind: Sandbox\nmetadata: {name: box}\nspec: {level: none}\n")
	return dir
}

func TestRefsResolve(t *testing.T) {
	c, err := Load(filepath.Join(refTree(t), "claw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity.Name != "me" || c.Identity.Autonomy != Observer {
		t.Errorf("identity: %+v", c.Identity)
	}
	if len(c.Providers) != 2 || c.Providers[0].Name != "local" || c.Providers[1].Name != "backup" {
		t.Errorf("providers: %+v", c.Providers)
	}
	if len(c.Tools) != 2 || c.Tools[0].Name != "a" || c.Tools[1].Name != "b" {
		t.Fatalf("tools not in sorted glob order: %+v", c.Tools)
	}
	if c.Tools[0].PolicyRef != "main" || c.Tools[1].SandboxRef != "box" {
		t.Errorf("tool refs: %q %q", c.Tools[0].PolicyRef, c.Tools[1].SandboxRef)
	}
	if c.Sandbox == nil || c.Sandbox.Name != "box" || len(c.Policies) != 1 {
		t.Errorf("sandbox %+v policies %d", c.Sandbox, len(c.Policies))
	}
	if !strings.HasSuffix(c.Policies[0].Rules[0].Pos.File, filepath.Join("policies", "main.yaml")) {
		t.Errorf("rule position names %q, want the policy file", c.Policies[0].Rules[0].Pos.File)
	}
}

func TestRefErrorsInReferencedFileNameThatFile(t *testing.T) {
	dir := refTree(t)
	write(t, dir, "tools/b.yaml", toolFile("b", "  timeout_ms: soon\n"))
	_, err := Load(filepath.Join(dir, "claw.yaml"))
	want := filepath.Join(dir, "tools", "b.yaml") + ":7:15: spec.timeout_ms: expected an integer, got a string"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// TestRefsRefused covers every way a ref can fail; each case says why.
func TestRefsRefused(t *testing.T) {
	cases := []struct {
		name, ref, want string
		setup           func(t *testing.T, dir string)
	}{
		{"kind mismatch", "./p.yaml", `p.yaml holds kind Policy; expected kind Tool`, func(t *testing.T, dir string) {
			write(t, dir, "p.yaml", "claw: \"0.3.0\"\nkind: Policy\nmetadata: {name: p}\nspec: {rules: [{id: r, action: allow, scope: all}]}\n")
		}},
		{"missing file", "./nope.yaml", `nope.yaml: file not found`, nil},
		{"uri name mismatch", "claw://local/tool/x", `tool/x.yaml has metadata.name "y"; the URI names "x"`, func(t *testing.T, dir string) {
			write(t, dir, "tool/x.yaml", toolFile("y", ""))
		}},
		{"uri version mismatch", "claw://local/tool/x@2.0.0", `tool/x.yaml has metadata.version ""; the URI asks for "2.0.0"`, func(t *testing.T, dir string) {
			write(t, dir, "tool/x.yaml", toolFile("x", ""))
		}},
		// A glob that matches nothing is almost always a typo; loading zero
		// tools silently would hide it.
		{"glob matching nothing", "./tools/*.yml", `glob "./tools/*.yml" matches no files`, nil},
		{"registry", "claw://registry/acme/tool@1.0.0", `no registry is configured`, nil},
		{"uri of another kind", "claw://local/policy/p", `names kind policy; expected kind tool`, nil},
		{"uri without name", "claw://local/tool", `is not a valid claw URI`, nil},
		{"uri with bad name", "claw://local/tool/bad_name!", `is not a valid claw URI`, nil},
		{"alias with version", "claw://tool/x@1.0.0", `is not a valid claw URI`, nil},
		{"uri with bad version", "claw://local/tool/x@v1", `is not a valid claw URI`, nil},
		{"unknown kind", "claw://local/gadget/x", `names unknown kind "gadget"`, nil},
		{"upper-case scheme", "CLAW://tool/x", `is not a valid claw URI`, nil},
		{"one slash", "claw:/tool/x", `is not a valid claw URI`, nil},
		{"uri traversal", "claw://local/tool/../../etc", `is not a valid claw URI`, nil},
		{"https ref", "https://example.com/tool.yaml", `is not a supported ref`, nil},
		{"file uri", "file:///etc/passwd", `is not a supported ref`, nil},
		{"absolute path", "/etc/passwd", `is an absolute path`, nil},
		{"dot-dot escape", "../outside.yaml", `leaves the manifest directory`, nil},
		{"dot-dot inside glob", "./tools/../../*.yaml", `leaves the manifest directory`, nil},
		{"symlink escape", "./tools/evil.yaml", `resolves through a symlink to a file outside the manifest directory`, func(t *testing.T, dir string) {
			outside := write(t, t.TempDir(), "secret.yaml", toolFile("secret", ""))
			symlink(t, outside, filepath.Join(dir, "tools", "evil.yaml"))
		}},
		{"symlinked directory escape", "./linked/x.yaml", `resolves through a symlink`, func(t *testing.T, dir string) {
			outside := t.TempDir()
			write(t, outside, "x.yaml", toolFile("x", ""))
			symlink(t, outside, filepath.Join(dir, "linked"))
		}},
		{"ref cycle through policy_ref", "./tools/loop.yaml", `ref cycle: tools/loop.yaml -> tools/loop.yaml`, func(t *testing.T, dir string) {
			write(t, dir, "tools/loop.yaml", toolFile("loop", "  policy_ref: ./loop.yaml\n"))
		}},
		{"ref cycle back to the root", "./tools/up.yaml", `ref cycle: claw.yaml -> tools/up.yaml -> claw.yaml`, func(t *testing.T, dir string) {
			write(t, dir, "tools/up.yaml", toolFile("up", "  sandbox_ref: ../claw.yaml\n"))
		}},
		{"fifo", "./fifo.yaml", `fifo.yaml is not a regular file`, func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "fifo.yaml"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "m")
			write(t, dir, "outside.yaml", toolFile("outside", ""))
			write(t, root, "tools/ok.yaml", toolFile("ok", ""))
			write(t, root, "claw.yaml", minimal+"  tools: [\""+tc.ref+"\"]\n")
			if tc.setup != nil {
				tc.setup(t, root)
			}
			_, err := Load(filepath.Join(root, "claw.yaml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "name: secret") {
				t.Fatal("error shows the content of a file outside the directory")
			}
		})
	}
}

// TestParseWithoutDirRefusesFileRefs: a manifest that came over the wire
// must not make the runtime read its own filesystem, URIs included.
func TestParseWithoutDirRefusesFileRefs(t *testing.T) {
	for _, ref := range []string{"./claw.yaml", "tools/*.yaml", "claw://local/tool/x", "claw://tool/x"} {
		_, err := Parse([]byte(minimal+"  tools: [\""+ref+"\"]\n"), Options{File: "wire"})
		if err == nil || !strings.Contains(err.Error(), "file refs are not allowed") {
			t.Errorf("%s: got %v", ref, err)
		}
	}
}

func TestTooManyFilesRefused(t *testing.T) {
	dir := t.TempDir()
	for i := range 200 {
		name := "t" + strings.Repeat("x", 3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		write(t, dir, "a/"+name+".yaml", toolFile(name, ""))
		write(t, dir, "b/"+name+".yaml", toolFile("b"+name, ""))
	}
	write(t, dir, "claw.yaml", minimal+"  tools: [\"a/*.yaml\", \"b/*.yaml\"]\n")
	_, err := Load(filepath.Join(dir, "claw.yaml"))
	if err == nil || !strings.Contains(err.Error(), "manifest refers to more than 256 files") {
		t.Fatalf("got %v", err)
	}
	write(t, dir, "claw.yaml", minimal+"  tools: [\"*/*.yaml\"]\n")
	if _, err = Load(filepath.Join(dir, "claw.yaml")); err == nil || !strings.Contains(err.Error(), "matches more than 256 files") {
		t.Fatalf("got %v", err)
	}
}

func TestFallbackCycleRefused(t *testing.T) {
	prov := func(name, fallback string) string {
		return "    - inline: {name: " + name + ", protocol: custom, endpoint: \"http://x.example\", model: m, auth: {type: none}, fallback: [{provider_ref: " + fallback + "}]}\n"
	}
	for name, tc := range map[string]struct{ providers, want string }{
		"two providers": {prov("a", "b") + prov("b", "a"), "fallback cycle: a -> b -> a"},
		"self":          {prov("a", "a"), "fallback cycle: a -> a"},
		"three via uri": {prov("a", "b") + prov("b", "c") + prov("c", "\"claw://provider/a\""), "fallback cycle: a -> b -> c -> a"},
	} {
		t.Run(name, func(t *testing.T) {
			src := "claw: \"0.3.0\"\nkind: Claw\nmetadata: {name: f}\nspec:\n  identity: {inline: {personality: p}}\n  providers:\n" + tc.providers
			_, err := Parse([]byte(src), Options{File: "f.yaml"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}
