package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/clawkeep/clawkeep/internal/manifest"
)

// Token plaintexts are a prefix naming the kind, then 32 random bytes as
// unpadded base64url. The prefix is part of what is hashed, so a secret of
// one kind re-labelled as another matches nothing.
const (
	prefixSession   = "cks_"
	prefixAPI       = "ckt_"
	prefixAgent     = "cka_"
	prefixBootstrap = "ckb_"

	secretBytes = 32
	tokenLen    = 4 + 43 // prefix + base64url of 32 bytes without padding
)

var b64 = base64.RawURLEncoding.Strict()

// newSecret returns a fresh plaintext with prefix and its SHA-256.
func newSecret(prefix string) (string, [32]byte, error) {
	var raw [secretBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("identity: %w", err)
	}
	plain := prefix + b64.EncodeToString(raw[:])
	return plain, sha256.Sum256([]byte(plain)), nil
}

// parseSecret checks that s is prefix followed by the canonical base64url
// of exactly 32 bytes and returns its hash. It touches no database, so
// junk costs a request nothing but this.
func parseSecret(s, prefix string) ([32]byte, bool) {
	if len(s) != tokenLen || !strings.HasPrefix(s, prefix) {
		return [32]byte{}, false
	}
	// Strict decoding refuses non-zero trailing bits, and the re-encoding
	// check refuses the '\r' and '\n' the decoder skips, so each secret
	// has exactly one spelling.
	raw, err := b64.DecodeString(s[len(prefix):])
	if err != nil || len(raw) != secretBytes || b64.EncodeToString(raw) != s[len(prefix):] {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(s)), true
}

// parseBearer parses a token Authenticate accepts: session, API or agent.
func parseBearer(s string) (Kind, [32]byte, bool) {
	for _, c := range []struct {
		prefix string
		kind   Kind
	}{{prefixSession, Session}, {prefixAPI, APIToken}, {prefixAgent, AgentToken}} {
		if h, ok := parseSecret(s, c.prefix); ok {
			return c.kind, h, true
		}
	}
	return 0, [32]byte{}, false
}

// newID returns a random public identifier of 12 hex digits.
func newID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// checkLabel accepts 1 to max bytes of printable UTF-8 without leading or
// trailing space: no control or bidi characters that could make a token
// list show something other than what is stored.
func checkLabel(what, s string, max int) error {
	ok := len(s) >= 1 && len(s) <= max && utf8.ValidString(s) && strings.TrimSpace(s) == s
	for _, r := range s {
		if !ok {
			break
		}
		ok = unicode.IsPrint(r)
	}
	if !ok {
		return fmt.Errorf("%w: %s %q (want 1 to %d printable bytes)", ErrInvalid, what, s, max)
	}
	return nil
}

// checkAgent accepts the manifest's agent names.
func checkAgent(agent string) error {
	if !manifest.ValidName(agent) {
		return fmt.Errorf("%w: agent name %q", ErrInvalid, agent)
	}
	return nil
}

// CreateToken creates an API token for org with role r and returns its
// plaintext, shown once. A zero expires means it never expires; otherwise
// it must be in the future.
func (s *Store) CreateToken(org int64, name string, r Role, createdBy string, expires time.Time) (plaintext string, t Token, err error) {
	if err := checkLabel("token name", name, 64); err != nil {
		return "", Token{}, err
	}
	if err := checkRole(r); err != nil {
		return "", Token{}, err
	}
	if !expires.IsZero() && !expires.After(s.now()) {
		return "", Token{}, fmt.Errorf("%w: token expiry %v is not in the future", ErrInvalid, expires)
	}
	return s.createToken(Token{Org: org, Name: name, Role: r, CreatedBy: createdBy, Expires: expires}, prefixAPI)
}

// CreateAgentToken creates a token for an agent of org and returns its
// plaintext, shown once. It does not expire; revoke it with RevokeToken
// or RevokeAgentTokens.
func (s *Store) CreateAgentToken(org int64, agent string, createdBy string) (plaintext string, t Token, err error) {
	if err := checkAgent(agent); err != nil {
		return "", Token{}, err
	}
	return s.createToken(Token{Org: org, Name: agent, Agent: agent, CreatedBy: createdBy}, prefixAgent)
}

func (s *Store) createToken(t Token, prefix string) (string, Token, error) {
	if err := checkLabel("creator", t.CreatedBy, 254); err != nil {
		return "", Token{}, err
	}
	plain, hash, err := newSecret(prefix)
	if err != nil {
		return "", Token{}, err
	}
	if t.ID, err = newID(); err != nil {
		return "", Token{}, err
	}
	t.Created = fromTS(ts(s.now()))
	t.Expires = fromTS(ts(t.Expires))
	err = s.tx(func(tx *sql.Tx) error {
		if ok, err := exists(tx, `SELECT 1 FROM orgs WHERE id = ?`, t.Org); err != nil {
			return dbErr(err)
		} else if !ok {
			return fmt.Errorf("%w: organisation %d", ErrNotFound, t.Org)
		}
		_, err := tx.Exec(`INSERT INTO tokens (id, hash, org, name, role, agent, created_by, created, expires)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, hash[:], t.Org, t.Name, int64(t.Role), t.Agent, t.CreatedBy, ts(t.Created), ts(t.Expires))
		if err != nil {
			return dbErr(err)
		}
		return nil
	})
	if err != nil {
		return "", Token{}, err
	}
	return plain, t, nil
}

// Tokens returns the API and agent tokens of org, revoked ones included,
// oldest first. No secrets.
func (s *Store) Tokens(org int64) ([]Token, error) {
	rows, err := s.db.Query(`SELECT id, org, name, role, agent, created_by, created, expires, revoked, last_used
		FROM tokens WHERE org = ? ORDER BY created, rowid`, org)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var role, created, expires, lastUsed int64
		if err := rows.Scan(&t.ID, &t.Org, &t.Name, &role, &t.Agent, &t.CreatedBy, &created, &expires, &t.Revoked, &lastUsed); err != nil {
			return nil, dbErr(err)
		}
		t.Role, t.Created, t.Expires, t.LastUsed = Role(role), fromTS(created), fromTS(expires), fromTS(lastUsed)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return out, nil
}

// RevokeToken revokes the token id of org. An id that is not org's gives
// ErrNotFound, so one organisation cannot revoke, or learn of, another's
// tokens. Revoking twice is not an error.
func (s *Store) RevokeToken(org int64, id string) error {
	res, err := s.db.Exec(`UPDATE tokens SET revoked = 1 WHERE org = ? AND id = ?`, org, id)
	s.invalidate()
	if err != nil {
		return dbErr(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbErr(err)
	} else if n == 0 {
		return fmt.Errorf("%w: token %q in organisation %d", ErrNotFound, id, org)
	}
	return nil
}

// RevokeAgentTokens revokes every token of agent in org.
func (s *Store) RevokeAgentTokens(org int64, agent string) error {
	if err := checkAgent(agent); err != nil {
		return err
	}
	_, err := s.db.Exec(`UPDATE tokens SET revoked = 1 WHERE org = ? AND agent = ?`, org, agent)
	s.invalidate()
	if err != nil {
		return dbErr(err)
	}
	return nil
}

// ---- Authentication ----

// cacheItem is a principal Authenticate found, trusted until until.
type cacheItem struct {
	p     Principal
	until time.Time // before the token's own expiry
}

// invalidate forgets every cached principal. Callers call it after their
// change is committed, so a lookup that starts afterwards sees the change,
// and the generation bump stops a lookup that started before from caching
// what it read.
func (s *Store) invalidate() {
	s.mu.Lock()
	s.gen++
	clear(s.cache)
	s.mu.Unlock()
}

// Authenticate says who a bearer token (session, API or agent) is. Unknown,
// expired, revoked and malformed tokens all give ErrUnauthenticated; a
// malformed one is refused without touching the database.
//
// Results are cached for a few seconds. Changes made through this Store
// (revocations, logouts, password and membership changes) take effect at
// once; changes made by another process are seen within 5 s.
func (s *Store) Authenticate(plaintext string) (Principal, error) {
	kind, hash, ok := parseBearer(plaintext)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	now := s.now()
	s.mu.RLock()
	c, hit := s.cache[hash]
	gen := s.gen // read before the lookup: see invalidate
	s.mu.RUnlock()
	if hit && now.Before(c.until) {
		return c.p, nil
	}
	p, expires, err := s.lookup(kind, hash, now)
	if err != nil {
		return Principal{}, err
	}
	until := now.Add(cacheTTL)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	s.mu.Lock()
	if s.gen == gen {
		if len(s.cache) >= maxCache {
			s.sweepLocked(now)
		}
		s.cache[hash] = cacheItem{p: p, until: until}
	}
	s.mu.Unlock()
	return p, nil
}

// sweepLocked drops expired cache entries, or all of them if that is not
// enough. s.mu must be held for writing.
func (s *Store) sweepLocked(now time.Time) {
	for h, c := range s.cache {
		if !now.Before(c.until) {
			delete(s.cache, h)
		}
	}
	if len(s.cache) >= maxCache {
		clear(s.cache)
	}
}

// lookup reads the principal for a token hash and its expiry (zero for
// never).
func (s *Store) lookup(kind Kind, hash [32]byte, now time.Time) (Principal, time.Time, error) {
	if kind == Session {
		var id string
		var expires int64
		u, err := scanUser(s.db.QueryRow(`SELECT u.id, u.email, u.instance_owner, u.created, s.id, s.expires
			FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = ?`, hash[:]), &id, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return Principal{}, time.Time{}, ErrUnauthenticated
		} else if err != nil {
			return Principal{}, time.Time{}, dbErr(err)
		}
		if expires <= ts(now) {
			return Principal{}, time.Time{}, ErrUnauthenticated
		}
		return Principal{Kind: Session, User: u, TokenID: id}, fromTS(expires), nil
	}
	var p Principal
	var role, expires, lastUsed int64
	var revoked bool
	err := s.db.QueryRow(`SELECT id, org, role, agent, expires, revoked, last_used FROM tokens WHERE hash = ?`, hash[:]).
		Scan(&p.TokenID, &p.Org, &role, &p.Agent, &expires, &revoked, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, time.Time{}, ErrUnauthenticated
	} else if err != nil {
		return Principal{}, time.Time{}, dbErr(err)
	}
	if revoked || expires != 0 && expires <= ts(now) {
		return Principal{}, time.Time{}, ErrUnauthenticated
	}
	// The prefix is hashed, so this only fails if the table is corrupt;
	// refuse rather than hand out the wrong kind of principal.
	switch {
	case kind == APIToken && p.Agent == "" && Role(role).IsValid():
		p.Kind, p.Role = APIToken, Role(role)
	case kind == AgentToken && p.Agent != "" && role == 0:
		p.Kind = AgentToken
	default:
		return Principal{}, time.Time{}, ErrUnauthenticated
	}
	if ts(now)-lastUsed >= int64(lastUsedEvery) {
		// Best effort: LastUsed is advisory, and a failed write must not
		// turn a valid token away. The WHERE keeps concurrent lookups from
		// writing more than once.
		s.db.Exec(`UPDATE tokens SET last_used = ? WHERE id = ? AND last_used <= ?`,
			ts(now), p.TokenID, ts(now.Add(-lastUsedEvery)))
	}
	return p, fromTS(expires), nil
}

// RoleIn returns the role p holds in org. A session holds its user's
// membership role; an API token holds its role in its own organisation
// only; an agent token holds no person role. Anything else gives
// ErrForbidden (ErrUnauthenticated for a Principal of no valid Kind).
func (s *Store) RoleIn(p Principal, org int64) (Role, error) {
	switch p.Kind {
	case Session:
		r, err := s.RoleOf(org, p.User.ID)
		if errors.Is(err, ErrNotFound) {
			return 0, ErrForbidden
		}
		return r, err
	case APIToken:
		if p.Org != org || !p.Role.IsValid() {
			return 0, ErrForbidden
		}
		return p.Role, nil
	case AgentToken:
		return 0, ErrForbidden
	default:
		return 0, ErrUnauthenticated
	}
}

// ---- Bootstrap ----

// Bootstrap returns a one-time token (valid 24 h) that creates the first
// user, if no user exists; it replaces any earlier bootstrap token, so
// only the latest one printed works. If users exist it returns "", nil.
func (s *Store) Bootstrap() (plaintext string, err error) {
	plain, hash, err := newSecret(prefixBootstrap)
	if err != nil {
		return "", err
	}
	expires := s.now().Add(bootstrapTTL)
	issued := false
	err = s.tx(func(tx *sql.Tx) error {
		if ok, err := exists(tx, `SELECT 1 FROM users LIMIT ?`, 1); err != nil {
			return dbErr(err)
		} else if ok {
			return nil
		}
		if _, err := tx.Exec(`DELETE FROM bootstrap`); err != nil {
			return dbErr(err)
		}
		if _, err := tx.Exec(`INSERT INTO bootstrap (one, hash, expires) VALUES (1, ?, ?)`, hash[:], ts(expires)); err != nil {
			return dbErr(err)
		}
		issued = true
		return nil
	})
	if err != nil || !issued {
		return "", err
	}
	return plain, nil
}

// RedeemBootstrap creates the first user, an InstanceOwner, with the
// bootstrap token. The token is deleted in the same transaction that
// creates the user, so of concurrent redeems exactly one succeeds; the
// others, and any redeem once a user exists, give ErrUnauthenticated.
// A bad email or password is refused before the token is used.
func (s *Store) RedeemBootstrap(plaintext, email string, password []byte) (User, error) {
	hash, ok := parseSecret(plaintext, prefixBootstrap)
	if !ok {
		return User{}, ErrUnauthenticated
	}
	// Check the token before createUser pays for a password hash, so a
	// stream of wrong tokens costs a lookup each, not an Argon2id run.
	var one int
	err := s.db.QueryRow(`SELECT 1 FROM bootstrap WHERE hash = ? AND expires > ?`, hash[:], ts(s.now())).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrUnauthenticated
	} else if err != nil {
		return User{}, dbErr(err)
	}
	return s.createUser(email, password, true, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM bootstrap WHERE hash = ? AND expires > ?`, hash[:], ts(s.now()))
		if err != nil {
			return dbErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr(err)
		} else if n != 1 {
			return ErrUnauthenticated
		}
		if ok, err := exists(tx, `SELECT 1 FROM users LIMIT ?`, 1); err != nil {
			return dbErr(err)
		} else if ok {
			return ErrUnauthenticated
		}
		return nil
	})
}
