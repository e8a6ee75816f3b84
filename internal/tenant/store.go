package tenant

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/clawkeep/clawkeep/internal/ability"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// errNotFound is a lookup that found nothing.
var errNotFound = errors.New("tenant: not found")

// store keeps a worker's agents and their abilities in one SQLite file.
type store struct {
	db *sql.DB
}

type agentRow struct {
	Name    string    `json:"name"`
	SHA256  string    `json:"sha256"`
	Updated time.Time `json:"updated_at"`
}

type abilityRow struct {
	ability.Ability
	Updated time.Time `json:"updated_at"`
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS agents (
	name TEXT PRIMARY KEY,
	manifest BLOB NOT NULL,
	sha256 TEXT NOT NULL,
	updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS abilities (
	agent TEXT NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
	service TEXT NOT NULL,
	body BLOB NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (agent, service)
);`

func openStore(path string) (*store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("tenant: store: %w", err)
	}
	// Create the file ourselves so that it, and the journals SQLite gives
	// the same mode, are 0600.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tenant: store: %w", err)
	}
	f.Close()
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"}}
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("tenant: store: %w", err)
	}
	// database/sql keeps 2 idle connections by default; under concurrent
	// requests the rest would be closed and reopened (a new SQLite
	// connection parses the schema) on every burst.
	db.SetMaxIdleConns(32)
	if _, err := db.Exec(storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("tenant: store schema: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// putAgent stores a manifest; created reports whether it is new.
func (s *store) putAgent(name string, manifest []byte, now time.Time) (row agentRow, created bool, err error) {
	sum := sha256.Sum256(manifest)
	row = agentRow{Name: name, SHA256: hex.EncodeToString(sum[:]), Updated: now.UTC()}
	tx, err := s.db.Begin()
	if err != nil {
		return row, false, err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM agents WHERE name = ?`, name).Scan(&n); err != nil {
		return row, false, err
	}
	if _, err := tx.Exec(`INSERT INTO agents(name, manifest, sha256, updated) VALUES(?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET manifest = excluded.manifest, sha256 = excluded.sha256, updated = excluded.updated`,
		name, manifest, row.SHA256, now.UnixNano()); err != nil {
		return row, false, err
	}
	return row, n == 0, tx.Commit()
}

func (s *store) agent(name string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRow(`SELECT manifest FROM agents WHERE name = ?`, name).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	return b, err
}

func (s *store) agents() ([]agentRow, error) {
	rows, err := s.db.Query(`SELECT name, sha256, updated FROM agents ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []agentRow{}
	for rows.Next() {
		var r agentRow
		var ns int64
		if err := rows.Scan(&r.Name, &r.SHA256, &ns); err != nil {
			return nil, err
		}
		r.Updated = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// deleteAgent removes an agent and, by cascade, its abilities.
func (s *store) deleteAgent(name string) error {
	res, err := s.db.Exec(`DELETE FROM agents WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

func (s *store) putAbility(agent string, a ability.Ability, now time.Time) (abilityRow, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return abilityRow{}, err
	}
	res, err := s.db.Exec(`INSERT INTO abilities(agent, service, body, updated)
		SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM agents WHERE name = ?)
		ON CONFLICT(agent, service) DO UPDATE SET body = excluded.body, updated = excluded.updated`,
		agent, a.Service, body, now.UnixNano(), agent)
	if err != nil {
		return abilityRow{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return abilityRow{}, errNotFound
	}
	return abilityRow{Ability: a, Updated: now.UTC()}, nil
}

func (s *store) deleteAbility(agent, service string) error {
	res, err := s.db.Exec(`DELETE FROM abilities WHERE agent = ? AND service = ?`, agent, service)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// abilities lists an agent's grants. A stored row that no longer decodes
// is an error, never skipped: skipping could only ever widen nothing, but
// an operator must learn the store is damaged.
func (s *store) abilities(agent string) ([]abilityRow, error) {
	rows, err := s.db.Query(`SELECT body, updated FROM abilities WHERE agent = ? ORDER BY service`, agent)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []abilityRow{}
	for rows.Next() {
		var body []byte
		var ns int64
		if err := rows.Scan(&body, &ns); err != nil {
			return nil, err
		}
		a, err := ability.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("tenant: stored ability of %q: %w", agent, err)
		}
		out = append(out, abilityRow{Ability: a, Updated: time.Unix(0, ns).UTC()})
	}
	return out, rows.Err()
}
