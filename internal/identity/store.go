package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options configures Open. Zero fields take the documented defaults.
type Options struct {
	// Now is a test knob; nil means time.Now.
	Now func() time.Time
	// Argon2 is the cost of new password hashes; zero means production
	// parameters. Only tests should lower it: cheap hashes make a stolen
	// database cheap to crack.
	Argon2 Argon2Params
	// SessionTTL is how long a login session lasts; zero means 12h.
	SessionTTL time.Duration
	// LockoutAfter is how many failed logins for one email lock it; zero
	// means 10.
	LockoutAfter int
	// LockoutFor is how long a lock lasts; zero means 15 minutes.
	LockoutFor time.Duration
}

const (
	defaultSessionTTL   = 12 * time.Hour
	defaultLockoutAfter = 10
	defaultLockoutFor   = 15 * time.Minute

	// concurrentHashes bounds Argon2id runs at once: 4 × 64 MiB.
	concurrentHashes = 4
	// cacheTTL is how long Authenticate trusts a cached lookup. It bounds
	// how late a revocation made through another Store is seen.
	cacheTTL = 5 * time.Second
	// maxCache bounds the cache; only valid tokens enter it.
	maxCache = 1 << 16
	// lastUsedEvery is how stale Token.LastUsed may be, so Authenticate
	// does not write on every request.
	lastUsedEvery = time.Minute
	// failureMemory is how long an idle failure count is kept.
	failureMemory = 24 * time.Hour
	// bootstrapTTL is how long a bootstrap token is valid.
	bootstrapTTL = 24 * time.Hour
)

// Store is the identity database. It is safe for concurrent use.
type Store struct {
	db           *sql.DB          // never nil
	now          func() time.Time // never nil
	hasher       *hasher          // never nil
	sessionTTL   time.Duration
	lockoutAfter int
	lockoutFor   time.Duration

	closeOnce sync.Once
	lastPrune atomic.Int64 // unix nanos of the last sweep of stale login failures

	mu    sync.RWMutex
	gen   uint64                 // guarded by mu; bumped by every change that can invalidate a principal
	cache map[[32]byte]cacheItem // guarded by mu; never nil
}

const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS orgs (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	name    TEXT    NOT NULL UNIQUE,
	created INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS users (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	email          TEXT    NOT NULL UNIQUE,
	password       TEXT    NOT NULL,
	instance_owner INTEGER NOT NULL DEFAULT 0,
	created        INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS members (
	org     INTEGER NOT NULL REFERENCES orgs (id),
	user_id INTEGER NOT NULL REFERENCES users (id),
	role    INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
	added   INTEGER NOT NULL,
	PRIMARY KEY (org, user_id)
) STRICT;
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);
CREATE TABLE IF NOT EXISTS login_failures (
	email        TEXT    PRIMARY KEY,
	failed       INTEGER NOT NULL,
	locked_until INTEGER NOT NULL,
	last         INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS sessions (
	hash    BLOB    PRIMARY KEY,
	id      TEXT    NOT NULL UNIQUE,
	user_id INTEGER NOT NULL REFERENCES users (id),
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);
CREATE TABLE IF NOT EXISTS tokens (
	id         TEXT    PRIMARY KEY,
	hash       BLOB    NOT NULL UNIQUE,
	org        INTEGER NOT NULL REFERENCES orgs (id),
	name       TEXT    NOT NULL,
	role       INTEGER NOT NULL,
	agent      TEXT    NOT NULL,
	created_by TEXT    NOT NULL,
	created    INTEGER NOT NULL,
	expires    INTEGER NOT NULL,
	revoked    INTEGER NOT NULL DEFAULT 0,
	last_used  INTEGER NOT NULL DEFAULT 0,
	CHECK ((agent = '' AND role BETWEEN 1 AND 4) OR (agent <> '' AND role = 0))
) STRICT;
CREATE INDEX IF NOT EXISTS tokens_org ON tokens (org, agent);
CREATE TABLE IF NOT EXISTS bootstrap (
	one     INTEGER PRIMARY KEY CHECK (one = 1),
	hash    BLOB    NOT NULL,
	expires INTEGER NOT NULL
) STRICT;
`

// Open opens the store at path, creating the file with mode 0600 (and
// tightening an existing one to it). The directory must exist.
func Open(path string, opts Options) (*Store, error) {
	params, err := opts.Argon2.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.SessionTTL < 0 || opts.LockoutAfter < 0 || opts.LockoutFor < 0 {
		return nil, fmt.Errorf("%w: negative option", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	// Create the file ourselves: SQLite would use 0644, and it gives its
	// WAL and shared-memory files the mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	q := url.Values{
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"},
		// Every transaction takes the write lock when it begins, so a
		// check-then-write (last owner, bootstrap) cannot interleave with
		// another one.
		"_txlock": {"immediate"},
	}
	// A file: URI with an escaped path, so '?' or '#' in a directory name
	// cannot inject parameters.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	// database/sql keeps 2 idle connections by default; under concurrent
	// requests the rest would be closed and reopened (a new SQLite
	// connection parses the schema) on every burst.
	db.SetMaxIdleConns(32)
	if err := initSchema(db); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{
		db:           db,
		now:          opts.Now,
		hasher:       newHasher(params, concurrentHashes),
		sessionTTL:   opts.SessionTTL,
		lockoutAfter: opts.LockoutAfter,
		lockoutFor:   opts.LockoutFor,
		cache:        make(map[[32]byte]cacheItem),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sessionTTL == 0 {
		s.sessionTTL = defaultSessionTTL
	}
	if s.lockoutAfter == 0 {
		s.lockoutAfter = defaultLockoutAfter
	}
	if s.lockoutFor == 0 {
		s.lockoutFor = defaultLockoutFor
	}
	return s, nil
}

func initSchema(db *sql.DB) error {
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("identity: opening store: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("identity: store format %d is newer than this program (%d)", v, schemaVersion)
	}
	if _, err := db.Exec(schema); err != nil {
		return fmt.Errorf("identity: creating schema: %w", err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("identity: creating schema: %w", err)
	}
	return nil
}

// Close closes the store. A second Close returns an error wrapping
// net.ErrClosed.
func (s *Store) Close() error {
	err := errClosed
	s.closeOnce.Do(func() { err = s.db.Close() })
	return err
}

// tx runs f in a transaction that holds the write lock from its start.
func (s *Store) tx(f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

func dbErr(err error) error { return fmt.Errorf("identity: %w", err) }

// ts and fromTS store times as Unix nanoseconds; 0 is the zero time.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromTS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// ---- Organisations ----

// checkOrgName accepts ^[a-z0-9][a-z0-9-]{0,62}$: safe in URLs, paths and
// process names, and one canonical spelling per name.
func checkOrgName(name string) error {
	ok := len(name) >= 1 && len(name) <= 63
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0
	}
	if !ok {
		return fmt.Errorf("%w: organisation name %q (want 1 to 63 of a-z, 0-9 and '-', not starting with '-')", ErrInvalid, name)
	}
	return nil
}

// CreateOrg creates an organisation. A taken name gives ErrExists.
func (s *Store) CreateOrg(name string) (Org, error) {
	if err := checkOrgName(name); err != nil {
		return Org{}, err
	}
	o := Org{Name: name, Created: fromTS(ts(s.now()))}
	res, err := s.db.Exec(`INSERT INTO orgs (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, ts(o.Created))
	if err != nil {
		return Org{}, dbErr(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Org{}, dbErr(err)
	} else if n == 0 {
		return Org{}, fmt.Errorf("%w: organisation %q", ErrExists, name)
	}
	if o.ID, err = res.LastInsertId(); err != nil {
		return Org{}, dbErr(err)
	}
	return o, nil
}

// Org returns the organisation called name, or ErrNotFound.
func (s *Store) Org(name string) (Org, error) {
	if err := checkOrgName(name); err != nil {
		return Org{}, err
	}
	var o Org
	var created int64
	err := s.db.QueryRow(`SELECT id, name, created FROM orgs WHERE name = ?`, name).Scan(&o.ID, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, fmt.Errorf("%w: organisation %q", ErrNotFound, name)
	} else if err != nil {
		return Org{}, dbErr(err)
	}
	o.Created = fromTS(created)
	return o, nil
}

// Orgs returns every organisation, sorted by name.
func (s *Store) Orgs() ([]Org, error) {
	rows, err := s.db.Query(`SELECT id, name, created FROM orgs ORDER BY name`)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []Org
	for rows.Next() {
		var o Org
		var created int64
		if err := rows.Scan(&o.ID, &o.Name, &created); err != nil {
			return nil, dbErr(err)
		}
		o.Created = fromTS(created)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return out, nil
}

// ---- Users ----

// normEmail trims and lower-cases s and checks that it looks like
// local@domain: one '@', both sides non-empty, at most 254 bytes, no
// spaces, control or format characters (which could make two addresses
// look alike to a reviewer).
func normEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(e, "@")
	ok = ok && local != "" && domain != "" && !strings.Contains(domain, "@") &&
		len(e) <= 254 && utf8.ValidString(e)
	for _, r := range e {
		if !ok {
			break
		}
		ok = unicode.IsPrint(r) && !unicode.IsSpace(r)
	}
	if !ok {
		return "", fmt.Errorf("%w: email %q (want local@domain, at most 254 bytes)", ErrInvalid, s)
	}
	return e, nil
}

// CreateUser creates a user with a password of 12 to 1024 bytes. The email
// is trimmed and lower-cased; a taken one gives ErrExists.
func (s *Store) CreateUser(email string, password []byte) (User, error) {
	return s.createUser(email, password, false, nil)
}

// createUser hashes password, then inserts the user; in the same
// transaction it runs check first, if not nil.
func (s *Store) createUser(email string, password []byte, instanceOwner bool, check func(tx *sql.Tx) error) (User, error) {
	e, err := normEmail(email)
	if err != nil {
		return User{}, err
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	// Hash outside the transaction: it is slow and needs no lock.
	h, err := s.hasher.hash(password)
	if err != nil {
		return User{}, err
	}
	u := User{Email: e, InstanceOwner: instanceOwner, Created: fromTS(ts(s.now()))}
	err = s.tx(func(tx *sql.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		res, err := tx.Exec(`INSERT INTO users (email, password, instance_owner, created) VALUES (?, ?, ?, ?)
			ON CONFLICT (email) DO NOTHING`, e, h, instanceOwner, ts(u.Created))
		if err != nil {
			return dbErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr(err)
		} else if n == 0 {
			return fmt.Errorf("%w: user %q", ErrExists, e)
		}
		u.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

const userColumns = `id, email, instance_owner, created`

func scanUser(sc interface{ Scan(...any) error }, extra ...any) (User, error) {
	var u User
	var created int64
	err := sc.Scan(append([]any{&u.ID, &u.Email, &u.InstanceOwner, &created}, extra...)...)
	u.Created = fromTS(created)
	return u, err
}

// UserByEmail returns the user with that email (trimmed, lower-cased), or
// ErrNotFound.
func (s *Store) UserByEmail(email string) (User, error) {
	e, err := normEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(s.db.QueryRow(`SELECT `+userColumns+` FROM users WHERE email = ?`, e))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, e)
	} else if err != nil {
		return User{}, dbErr(err)
	}
	return u, nil
}

// SetPassword replaces a user's password and ends all their sessions, so
// a password change throws out whoever knew the old one.
func (s *Store) SetPassword(userID int64, password []byte) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := s.hasher.hash(password)
	if err != nil {
		return err
	}
	err = s.tx(func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE users SET password = ? WHERE id = ?`, h, userID)
		if err != nil {
			return dbErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr(err)
		} else if n == 0 {
			return fmt.Errorf("%w: user %d", ErrNotFound, userID)
		}
		if _, err := tx.Exec(`DELETE FROM sessions WHERE user_id = ?`, userID); err != nil {
			return dbErr(err)
		}
		return nil
	})
	s.invalidate()
	return err
}

// ---- Memberships ----

func checkRole(r Role) error {
	if !r.IsValid() {
		return fmt.Errorf("%w: role %v", ErrInvalid, r)
	}
	return nil
}

func exists(tx *sql.Tx, query string, arg any) (bool, error) {
	var one int
	err := tx.QueryRow(query, arg).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// AddMember makes a user a member of org with role r; ErrExists if they
// already are, ErrNotFound if the org or user does not exist.
func (s *Store) AddMember(org, userID int64, r Role) error {
	if err := checkRole(r); err != nil {
		return err
	}
	added := ts(s.now())
	return s.tx(func(tx *sql.Tx) error {
		if ok, err := exists(tx, `SELECT 1 FROM orgs WHERE id = ?`, org); err != nil {
			return dbErr(err)
		} else if !ok {
			return fmt.Errorf("%w: organisation %d", ErrNotFound, org)
		}
		if ok, err := exists(tx, `SELECT 1 FROM users WHERE id = ?`, userID); err != nil {
			return dbErr(err)
		} else if !ok {
			return fmt.Errorf("%w: user %d", ErrNotFound, userID)
		}
		res, err := tx.Exec(`INSERT INTO members (org, user_id, role, added) VALUES (?, ?, ?, ?)
			ON CONFLICT (org, user_id) DO NOTHING`, org, userID, int64(r), added)
		if err != nil {
			return dbErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr(err)
		} else if n == 0 {
			return fmt.Errorf("%w: user %d is already a member of organisation %d", ErrExists, userID, org)
		}
		return nil
	})
}

// changeMember runs in a write transaction: it reads the member's role,
// refuses with ErrLastOwner if the change would leave org without an
// Owner, and otherwise applies it. Because the transaction holds the write
// lock from its start, two requests demoting the last two owners cannot
// both see the other one still in place.
func (s *Store) changeMember(org, userID int64, newRole Role, remove bool) error {
	err := s.tx(func(tx *sql.Tx) error {
		var cur int64
		err := tx.QueryRow(`SELECT role FROM members WHERE org = ? AND user_id = ?`, org, userID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: user %d in organisation %d", ErrNotFound, userID, org)
		} else if err != nil {
			return dbErr(err)
		}
		if Role(cur) == Owner && (remove || newRole != Owner) {
			var owners int
			if err := tx.QueryRow(`SELECT count(*) FROM members WHERE org = ? AND role = ?`, org, int64(Owner)).Scan(&owners); err != nil {
				return dbErr(err)
			}
			if owners <= 1 {
				return ErrLastOwner
			}
		}
		if remove {
			_, err = tx.Exec(`DELETE FROM members WHERE org = ? AND user_id = ?`, org, userID)
		} else {
			_, err = tx.Exec(`UPDATE members SET role = ? WHERE org = ? AND user_id = ?`, int64(newRole), org, userID)
		}
		if err != nil {
			return dbErr(err)
		}
		return nil
	})
	s.invalidate()
	return err
}

// SetRole changes a member's role. Demoting the organisation's last Owner
// gives ErrLastOwner.
func (s *Store) SetRole(org, userID int64, r Role) error {
	if err := checkRole(r); err != nil {
		return err
	}
	return s.changeMember(org, userID, r, false)
}

// RemoveMember ends a membership. Removing the organisation's last Owner
// gives ErrLastOwner. The organisation's API tokens stay: they belong to
// the organisation, not to whoever created them.
func (s *Store) RemoveMember(org, userID int64) error {
	return s.changeMember(org, userID, 0, true)
}

// Members returns the members of org, sorted by email.
func (s *Store) Members(org int64) ([]Membership, error) {
	rows, err := s.db.Query(`SELECT u.id, u.email, u.instance_owner, u.created, m.role, m.added
		FROM members m JOIN users u ON u.id = m.user_id WHERE m.org = ? ORDER BY u.email`, org)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		var role, added int64
		if m.User, err = scanUser(rows, &role, &added); err != nil {
			return nil, dbErr(err)
		}
		m.Role, m.Added = Role(role), fromTS(added)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return out, nil
}

// RoleOf returns a user's role in org, or ErrNotFound if they are not a
// member.
func (s *Store) RoleOf(org, userID int64) (Role, error) {
	var r int64
	err := s.db.QueryRow(`SELECT role FROM members WHERE org = ? AND user_id = ?`, org, userID).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: user %d in organisation %d", ErrNotFound, userID, org)
	} else if err != nil {
		return 0, dbErr(err)
	}
	if !Role(r).IsValid() {
		return 0, fmt.Errorf("identity: internal error: stored role %d", r)
	}
	return Role(r), nil
}
