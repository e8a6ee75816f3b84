package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// leakForms are the spellings of b a careless log line or file would hold.
func leakForms(b []byte) map[string][]byte {
	return map[string][]byte{
		"plain":      b,
		"hex":        []byte(hex.EncodeToString(b)),
		"HEX":        []byte(strings.ToUpper(hex.EncodeToString(b))),
		"base64":     []byte(base64.StdEncoding.EncodeToString(b)),
		"base64raw":  []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url":  []byte(base64.RawURLEncoding.EncodeToString(b)),
		"go-bytes":   []byte(fmt.Sprint(b)), // [115 107 ...]
		"go-quoted":  []byte(fmt.Sprintf("%q", b)),
		"json-bytes": must(json.Marshal(b)), // base64 inside quotes
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func assertNoLeak(t *testing.T, where string, haystack []byte, secrets map[string][]byte) {
	t.Helper()
	for what, secret := range secrets {
		for form, needle := range leakForms(secret) {
			if bytes.Contains(haystack, needle) {
				t.Errorf("%s holds the %s in %s form", where, what, form)
			}
		}
	}
}

// TestVaultSecretNotInLogs writes a known secret, drives every API through
// its success and error paths with a logger capturing everything, then
// searches the captured output, every error text and every byte of the
// data directory for the secret (and the master key) in any common spelling.
func TestVaultSecretNotInLogs(t *testing.T) {
	dir := t.TempDir()
	keyDir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	textLogger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	out := func(a ...any) { fmt.Fprintln(&logs, a...) }

	plain := []byte("sk-live-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e")
	password := []byte("hunter2-correct-horse-battery-staple")
	basic, err := BasicValue("alice", password)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(dir, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	out(v.Put("t1", "api", APIKey, plain))
	out(v.Put("t1", "login", Basic, basic))
	out(v.Put("t1", "oauth", OAuth, OAuthValue(plain, password, time.Unix(1e9, 0))))
	out(v.Put("t2", "api", APIKey, plain))
	out(v.Put("t1\n", "api", APIKey, plain))  // refused tenant
	out(v.Put("t1", "bad", Basic, plain[:1])) // refused value
	out(v.Put("t1", "bad", Type(99), plain))  // refused type
	s, err := v.Get("t1", "api")
	out(err)
	if !bytes.Equal(s.UnsafeBytes(), plain) {
		t.Fatal("round trip failed")
	}
	textLogger.Info("got secret", "secret", s, "ptr", *s)
	logger.Info("got secret", "secret", s)
	out(s, *s)
	fmt.Fprintf(&logs, "%v %+v %#v %s %x %X %q %d %v\n", s, s, s, s, s, s, s, s, []*Secret{s})
	fmt.Fprintf(&logs, "%v %+v %#v\n", *s, struct{ S Secret }{*s}, struct{ S *Secret }{s})
	js, err := json.Marshal(map[string]any{"s": s, "v": *s, "in": struct{ S Secret }{*s}})
	out(string(js), err)
	login, err := v.Get("t1", "login")
	out(err)
	user, pw, err := login.Basic()
	out(user, pw, err)
	oa, err := v.Get("t1", "oauth")
	out(err)
	acc, ref, exp, err := oa.OAuth()
	out(acc, ref, exp, err)
	infos, err := v.List("t1")
	out(infos, err)
	fmt.Fprintf(&logs, "%+v %#v\n", infos, infos)
	out(v.Get("t1", "missing"))
	out(v.Get("nobody", "api"))
	out(v.Delete("t1", "missing"))
	// Corrupt one row so the error paths of Get run too.
	sqlExec(t, dir, `UPDATE secrets SET name = 'renamed' WHERE tenant = 't2'`)
	out(v.Get("t2", "renamed"))
	out(v.RotateMasterKey(filepath.Join(keyDir, "new.key")))
	out(v.RotateMasterKey(filepath.Join(keyDir, "new.key"))) // refused: same key
	out(v.Get("t1", "api"))
	out(v.Delete("t1", "oauth"))
	out(v.Close())
	out(v.Close())
	wrong := filepath.Join(keyDir, "wrong.key")
	writeKey(t, wrong, make([]byte, 32), 0o600)
	out(Open(dir, Options{MasterKeyFile: wrong, Logger: logger}))
	open := filepath.Join(keyDir, "open.key")
	writeKey(t, open, make([]byte, 32), 0o644)
	out(Open(dir, Options{MasterKeyFile: open, Logger: logger}))
	v2, err := Open(dir, Options{MasterKeyFile: filepath.Join(keyDir, "new.key"), Logger: logger})
	out(err)
	out(v2.List("t1"))
	out(v2.Close())

	for _, sec := range []*Secret{s, pw, acc, ref} {
		if !sec.IsValid() {
			t.Fatal("a secret was wiped early")
		}
	}
	masterKeys := map[string][]byte{}
	for _, p := range []string{filepath.Join(dir, "master.key"), filepath.Join(keyDir, "new.key")} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		masterKeys["master key "+filepath.Base(p)] = b
	}
	secrets := map[string][]byte{"api key": plain, "password": password, "basic value": basic}
	if logs.Len() == 0 || !bytes.Contains(logs.Bytes(), []byte(redacted)) {
		t.Fatal("captured nothing: the test is not looking at the output")
	}
	assertNoLeak(t, "captured output", logs.Bytes(), secrets)
	assertNoLeak(t, "captured output", logs.Bytes(), masterKeys)
	if testing.Verbose() {
		t.Logf("captured output:\n%s", logs.Bytes())
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoLeak(t, "data file "+d.Name(), b, secrets)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Wipe()
	if s.IsValid() || s.Len() != 0 || s.UnsafeBytes() != nil {
		t.Fatal("Wipe left the value reachable")
	}
}

func TestSecretPrintsRedacted(t *testing.T) {
	s := newSecret(APIKey, []byte("top-secret"))
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%-20v"} {
		for _, arg := range []any{s, *s} {
			got := fmt.Sprintf(format, arg)
			if strings.Contains(got, "top-secret") || strings.Contains(got, hex.EncodeToString([]byte("top-secret"))) || !strings.Contains(got, redacted) {
				t.Errorf("Sprintf(%q, %T) = %q", format, arg, got)
			}
		}
	}
	for _, v := range []any{s, *s, struct{ S Secret }{*s}, struct{ S *Secret }{s}, []*Secret{s}} {
		js, err := json.Marshal(v)
		if err != nil || strings.Contains(string(js), "top-secret") || !strings.Contains(string(js), redacted) {
			t.Errorf("json.Marshal(%T) = %s, %v", v, js, err)
		}
	}
	if txt, _ := s.MarshalText(); string(txt) != redacted {
		t.Errorf("MarshalText = %q", txt)
	}
	if got := s.LogValue().String(); got != redacted {
		t.Errorf("LogValue = %q", got)
	}
	if s.String() != redacted || s.GoString() != redacted {
		t.Error("String or GoString not redacted")
	}
}

func TestSecretNotComparableAndEqualIsExact(t *testing.T) {
	if reflect.TypeFor[Secret]().Comparable() {
		t.Fatal("Secret is comparable: == would not run in constant time")
	}
	a := newSecret(APIKey, []byte("same"))
	b := newSecret(APIKey, []byte("same"))
	if !a.Equal(b) {
		t.Fatal("equal secrets differ")
	}
	for _, o := range []*Secret{
		newSecret(Bearer, []byte("same")), // same bytes, other type
		newSecret(APIKey, []byte("samf")),
		newSecret(APIKey, []byte("sam")),
		{},
		nil,
	} {
		if a.Equal(o) || o.Equal(a) {
			t.Errorf("Equal accepted a different secret")
		}
	}
	var zero Secret
	if zero.IsValid() || zero.Equal(&zero) {
		t.Fatal("the zero Secret is valid")
	}
	buf := a.UnsafeBytes()
	a.Wipe()
	if !bytes.Equal(buf, make([]byte, 4)) || a.Equal(b) {
		t.Fatal("Wipe did not zero the value")
	}
	a.Wipe() // idempotent
	var nilSecret *Secret
	nilSecret.Wipe()
	if _, err := ParseType("api-key"); err != nil {
		t.Fatal(err)
	}
	for typ := APIKey; typ <= File; typ++ {
		if got, err := ParseType(typ.String()); err != nil || got != typ {
			t.Errorf("ParseType(%q) = %v, %v", typ, got, err)
		}
	}
	if _, err := ParseType("invalid(0)"); err == nil || Type(0).IsValid() {
		t.Fatal("the zero Type is valid")
	}
	if errors.Is(nil, ErrNotFound) {
		t.Fatal("unreachable")
	}
}
