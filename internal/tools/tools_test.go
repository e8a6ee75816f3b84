package tools

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func run(t *testing.T, name string, env *Env, args string) (string, error) {
	t.Helper()
	b, ok := Lookup(name)
	if !ok {
		t.Fatalf("no built-in %q", name)
	}
	return b.Run(context.Background(), env, json.RawMessage(args))
}

func TestEcho(t *testing.T) {
	for args, want := range map[string]string{
		`{"text":"hi"}`:       "hi",
		`{"text":"hi","n":1}`: `{"text":"hi","n":1}`,
		`{ "a" : [1, 2] }`:    `{"a":[1,2]}`,
		``:                    "{}",
	} {
		if got, err := run(t, "echo", &Env{}, args); err != nil || got != want {
			t.Errorf("echo %s = %q, %v; want %q", args, got, err, want)
		}
	}
}

func TestSleepHonoursCancellation(t *testing.T) {
	b, _ := Lookup("sleep")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.Run(ctx, &Env{}, json.RawMessage(`{}`)); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("sleep returned %v", err)
		}
	case <-time.After(30 * time.Second): // hang guard, not a timing assertion
		t.Fatal("sleep ignored cancellation")
	}
}

func TestArgumentsAreDecodedStrictly(t *testing.T) {
	for _, tc := range []struct{ tool, args string }{
		{"sleep", `{"ms":-1}`},
		{"sleep", `{"ms":"10"}`},
		{"sleep", `{"seconds":1}`}, // unknown field
		{"file.read", `{"path":"a","content":"x"}`},
		{"file.write", `{"path":"a"}`},
		{"http.fetch", `{"url":"http://x","method":"DELETE"}`},
	} {
		root, _ := os.OpenRoot(t.TempDir())
		_, err := run(t, tc.tool, &Env{Workspace: root, MaxOutputBytes: 1024}, tc.args)
		if !errors.Is(err, ErrInvalidArgs) && !errors.Is(err, ErrSandbox) {
			t.Errorf("%s %s: got %v, want an argument error", tc.tool, tc.args, err)
		}
		root.Close()
	}
}

func TestFileToolsStayInWorkspace(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "out"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	env := &Env{Workspace: root, MaxOutputBytes: 1 << 20}
	for _, tc := range []struct{ tool, args string }{
		{"file.read", `{"path":"../` + filepath.Base(outside) + `/secret"}`},
		{"file.read", `{"path":"out/secret"}`},
		{"file.read", `{"path":"/etc/passwd"}`},
		{"file.write", `{"path":"out/new","content":"x"}`},
		{"file.delete", `{"path":"out/secret"}`},
	} {
		if _, err := run(t, tc.tool, env, tc.args); err == nil {
			t.Errorf("%s %s escaped the workspace", tc.tool, tc.args)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Fatal("file outside the workspace was deleted")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Fatal("file written outside the workspace")
	}
	if _, err := run(t, "file.write", env, `{"path":"in.txt","content":"ok"}`); err != nil {
		t.Fatal(err)
	}
	if got, err := run(t, "file.read", env, `{"path":"in.txt"}`); err != nil || got != "ok" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if _, err := run(t, "file.delete", env, `{"path":"in.txt"}`); err != nil {
		t.Fatal(err)
	}
}

func TestFileReadIsBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2048), 0o600)
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	if _, err := run(t, "file.read", &Env{Workspace: root, MaxOutputBytes: 1024}, `{"path":"big"}`); err == nil {
		t.Fatal("read a file larger than the output limit")
	}
}

func TestNoNetworkWithoutClient(t *testing.T) {
	if _, err := run(t, "http.fetch", &Env{}, `{"url":"https://example.com"}`); !errors.Is(err, ErrSandbox) {
		t.Fatalf("got %v", err)
	}
}
