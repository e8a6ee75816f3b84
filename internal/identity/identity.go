// Package identity keeps the supervisor's people, organisations, roles,
// login sessions and bearer tokens in a SQLite file.
//
// Most callers use Open, then Authenticate on every request and RoleIn to
// decide what the principal may do in an organisation. Organisation data
// lives elsewhere (in a worker per organisation); this package only says
// who someone is and which role they hold where.
//
// # Threat model
//
// The attacker is on the network in front of the HTTP layer. They guess
// passwords, try to learn which emails have accounts, present forged,
// truncated, expired or revoked tokens, use a token of one organisation
// against another, race a one-time bootstrap token, and try to demote or
// remove the last owner of an organisation so that nobody can administer
// it. Someone who copies the database file must not obtain any password or
// any usable token from it. Other local users must not read the file.
//
// # Guarantees
//
//   - Passwords are stored only as Argon2id hashes (PHC string, per-user
//     random salt). Tokens of every kind are 32 random bytes, returned once,
//     and stored only as SHA-256 of the full plaintext: with 256 bits of
//     entropy a slow hash adds nothing, and a fast one keeps Authenticate
//     cheap. Looking a token up by its hash leaks nothing useful through
//     timing, since an attacker cannot steer the hash.
//   - Login spends one Argon2id computation whether or not the email has an
//     account, and failures are counted per email, including emails with no
//     account, so neither timing nor lockout tells which emails exist.
//     After LockoutAfter failures the email is locked for LockoutFor, even
//     for the right password. Attempts are counted before the password is
//     checked, so parallel guesses cannot exceed the limit. Failure counts
//     idle for a day are forgotten.
//   - At most a few Argon2id computations run at once (each takes 64 MiB
//     with production parameters), so a burst of logins cannot exhaust
//     memory; extra logins wait.
//   - A malformed token (wrong prefix, length or alphabet) is refused
//     without touching the database.
//   - Revoke, Logout, SetPassword, RemoveMember and SetRole take effect for
//     Authenticate on this Store at once. Another Store or process on the
//     same file sees them within the cache lifetime (5 s).
//   - An organisation never loses its last Owner through SetRole or
//     RemoveMember, even when two requests race.
//   - A bootstrap token creates exactly one user, once, and only while no
//     user exists.
//   - Organisation and user IDs are never reused.
package identity

import (
	"errors"
	"fmt"
	"net"
	"time"
)

var (
	ErrNotFound        = errors.New("identity: not found")
	ErrExists          = errors.New("identity: already exists")
	ErrBadCredentials  = errors.New("identity: wrong email or password")
	ErrLocked          = errors.New("identity: account temporarily locked after too many failed logins")
	ErrUnauthenticated = errors.New("identity: unauthenticated")
	ErrForbidden       = errors.New("identity: no role in this organisation")
	ErrWeakPassword    = errors.New("identity: password must be 12 to 1024 bytes")
	ErrLastOwner       = errors.New("identity: an organisation must keep at least one owner")
	ErrInvalid         = errors.New("identity: invalid input")

	errClosed = fmt.Errorf("identity: %w", net.ErrClosed)
)

// Role is what a person or API token may do in one organisation. Roles are
// ordered: each includes the ones below it. The zero Role is invalid and is
// below every role, so a forgotten role grants nothing.
type Role uint8

const (
	Viewer Role = iota + 1
	Member
	Admin
	Owner
)

var roleNames = [...]string{Viewer: "viewer", Member: "member", Admin: "admin", Owner: "owner"}

// ParseRole accepts exactly "viewer", "member", "admin" or "owner": no
// other case, no spaces, no numbers.
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Owner; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: role %q (want viewer, member, admin or owner)", ErrInvalid, s)
}

// IsValid reports whether r is one of the four roles.
func (r Role) IsValid() bool { return r >= Viewer && r <= Owner }

func (r Role) String() string {
	if !r.IsValid() {
		return fmt.Sprintf("Role(%d)", uint8(r))
	}
	return roleNames[r]
}

// AtLeast reports whether r includes min. It is false if either is
// invalid, so an unset role never passes a check.
func (r Role) AtLeast(min Role) bool {
	return r.IsValid() && min.IsValid() && r >= min
}

// Kind says which sort of bearer token a Principal presented. The zero Kind
// is invalid.
type Kind uint8

const (
	Session    Kind = iota + 1 // a person's login session
	APIToken                   // an organisation's API token with a fixed Role
	AgentToken                 // an agent's token; no person role
)

// IsValid reports whether k is one of the three kinds.
func (k Kind) IsValid() bool { return k >= Session && k <= AgentToken }

func (k Kind) String() string {
	switch k {
	case Session:
		return "session"
	case APIToken:
		return "api-token"
	case AgentToken:
		return "agent-token"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Principal is who a presented bearer token is. Only Authenticate makes a
// meaningful one. Which fields are set depends on Kind:
//
//   - Session: User, TokenID (the session's public ID).
//   - APIToken: Org, Role, TokenID.
//   - AgentToken: Org, Agent, TokenID.
type Principal struct {
	Kind    Kind
	User    User
	Org     int64
	Role    Role
	Agent   string
	TokenID string
}

// Org is an organisation (tenant). ID is at least 1 and never reused.
type Org struct {
	ID      int64
	Name    string
	Created time.Time
}

// User is a person who can log in. InstanceOwner marks the first user,
// created through the bootstrap token.
type User struct {
	ID            int64
	Email         string
	InstanceOwner bool
	Created       time.Time
}

// Membership is a user's membership of an organisation. (The brief called
// it Member, which the Member role already names.)
type Membership struct {
	User  User
	Role  Role
	Added time.Time
}

// Token describes an API or agent token; it never holds the secret. For an
// API token Role is set and Agent is empty; for an agent token Agent is set
// and Role is zero. A zero Expires means it never expires.
type Token struct {
	ID        string // random, public, 12 hex digits
	Org       int64
	Name      string
	Role      Role
	Agent     string
	CreatedBy string
	Created   time.Time
	Expires   time.Time
	Revoked   bool
	LastUsed  time.Time // zero if never used; updated at most once a minute
}
