package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultCLINeverShowsTheValue stores a credential through the CLI, uses
// every verb, then greps all output and every file the process wrote.
func TestVaultCLINeverShowsTheValue(t *testing.T) {
	dir := t.TempDir()
	const secret = "sk-test-4f9c2b7e1d8a6350c2e9f1a7b3d5e8c0"
	run := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(binPath, append([]string{"vault"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "CLAWKEEP_MASTER_KEY_FILE=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	var all strings.Builder
	step := func(wantCode int, stdin string, args ...string) string {
		t.Helper()
		out, code := run(stdin, append(args, "--data-dir", dir)...)
		all.WriteString(out)
		if code != wantCode {
			t.Fatalf("vault %v: exit %d, want %d\n%s", args, code, wantCode, out)
		}
		return out
	}
	step(0, secret+"\n", "put", "openai", "--type", "api-key")
	step(0, secret+"\n", "put", "smtp", "--type", "basic", "--user", "mailer")
	if out := step(0, "", "list"); !strings.Contains(out, "openai\tapi-key") || !strings.Contains(out, "smtp\tbasic") {
		t.Fatalf("list: %s", out)
	}
	step(2, "", "put", "argv", "--type", "api-key", secret) // a value on the command line is refused
	step(2, "", "put", "empty", "--type", "api-key")
	step(2, secret, "put", "x", "--type", "nonsense")
	step(0, "", "rm", "smtp")
	step(2, "", "rm", "smtp")
	newKey := filepath.Join(t.TempDir(), "new.key")
	os.WriteFile(newKey, bytes.Repeat([]byte{7}, 32), 0o600)
	step(0, "", "rotate-key", "--new-key-file", newKey)

	forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), hex.EncodeToString([]byte(secret))}
	for _, f := range forms {
		if strings.Contains(all.String(), f) {
			t.Fatalf("CLI output contains the secret (%q)", f)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, f := range forms {
			if bytes.Contains(data, []byte(f)) {
				t.Errorf("%s contains the secret in plain form", p)
			}
		}
		return nil
	})
}
