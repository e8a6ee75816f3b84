package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCreatesKey0600InDir0700(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tenant-data")
	l := openLog(t, dir, Options{})
	l.Close()
	for path, want := range map[string]os.FileMode{
		dir:                             0o700,
		filepath.Join(dir, "audit.key"): 0o600,
		filepath.Join(dir, "audit.db"):  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %#o, want %#o", path, fi.Mode().Perm(), want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	if tenant, seed, err := parseKey(data); err != nil || tenant != "t1" || len(seed) != ed25519.SeedSize {
		t.Fatalf("parseKey = %q, %d bytes, %v", tenant, len(seed), err)
	}
}

func TestOpenRefusesGroupOrWorldReadableKey(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		dir := t.TempDir()
		writeLog(t, dir, 1, 0)
		key := filepath.Join(dir, "audit.key")
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(dir, Options{Tenant: "t1"}); !errors.Is(err, ErrKeyFile) {
			if l != nil {
				l.Close()
			}
			t.Errorf("mode %#o: Open = %v, want ErrKeyFile", mode, err)
		}
	}
}

func TestOpenRefusesSymlinkedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 1, 0)
	key := filepath.Join(dir, "audit.key")
	moved := filepath.Join(t.TempDir(), "elsewhere.key")
	if err := os.Rename(key, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, key); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Tenant: "t1"}); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("Open = %v, want ErrKeyFile", err)
	}
}

func TestOpenRefusesAnotherTenantsKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 1, 0)
	if _, err := Open(dir, Options{Tenant: "t2"}); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("Open as another tenant = %v, want ErrKeyFile", err)
	}
}

// Deleting the key must not make Open mint a new one: that would orphan
// every signature and let the deleter start a fresh, "valid" history.
func TestOpenRefusesToReplaceDeletedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 3, 0)
	if err := os.Remove(filepath.Join(dir, "audit.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Tenant: "t1"}); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("Open = %v, want ErrKeyFile", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.key")); !os.IsNotExist(err) {
		t.Fatalf("Open created a key: %v", err)
	}
}

func TestParseKeyRejectsNonCanonicalForms(t *testing.T) {
	t.Parallel()
	good := marshalKey("t1", make([]byte, 32))
	for name, data := range map[string][]byte{
		"preamble":         append([]byte("junk\n"), good...),
		"trailing data":    append(append([]byte{}, good...), "x"...),
		"short seed":       marshalKey("t1", make([]byte, 31)),
		"unquoted label":   []byte("clawkeep audit key v1\ntenant t1\nseed AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
		"unpadded base64":  []byte("clawkeep audit key v1\ntenant \"t1\"\nseed AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"),
		"escaped label":    []byte("clawkeep audit key v1\ntenant \"\\x741\"\nseed AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
		"no final newline": bytes.TrimSuffix(good, []byte("\n")),
		"PEM":              []byte("-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END PRIVATE KEY-----\n"),
		"empty":            nil,
	} {
		if _, _, err := parseKey(data); !errors.Is(err, ErrKeyFile) {
			t.Errorf("%s: parseKey = %v, want ErrKeyFile", name, err)
		}
	}
	if _, _, err := parseKey(good); err != nil {
		t.Fatalf("parseKey(marshalKey) = %v", err)
	}
}
