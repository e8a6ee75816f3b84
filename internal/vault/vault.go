package vault

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	_ "modernc.org/sqlite" // driver "sqlite"
)

// Errors that callers test with errors.Is.
var (
	// ErrNotFound: no such secret for this tenant.
	ErrNotFound = errors.New("vault: secret not found")
	// ErrLocked: the master key is missing or its file is refused
	// (permissions, length, not a regular file). The vault is unchanged.
	ErrLocked = errors.New("vault: locked: master key unavailable")
	// ErrWrongKey: the master key is readable but is not the key this vault
	// was sealed with (or the key check in vault.db was altered). The vault
	// is unchanged; the right key still opens it.
	ErrWrongKey = errors.New("vault: wrong master key for this vault")
	// ErrCorrupt: vault.db, a ciphertext, a nonce or a wrapped data key was
	// modified, truncated, or moved to another tenant, name or type.
	ErrCorrupt = errors.New("vault: corrupt or tampered data")
	// ErrInvalid: a tenant, name, type or value was refused before use.
	ErrInvalid = errors.New("vault: invalid argument")
)

// Options configure Open. The zero Options are valid.
type Options struct {
	// MasterKeyFile is the master key's path (the CLI passes
	// $CLAWKEEP_MASTER_KEY_FILE). It must exist. Empty means DIR/master.key,
	// created on first Open. Keeping the key beside vault.db means a copy
	// of the directory is a copy of every secret: name a file elsewhere
	// (another volume, a secrets mount) where backups are made.
	MasterKeyFile string
	// Logger receives one record per operation, with tenant, name and type
	// but never a value or key. Nil discards.
	Logger *slog.Logger
	// Rand is the source of keys and nonces. Nil means crypto/rand. Test
	// knob: anything but a CSPRNG breaks every guarantee.
	Rand io.Reader
	// Now is the clock for created and last-used times. Nil means time.Now.
	Now func() time.Time
}

// Info describes a stored secret, never its value.
type Info struct {
	Name     string
	Type     Type
	Created  time.Time
	LastUsed time.Time // zero if never read
}

// Vault is an open credential vault. Its methods are safe for concurrent
// use.
type Vault struct {
	db   *sql.DB          // never nil
	dir  string           // constant
	log  *slog.Logger     // never nil
	rand io.Reader        // never nil
	now  func() time.Time // never nil

	mu      sync.RWMutex
	master  []byte // guarded by mu; nil after Close
	keyPath string // guarded by mu; the file master was read from
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v ANY NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS tenants (
	tenant TEXT PRIMARY KEY, wrapped_dek BLOB NOT NULL, key_version INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS secrets (
	tenant TEXT NOT NULL, name TEXT NOT NULL, type INTEGER NOT NULL,
	nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
	created INTEGER NOT NULL, last_used INTEGER,
	PRIMARY KEY (tenant, name)
) STRICT;`

// Open opens the vault in dir, creating dir (0700), vault.db (0600) and,
// when opts.MasterKeyFile is empty and the vault is new, master.key.
func Open(dir string, opts Options) (*Vault, error) {
	v := &Vault{dir: dir, log: opts.Logger, rand: opts.Rand, now: opts.Now}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.rand == nil {
		v.rand = rand.Reader
	}
	if v.now == nil {
		v.now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// Group or other write access would let another user replace vault.db
	// or master.key. Read access is left to the operator: the files inside
	// are 0600 either way.
	if !fi.IsDir() {
		return nil, fmt.Errorf("vault: %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("vault: directory %s has mode %04o; group and others must not write to it (chmod 700)", dir, perm)
	}
	dbPath := filepath.Join(dir, "vault.db")
	// Create the file first so that SQLite (and its -wal and -shm files,
	// which copy its mode) never exist with a wider mode.
	f, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	f.Close()
	if fi, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("vault: %s has mode %04o; group and others must have no access (chmod 600)", dbPath, fi.Mode().Perm())
	}
	if err := checkDBFile(dbPath); err != nil {
		return nil, err
	}
	v.db, err = openDB(dbPath)
	if err != nil {
		return nil, err
	}
	if err := v.init(opts.MasterKeyFile); err != nil {
		v.db.Close()
		return nil, err
	}
	v.log.Info("vault: opened", "dir", dir)
	return v, nil
}

func openDB(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return db, nil
}

// init checks the database, loads the master key and checks it against
// the key check stored in vault.db, storing one for a new vault.
func (v *Vault) init(keyFile string) error {
	var res string
	if err := v.db.QueryRow("PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("%w: vault.db: %v", ErrCorrupt, err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: vault.db fails its integrity check: %s", ErrCorrupt, res)
	}
	if _, err := v.db.Exec(schema); err != nil {
		return fmt.Errorf("vault: creating schema: %w", err)
	}
	stored, err := v.keyCheck(v.db)
	if err != nil {
		return err
	}
	if keyFile == "" {
		keyFile = filepath.Join(v.dir, "master.key")
		if _, err := os.Lstat(keyFile); errors.Is(err, fs.ErrNotExist) {
			if stored != nil {
				return fmt.Errorf("%w: %s is missing but vault.db was sealed with a key; restore the key file or pass it as the master key file", ErrLocked, keyFile)
			}
			key := make([]byte, keySize)
			if _, err := io.ReadFull(v.rand, key); err != nil {
				return fmt.Errorf("vault: reading randomness: %w", err)
			}
			err := writeKeyFile(keyFile, key)
			clear(key)
			if err != nil {
				return err
			}
			v.log.Info("vault: created master key", "path", keyFile)
		}
	}
	key, err := readKeyFile(keyFile)
	if err != nil {
		return err
	}
	check := keyCheck(key)
	if stored == nil {
		if _, err := v.db.Exec(`INSERT OR IGNORE INTO meta (k, v) VALUES ('key_check', ?), ('key_version', 1)`, check); err != nil {
			clear(key)
			return fmt.Errorf("vault: %w", err)
		}
		if stored, err = v.keyCheck(v.db); err != nil { // another Open may have won
			clear(key)
			return err
		}
	}
	if !hmac.Equal(stored, check) {
		clear(key)
		return fmt.Errorf("%w (key file %s)", ErrWrongKey, keyFile)
	}
	v.master, v.keyPath = key, keyFile
	return nil
}

// checkDBFile refuses a vault.db that was cut short: SQLite reads a file
// shorter than its header says as if the missing pages were empty, and
// quick_check does not notice when they held only free space.
func checkDBFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil // a new vault
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("%w: vault.db is %d bytes, shorter than a SQLite header", ErrCorrupt, size)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return fmt.Errorf("%w: vault.db is not a SQLite database", ErrCorrupt)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%w: vault.db header has page size %d", ErrCorrupt, pageSize)
	}
	if size%pageSize != 0 {
		return fmt.Errorf("%w: vault.db is %d bytes, not a whole number of %d-byte pages (truncated?)", ErrCorrupt, size, pageSize)
	}
	// The page count in the header is valid when the change counter
	// matches the version-valid-for field.
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	if binary.BigEndian.Uint32(h[24:28]) == binary.BigEndian.Uint32(h[92:96]) && pages*pageSize > size {
		return fmt.Errorf("%w: vault.db is %d bytes but its header counts %d pages of %d (truncated)", ErrCorrupt, size, pages, pageSize)
	}
	return nil
}

type querier interface {
	QueryRow(query string, args ...any) *sql.Row
}

// keyCheck returns the stored key check, or nil for a new vault.
func (v *Vault) keyCheck(q querier) ([]byte, error) {
	var b []byte
	err := q.QueryRow(`SELECT v FROM meta WHERE k = 'key_check'`).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading key check: %v", ErrCorrupt, err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: key check is %d bytes", ErrCorrupt, len(b))
	}
	return b, nil
}

// checkName refuses an empty, over-long, non-UTF-8 or control-character
// tenant or secret name: names appear in logs and errors, where such bytes
// could forge lines.
func checkName(what, s string) error {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s must be 1 to 256 bytes of UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s %q contains a control character", ErrInvalid, what, s)
		}
	}
	return nil
}

// lockedRead takes the read lock and fails after Close.
func (v *Vault) lockedRead() error {
	v.mu.RLock()
	if v.master == nil {
		v.mu.RUnlock()
		return fmt.Errorf("vault: %w", os.ErrClosed)
	}
	return nil
}

// Put stores value as tenant's secret name of type t, replacing any
// secret of that name (its created time is reset and last used cleared).
// Put copies what it needs and neither keeps nor modifies value: the
// caller still owns it and should clear it when done.
func (v *Vault) Put(tenant, name string, t Type, value []byte) error {
	if err := checkName("tenant", tenant); err != nil {
		return err
	}
	if err := checkName("secret name", name); err != nil {
		return err
	}
	if !t.IsValid() {
		return fmt.Errorf("%w: secret type %d", ErrInvalid, uint8(t))
	}
	if err := checkValue(t, value); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := v.lockedRead(); err != nil {
		return err
	}
	defer v.mu.RUnlock()
	err := v.put(tenant, name, t, value)
	if err != nil {
		v.log.Warn("vault: put failed", "tenant", tenant, "name", name, "type", t.String(), "err", err)
		return err
	}
	v.log.Info("vault: put", "tenant", tenant, "name", name, "type", t.String())
	return nil
}

// put requires v.mu held for reading.
func (v *Vault) put(tenant, name string, t Type, value []byte) error {
	ctx := context.Background()
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	defer tx.Rollback()
	dek, err := v.tenantDEK(tx, tenant, true)
	if err != nil {
		return err
	}
	nonce, ct, err := seal(v.rand, dek, value, secretAAD(tenant, name, t))
	clear(dek)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO secrets (tenant, name, type, nonce, ciphertext, created, last_used)
		VALUES (?, ?, ?, ?, ?, ?, NULL)
		ON CONFLICT (tenant, name) DO UPDATE SET type = excluded.type, nonce = excluded.nonce,
			ciphertext = excluded.ciphertext, created = excluded.created, last_used = NULL`,
		tenant, name, int64(t), nonce, ct, v.now().UnixNano()); err != nil {
		return fmt.Errorf("vault: storing secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

// tenantDEK returns tenant's unwrapped data key, creating one if create is
// set and the tenant has none. v.mu must be held. The caller clears it.
func (v *Vault) tenantDEK(tx *sql.Tx, tenant string, create bool) ([]byte, error) {
	var wrapped []byte
	err := tx.QueryRow(`SELECT wrapped_dek FROM tenants WHERE tenant = ?`, tenant).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return nil, fmt.Errorf("%w: tenant %q has no secrets", ErrNotFound, tenant)
		}
		var version int64
		if err := tx.QueryRow(`SELECT v FROM meta WHERE k = 'key_version'`).Scan(&version); err != nil {
			return nil, fmt.Errorf("%w: reading key version: %v", ErrCorrupt, err)
		}
		dek := make([]byte, keySize)
		if _, err := io.ReadFull(v.rand, dek); err != nil {
			return nil, fmt.Errorf("vault: reading randomness: %w", err)
		}
		w, err := wrapDEK(v.rand, v.master, dek, tenant)
		if err != nil {
			clear(dek)
			return nil, err
		}
		if _, err := tx.Exec(`INSERT INTO tenants (tenant, wrapped_dek, key_version) VALUES (?, ?, ?)`, tenant, w, version); err != nil {
			clear(dek)
			return nil, fmt.Errorf("vault: storing data key: %w", err)
		}
		return dek, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading data key: %v", ErrCorrupt, err)
	}
	return unwrapDEK(v.master, wrapped, tenant)
}

// Get returns tenant's secret name and records the time it was read. The
// caller owns the Secret and should Wipe it when done.
func (v *Vault) Get(tenant, name string) (*Secret, error) {
	if err := checkName("tenant", tenant); err != nil {
		return nil, err
	}
	if err := checkName("secret name", name); err != nil {
		return nil, err
	}
	if err := v.lockedRead(); err != nil {
		return nil, err
	}
	defer v.mu.RUnlock()
	s, err := v.get(tenant, name)
	if err != nil {
		v.log.Warn("vault: get failed", "tenant", tenant, "name", name, "err", err)
		return nil, err
	}
	v.log.Info("vault: get", "tenant", tenant, "name", name, "type", s.Type().String())
	return s, nil
}

// get requires v.mu held for reading.
func (v *Vault) get(tenant, name string) (*Secret, error) {
	tx, err := v.db.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer tx.Rollback()
	var (
		typ       int64
		nonce, ct []byte
	)
	err = tx.QueryRow(`SELECT type, nonce, ciphertext FROM secrets WHERE tenant = ? AND name = ?`, tenant, name).Scan(&typ, &nonce, &ct)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: tenant %q, name %q", ErrNotFound, tenant, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading secret: %v", ErrCorrupt, err)
	}
	t := Type(typ)
	if typ < 0 || typ > 255 || !t.IsValid() {
		return nil, fmt.Errorf("%w: secret %q has type %d", ErrCorrupt, name, typ)
	}
	dek, err := v.tenantDEK(tx, tenant, false)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: secret %q has no tenant data key", ErrCorrupt, name)
	}
	if err != nil {
		return nil, err
	}
	pt, err := openSealed(dek, nonce, ct, secretAAD(tenant, name, t))
	clear(dek)
	if err != nil {
		return nil, fmt.Errorf("%w (tenant %q, name %q)", err, tenant, name)
	}
	if err := checkValue(t, pt); err != nil { // authenticated, so only a bug gets here
		clear(pt)
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := tx.Exec(`UPDATE secrets SET last_used = ? WHERE tenant = ? AND name = ?`, v.now().UnixNano(), tenant, name); err != nil {
		clear(pt)
		return nil, fmt.Errorf("vault: recording use: %w", err)
	}
	if err := tx.Commit(); err != nil {
		clear(pt)
		return nil, fmt.Errorf("vault: %w", err)
	}
	return newSecret(t, pt), nil
}

// List describes tenant's secrets, sorted by name. It never decrypts, so
// it does not detect tampering; Get does.
func (v *Vault) List(tenant string) ([]Info, error) {
	if err := checkName("tenant", tenant); err != nil {
		return nil, err
	}
	if err := v.lockedRead(); err != nil {
		return nil, err
	}
	defer v.mu.RUnlock()
	rows, err := v.db.Query(`SELECT name, type, created, last_used FROM secrets WHERE tenant = ? ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer rows.Close()
	var out []Info
	for rows.Next() {
		var (
			in       Info
			typ      int64
			created  int64
			lastUsed sql.NullInt64
		)
		if err := rows.Scan(&in.Name, &typ, &created, &lastUsed); err != nil {
			return nil, fmt.Errorf("%w: listing: %v", ErrCorrupt, err)
		}
		if in.Type = Type(typ); typ < 0 || typ > 255 || !in.Type.IsValid() {
			return nil, fmt.Errorf("%w: secret %q has type %d", ErrCorrupt, in.Name, typ)
		}
		in.Created = time.Unix(0, created).UTC()
		if lastUsed.Valid {
			in.LastUsed = time.Unix(0, lastUsed.Int64).UTC()
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	v.log.Info("vault: list", "tenant", tenant, "count", len(out))
	return out, nil
}

// Delete removes tenant's secret name, or returns ErrNotFound. The
// tenant's data key stays, so a later Put reuses it.
func (v *Vault) Delete(tenant, name string) error {
	if err := checkName("tenant", tenant); err != nil {
		return err
	}
	if err := checkName("secret name", name); err != nil {
		return err
	}
	if err := v.lockedRead(); err != nil {
		return err
	}
	defer v.mu.RUnlock()
	res, err := v.db.Exec(`DELETE FROM secrets WHERE tenant = ? AND name = ?`, tenant, name)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("vault: %w", err)
	} else if n == 0 {
		v.log.Warn("vault: delete failed", "tenant", tenant, "name", name, "err", ErrNotFound)
		return fmt.Errorf("%w: tenant %q, name %q", ErrNotFound, tenant, name)
	}
	v.log.Info("vault: delete", "tenant", tenant, "name", name)
	return nil
}

// RotateMasterKey re-wraps every tenant's data key under the key in
// newKeyFile (created with a fresh random key, mode 0600, if it does not
// exist) and replaces the key check, in one transaction: on any error
// nothing changes. Secrets are not re-encrypted; operations wait only for
// that one transaction.
//
// After it returns, open the vault with newKeyFile. When the vault uses
// the default DIR/master.key, that file is then replaced by the new key;
// if that replacement fails the error says so, vault.db already needs the
// new key, and newKeyFile holds it.
func (v *Vault) RotateMasterKey(newKeyFile string) error {
	if newKeyFile == "" {
		return fmt.Errorf("%w: empty new master key file", ErrInvalid)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.master == nil {
		return fmt.Errorf("vault: %w", os.ErrClosed)
	}
	if _, err := os.Lstat(newKeyFile); errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, keySize)
		if _, err := io.ReadFull(v.rand, key); err != nil {
			return fmt.Errorf("vault: reading randomness: %w", err)
		}
		err := writeKeyFile(newKeyFile, key)
		clear(key)
		if err != nil {
			return err
		}
	}
	newKey, err := readKeyFile(newKeyFile)
	if err != nil {
		return err
	}
	if hmac.Equal(newKey, v.master) {
		clear(newKey)
		return fmt.Errorf("%w: new master key is the current one", ErrInvalid)
	}
	n, err := v.rotateLocked(newKey)
	if err != nil {
		clear(newKey)
		v.log.Warn("vault: master key rotation failed", "err", err)
		return err
	}
	clear(v.master)
	v.master = newKey
	old := v.keyPath
	v.keyPath = newKeyFile
	v.log.Info("vault: rotated master key", "tenants", n, "key_file", newKeyFile)
	if def := filepath.Join(v.dir, "master.key"); old == def && filepath.Clean(newKeyFile) != def {
		if err := replaceKeyFile(def, newKey); err != nil {
			return fmt.Errorf("vault: rotated, but %s still holds the old key; open with %s: %w", def, newKeyFile, err)
		}
	}
	return nil
}

// rotateLocked re-wraps every data key under newKey. v.mu must be held.
func (v *Vault) rotateLocked(newKey []byte) (int, error) {
	tx, err := v.db.BeginTx(context.Background(), nil)
	if err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	defer tx.Rollback()
	stored, err := v.keyCheck(tx)
	if err != nil {
		return 0, err
	}
	if !hmac.Equal(stored, keyCheck(v.master)) {
		return 0, fmt.Errorf("%w: key check changed under an open vault", ErrWrongKey)
	}
	type row struct {
		tenant  string
		wrapped []byte
	}
	var rowsOut []row
	rows, err := tx.Query(`SELECT tenant, wrapped_dek FROM tenants`)
	if err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.tenant, &r.wrapped); err != nil {
			rows.Close()
			return 0, fmt.Errorf("%w: reading data keys: %v", ErrCorrupt, err)
		}
		rowsOut = append(rowsOut, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	for _, r := range rowsOut {
		dek, err := unwrapDEK(v.master, r.wrapped, r.tenant)
		if err != nil {
			return 0, err
		}
		w, err := wrapDEK(v.rand, newKey, dek, r.tenant)
		clear(dek)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(`UPDATE tenants SET wrapped_dek = ?, key_version = key_version + 1 WHERE tenant = ?`, w, r.tenant); err != nil {
			return 0, fmt.Errorf("vault: %w", err)
		}
	}
	if _, err := tx.Exec(`UPDATE meta SET v = ? WHERE k = 'key_check'`, keyCheck(newKey)); err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	if _, err := tx.Exec(`UPDATE meta SET v = v + 1 WHERE k = 'key_version'`); err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("vault: %w", err)
	}
	return len(rowsOut), nil
}

// Close wipes the master key and closes vault.db. A second Close returns
// an error wrapping os.ErrClosed.
func (v *Vault) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.master == nil {
		return fmt.Errorf("vault: %w", os.ErrClosed)
	}
	clear(v.master)
	v.master = nil
	if err := v.db.Close(); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}
