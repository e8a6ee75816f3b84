package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEgressCheckCLI uses literal addresses only: no DNS in tests.
func TestEgressCheckCLI(t *testing.T) {
	cmd := exec.Command(binPath, "egress", "check", "--stdin", "http://93.184.216.34/", "http://169.254.169.254/latest/meta-data/")
	cmd.Stdin = strings.NewReader("http://127.1/\nftp://93.184.216.34/\n\nhttp://good.com@10.0.0.1/\nhttps://[2606:4700:4700::1111]/\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []struct{ verdict, url string }{
		{"allow", "http://93.184.216.34/"},
		{"block", "http://169.254.169.254/latest/meta-data/"},
		{"block", "http://127.1/"},
		{"block", "ftp://93.184.216.34/"},
		{"block", "http://good.com@10.0.0.1/"},
		{"allow", "https://[2606:4700:4700::1111]/"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		f := strings.Split(lines[i], "\t")
		if len(f) != 3 || f[0] != w.verdict || f[2] != w.url || f[1] == "" {
			t.Errorf("line %d = %q, want %s ... %s", i, lines[i], w.verdict, w.url)
		}
	}
	// A Sandbox file's network capability is the policy.
	sb := filepath.Join(t.TempDir(), "sandbox.yaml")
	os.WriteFile(sb, []byte("claw: \"0.3.0\"\nkind: Sandbox\nmetadata: {name: s}\nspec:\n  level: none\n  capabilities:\n    network: {mode: allowlist, allowed_hosts: [\"93.184.216.34\"]}\n"), 0o600)
	out, err = exec.Command(binPath, "egress", "check", "--policy", sb, "http://93.184.216.34/", "http://1.1.1.1/").Output()
	if err != nil || !strings.HasPrefix(string(out), "allow\t") || !strings.Contains(string(out), "\nblock\t") {
		t.Fatalf("--policy: %v\n%s", err, out)
	}
	// The conformance manifest's sandbox allows every public host.
	out, _ = exec.Command(binPath, "egress", "check", "--policy", conformanceManifest, "http://1.1.1.1/").Output()
	if !strings.HasPrefix(string(out), "allow\t") {
		t.Fatalf("--policy claw.yaml: %s", out)
	}
	// An allowlist refuses public hosts it does not name.
	out, _ = exec.Command(binPath, "egress", "check", "--allow-host", "api.example.com", "https://93.184.216.34/").Output()
	if !strings.HasPrefix(string(out), "block\t") {
		t.Fatalf("allowlist: %s", out)
	}
}
