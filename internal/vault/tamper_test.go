package vault

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sqlExec plays the attacker with a database shell on vault.db.
func sqlExec(t *testing.T, dir, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "vault.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("attacker SQL %q: %v", query, err)
	}
}

func sqlBlob(t *testing.T, dir, query string, args ...any) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "vault.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b []byte
	if err := db.QueryRow(query, args...).Scan(&b); err != nil {
		t.Fatalf("attacker SQL %q: %v", query, err)
	}
	return b
}

func writeKey(t *testing.T, path string, key []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, key, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestVaultWrongMasterKeyIsClearAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", APIKey, "keep-me")
	v.Close()

	wrong := filepath.Join(t.TempDir(), "wrong.key")
	writeKey(t, wrong, make([]byte, 32), 0o600)
	for range 2 { // a retry with the wrong key must not "fix" anything either
		_, err := Open(dir, Options{MasterKeyFile: wrong})
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Open with a wrong key = %v, want ErrWrongKey", err)
		}
	}
	v = open(t, dir, Options{})
	mustGet(t, v, "t1", "k", "keep-me")
}

func TestVaultRefusesKeyFileOpenToOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602} {
		path := filepath.Join(t.TempDir(), "k")
		writeKey(t, path, make([]byte, 32), mode)
		if _, err := Open(t.TempDir(), Options{MasterKeyFile: path}); !errors.Is(err, ErrLocked) {
			t.Errorf("key file mode %04o: Open = %v, want ErrLocked", mode, err)
		}
	}
	// A directory is not a key file.
	if _, err := Open(t.TempDir(), Options{MasterKeyFile: t.TempDir()}); !errors.Is(err, ErrLocked) {
		t.Errorf("directory as key file: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{MasterKeyFile: filepath.Join(t.TempDir(), "absent")}); !errors.Is(err, ErrLocked) {
		t.Errorf("missing key file: %v", err)
	}
}

func TestVaultRefusesTruncatedOrPaddedKeyFile(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", APIKey, "keep-me")
	v.Close()
	keyPath := filepath.Join(dir, "master.key")
	key, _ := os.ReadFile(keyPath)
	for _, bad := range [][]byte{
		nil,                       // emptied
		key[:16],                  // truncated
		key[:31],                  // one byte short
		append(key[:32:32], '\n'), // a trailing newline from an editor
		append(key[:32:32], key...),
	} {
		writeKey(t, keyPath, bad, 0o600)
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
			t.Errorf("key file of %d bytes: Open = %v, want ErrLocked", len(bad), err)
		}
	}
	writeKey(t, keyPath, key, 0o600)
	v = open(t, dir, Options{})
	mustGet(t, v, "t1", "k", "keep-me")
}

// Deleting master.key must not make Open quietly create a new one, which
// would lock the existing secrets away for good.
func TestVaultMissingKeyIsNotRegenerated(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", APIKey, "keep-me")
	v.Close()
	keyPath := filepath.Join(dir, "master.key")
	key, _ := os.ReadFile(keyPath)
	os.Remove(keyPath)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open without master.key = %v, want ErrLocked", err)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Open wrote a new master key over a sealed vault")
	}
	writeKey(t, keyPath, key, 0o600)
	v = open(t, dir, Options{})
	mustGet(t, v, "t1", "k", "keep-me")
}

func TestVaultDetectsTruncatedDatabase(t *testing.T) {
	src := t.TempDir()
	v := open(t, src, Options{})
	for i := range 200 {
		mustPut(t, v, "t1", string(rune('a'+i%26))+string(rune('a'+i/26)), File, string(make([]byte, 200)))
	}
	v.Close()
	db, _ := os.ReadFile(filepath.Join(src, "vault.db"))
	key, _ := os.ReadFile(filepath.Join(src, "master.key"))
	for _, size := range []int{1, 50, 100, 4096, 4096 + 100, len(db) / 2, len(db) - 4096, len(db) - 100, len(db) - 1} {
		dir := t.TempDir()
		writeKey(t, filepath.Join(dir, "master.key"), key, 0o600)
		writeKey(t, filepath.Join(dir, "vault.db"), db[:size], 0o600)
		v, err := Open(dir, Options{})
		if err == nil {
			// Open may not see every truncation; reading everything must.
			var infos []Info
			if infos, err = v.List("t1"); err == nil && len(infos) != 200 {
				t.Errorf("vault.db truncated to %d of %d bytes: List silently returns %d of 200 secrets", size, len(db), len(infos))
			}
			v.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("vault.db truncated to %d of %d bytes: err = %v, want ErrCorrupt", size, len(db), err)
		}
	}
}

// flipBit flips one bit of a blob column of one row, as an attacker with
// SQL access would.
func flipBit(t *testing.T, dir, table, column, where string, at int) {
	t.Helper()
	b := sqlBlob(t, dir, "SELECT "+column+" FROM "+table+" WHERE "+where)
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	sqlExec(t, dir, "UPDATE "+table+" SET "+column+" = ? WHERE "+where, b)
}

func TestVaultDetectsFlippedBit(t *testing.T) {
	cases := []struct {
		table, column, where string
	}{
		{"secrets", "ciphertext", "name = 'k'"},
		{"secrets", "nonce", "name = 'k'"},
		{"tenants", "wrapped_dek", "tenant = 't1'"},
	}
	for _, c := range cases {
		for _, at := range []int{0, 5, -1} {
			dir := t.TempDir()
			v := open(t, dir, Options{})
			mustPut(t, v, "t1", "k", APIKey, "flip-me")
			flipBit(t, dir, c.table, c.column, c.where, at)
			if s, err := v.Get("t1", "k"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s.%s bit flipped at %d: Get = %v, %v, want ErrCorrupt", c.table, c.column, at, s, err)
			}
			v.Close()
		}
	}
}

func TestVaultDetectsTruncatedCiphertext(t *testing.T) {
	for _, query := range []string{
		`UPDATE secrets SET ciphertext = substr(ciphertext, 1, length(ciphertext) - 1)`, // tag cut
		`UPDATE secrets SET ciphertext = substr(ciphertext, 1, 4)`,                      // shorter than a tag
		`UPDATE secrets SET ciphertext = x''`,                                           // emptied
		`UPDATE secrets SET nonce = substr(nonce, 1, 8)`,                                // short nonce must not panic GCM
		`UPDATE tenants SET wrapped_dek = substr(wrapped_dek, 1, 20)`,                   // wrapped key cut
	} {
		dir := t.TempDir()
		v := open(t, dir, Options{})
		mustPut(t, v, "t1", "k", APIKey, "cut-me")
		sqlExec(t, dir, query)
		if _, err := v.Get("t1", "k"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Get = %v, want ErrCorrupt", query, err)
		}
		v.Close()
	}
}

// An attacker with SQL access moves tenant a's secret into tenant b, hoping
// b's agent will use a's credential (or that b's data key opens it).
func TestVaultRefusesSecretMovedToAnotherTenant(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "a", "k", APIKey, "a-secret")
	mustPut(t, v, "b", "other", APIKey, "b-secret")
	sqlExec(t, dir, `UPDATE secrets SET tenant = 'b' WHERE tenant = 'a' AND name = 'k'`)
	if _, err := v.Get("b", "k"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a secret moved to b = %v, want ErrCorrupt", err)
	}
}

// The attacker copies a's wrapped data key, and a's secret, into b: the
// wrapped key is bound to its tenant, so b cannot unwrap a's key.
func TestVaultRefusesDataKeySwappedBetweenTenants(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "a", "k", APIKey, "a-secret")
	mustPut(t, v, "b", "k", APIKey, "b-secret")
	sqlExec(t, dir, `UPDATE tenants SET wrapped_dek = (SELECT wrapped_dek FROM tenants WHERE tenant = 'a') WHERE tenant = 'b'`)
	sqlExec(t, dir, `DELETE FROM secrets WHERE tenant = 'b'`)
	sqlExec(t, dir, `UPDATE secrets SET tenant = 'b' WHERE tenant = 'a'`)
	if _, err := v.Get("b", "k"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get with a's data key swapped into b = %v, want ErrCorrupt", err)
	}
	// A secret row whose tenant has no data key at all.
	sqlExec(t, dir, `DELETE FROM tenants WHERE tenant = 'b'`)
	if _, err := v.Get("b", "k"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get with b's data key deleted = %v, want ErrCorrupt", err)
	}
}

// The attacker renames "read-only-token" to "deploy-token" hoping a more
// privileged tool picks it up.
func TestVaultRefusesRenamedSecret(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "read-only-token", Bearer, "ro")
	sqlExec(t, dir, `UPDATE secrets SET name = 'deploy-token'`)
	if _, err := v.Get("t1", "deploy-token"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a renamed secret = %v, want ErrCorrupt", err)
	}
}

// Retyping a file as basic would make its bytes parse as user + password.
func TestVaultRefusesRetypedSecret(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", File, "\x00\x01ab")
	for _, typ := range []int{int(Basic), 0, 200, -1, 1 << 40} {
		sqlExec(t, dir, `UPDATE secrets SET type = ?`, typ)
		if _, err := v.Get("t1", "k"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get of a secret retyped to %d = %v, want ErrCorrupt", typ, err)
		}
	}
}

// Altering the stored key check cannot make a wrong key acceptable; it
// only makes the right key look wrong, which is reported, not repaired.
func TestVaultKeyCheckTamperingIsReported(t *testing.T) {
	dir := t.TempDir()
	v := open(t, dir, Options{})
	mustPut(t, v, "t1", "k", APIKey, "x")
	v.Close()
	sqlExec(t, dir, `UPDATE meta SET v = zeroblob(32) WHERE k = 'key_check'`)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open after key check altered = %v, want ErrWrongKey", err)
	}
	sqlExec(t, dir, `UPDATE meta SET v = 'short' WHERE k = 'key_check'`)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open after key check replaced = %v, want ErrCorrupt", err)
	}
}
