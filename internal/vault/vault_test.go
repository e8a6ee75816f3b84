package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// open opens a vault in dir and closes it at the end of the test.
func open(t *testing.T, dir string, opts Options) *Vault {
	t.Helper()
	v, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func mustPut(t *testing.T, v *Vault, tenant, name string, typ Type, value string) {
	t.Helper()
	if err := v.Put(tenant, name, typ, []byte(value)); err != nil {
		t.Fatalf("Put(%s, %s): %v", tenant, name, err)
	}
}

func mustGet(t *testing.T, v *Vault, tenant, name, want string) {
	t.Helper()
	s, err := v.Get(tenant, name)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", tenant, name, err)
	}
	defer s.Wipe()
	if string(s.UnsafeBytes()) != want {
		t.Fatalf("Get(%s, %s) returned the wrong value", tenant, name)
	}
}

func TestVaultRoundTripEveryType(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := open(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	basic, err := BasicValue("alice", []byte("pa55"))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	values := map[string]struct {
		t Type
		v []byte
	}{
		"k": {APIKey, []byte("sk-123")},
		"b": {Bearer, []byte("tok")},
		"u": {Basic, basic},
		"o": {OAuth, OAuthValue([]byte("acc"), []byte("ref"), exp)},
		"f": {File, []byte{0, 1, 2, 0xff}},
		"e": {File, []byte{}},
	}
	for name, c := range values {
		if err := v.Put("t1", name, c.t, c.v); err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
	}
	for name, c := range values {
		s, err := v.Get("t1", name)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		if s.Type() != c.t || !bytes.Equal(s.UnsafeBytes(), c.v) {
			t.Fatalf("Get %s: wrong type or value", name)
		}
	}
	s, _ := v.Get("t1", "u")
	user, pw, err := s.Basic()
	if err != nil || user != "alice" || string(pw.UnsafeBytes()) != "pa55" {
		t.Fatalf("Basic() = %q, %v", user, err)
	}
	s, _ = v.Get("t1", "o")
	acc, ref, gotExp, err := s.OAuth()
	if err != nil || string(acc.UnsafeBytes()) != "acc" || string(ref.UnsafeBytes()) != "ref" || !gotExp.Equal(exp) {
		t.Fatalf("OAuth() = %v, %v", gotExp, err)
	}
	if _, _, err := s.Basic(); err == nil {
		t.Fatal("Basic() of an oauth secret succeeded")
	}
	infos, err := v.List("t1")
	if err != nil || len(infos) != len(values) {
		t.Fatalf("List = %v, %v", infos, err)
	}
	for i, in := range infos {
		if i > 0 && infos[i-1].Name >= in.Name {
			t.Fatalf("List not sorted: %v", infos)
		}
		if in.Type != values[in.Name].t || !in.Created.Equal(now) || !in.LastUsed.Equal(now) {
			t.Fatalf("List entry %+v", in)
		}
	}
	if infos, err := v.List("nobody"); err != nil || len(infos) != 0 {
		t.Fatalf("List(nobody) = %v, %v", infos, err)
	}
}

func TestVaultPutReplacesAndDeleteRemoves(t *testing.T) {
	v := open(t, t.TempDir(), Options{})
	mustPut(t, v, "t1", "k", APIKey, "one")
	mustGet(t, v, "t1", "k", "one")
	mustPut(t, v, "t1", "k", Bearer, "two")
	mustGet(t, v, "t1", "k", "two")
	if infos, _ := v.List("t1"); len(infos) != 1 || infos[0].Type != Bearer {
		t.Fatalf("List after replace = %v", infos)
	}
	if err := v.Delete("t1", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("t1", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := v.Delete("t1", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := v.Get("t2", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of unknown tenant = %v, want ErrNotFound", err)
	}
}

func TestVaultPutDoesNotKeepOrModifyCallerBuffer(t *testing.T) {
	v := open(t, t.TempDir(), Options{})
	buf := []byte("secret-value")
	mustPut(t, v, "t1", "k", APIKey, string(buf))
	if err := v.Put("t1", "k2", APIKey, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "secret-value" {
		t.Fatal("Put modified the caller's buffer")
	}
	clear(buf)
	mustGet(t, v, "t1", "k2", "secret-value")
}

// Names appear in logs and errors: control characters could forge lines.
func TestVaultRejectsHostileNamesAndValues(t *testing.T) {
	v := open(t, t.TempDir(), Options{})
	cases := []struct {
		tenant, name string
		typ          Type
		value        []byte
	}{
		{"", "k", APIKey, nil},                           // empty tenant
		{"t", "", APIKey, nil},                           // empty name
		{"t\n", "k", APIKey, nil},                        // newline forges a log line
		{"t", "k\x1b[2J", APIKey, nil},                   // terminal escape
		{"t", string([]byte{0xff}), APIKey, nil},         // not UTF-8
		{"t", string(make([]byte, 257)), APIKey, nil},    // too long
		{"t", "k", 0, nil},                               // zero type is invalid
		{"t", "k", File + 1, nil},                        // undeclared type
		{"t", "k", Basic, []byte{0}},                     // basic value too short
		{"t", "k", Basic, []byte{0, 9, 'a'}},             // user length past the end
		{"t", "k", OAuth, []byte{0, 0, 0, 1, 'a', 0, 0}}, // no expiry
	}
	for _, c := range cases {
		if err := v.Put(c.tenant, c.name, c.typ, c.value); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put(%q, %q, %d) = %v, want ErrInvalid", c.tenant, c.name, c.typ, err)
		}
	}
	if _, err := v.Get("t\n", "k"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get with a newline tenant = %v", err)
	}
	if infos, err := v.List("t"); err != nil || len(infos) != 0 {
		t.Fatalf("a refused Put stored something: %v, %v", infos, err)
	}
}

func TestVaultFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", APIKey, "x")
	want := map[string]os.FileMode{"": 0o700, // created by Open
		"vault.db": 0o600, "master.key": 0o600, "vault.db-wal": 0o600, "vault.db-shm": 0o600}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && name != "vault.db" && name != "master.key" && name != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%q has mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "master.key")); fi.Size() != 32 {
		t.Errorf("master.key is %d bytes", fi.Size())
	}
}

func TestVaultRefusesDirectoryWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o777, 0o775, 0o757} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); err == nil {
			t.Fatalf("Open accepted a directory with mode %04o", mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused Open wrote a master key")
	}
}

func TestVaultCloseTwiceAndUseAfterClose(t *testing.T) {
	v, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := v.Get("t", "k"); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if err := v.Put("t", "k", APIKey, nil); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Put after Close = %v", err)
	}
}

func TestVaultRotateThenReadEverythingBack(t *testing.T) {
	dir := t.TempDir()
	keys := t.TempDir()
	v, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	want := map[[2]string]string{}
	for _, tenant := range []string{"a", "b", "c"} {
		for _, name := range []string{"k1", "k2"} {
			val := "v-" + tenant + "-" + name
			mustPut(t, v, tenant, name, APIKey, val)
			want[[2]string{tenant, name}] = val
		}
	}
	newFile := filepath.Join(keys, "new.key")
	if err := v.RotateMasterKey(newFile); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	for k, val := range want {
		mustGet(t, v, k[0], k[1], val)
	}
	mustPut(t, v, "d", "k", APIKey, "after")
	want[[2]string{"d", "k"}] = "after"
	v.Close()

	// The new key file, and the replaced default master.key, open it.
	for _, opts := range []Options{{MasterKeyFile: newFile}, {}} {
		v := open(t, dir, opts)
		for k, val := range want {
			mustGet(t, v, k[0], k[1], val)
		}
		v.Close()
	}
	// The old key no longer does, and says so.
	oldFile := filepath.Join(keys, "old.key")
	if err := os.WriteFile(oldFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{MasterKeyFile: oldFile}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with the rotated-out key = %v, want ErrWrongKey", err)
	}
	// Rotating to the current key is refused.
	v = open(t, dir, Options{MasterKeyFile: newFile})
	if err := v.RotateMasterKey(newFile); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rotate to the same key = %v", err)
	}
}

// A rotation that fails part-way (one tenant's wrapped key corrupt) changes
// nothing: every other tenant still opens under the old key.
func TestVaultRotateIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "a", "k", APIKey, "va")
	mustPut(t, v, "b", "k", APIKey, "vb")
	sqlExec(t, dir, `UPDATE tenants SET wrapped_dek = zeroblob(60) WHERE tenant = 'b'`)
	newFile := filepath.Join(t.TempDir(), "new.key")
	if err := v.RotateMasterKey(newFile); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rotate over a corrupt wrapped key = %v, want ErrCorrupt", err)
	}
	mustGet(t, v, "a", "k", "va")
	v.Close()
	v = open(t, dir, Options{})
	mustGet(t, v, "a", "k", "va")
	if _, err := Open(dir, Options{MasterKeyFile: newFile}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("the failed rotation's key opens the vault: %v", err)
	}
}

// Readers keep working while the master key rotates: no downtime.
func TestVaultRotateUnderConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	for _, tenant := range []string{"a", "b", "c", "d"} {
		mustPut(t, v, tenant, "k", APIKey, "v"+tenant)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for _, tenant := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := v.Get(tenant, "k")
				if err != nil {
					errs <- err
					return
				}
				s.Wipe()
			}
		})
	}
	keys := t.TempDir()
	for i := range 3 {
		if err := v.RotateMasterKey(filepath.Join(keys, string(rune('a'+i))+".key")); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Get during rotation: %v", err)
	}
}
