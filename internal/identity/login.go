package identity

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Login checks email and password and returns a new session token
// (shown once) and the user.
//
// A wrong email and a wrong password both give ErrBadCredentials and cost
// one Argon2id computation, so neither the answer nor its timing says
// whether the email has an account. Every attempt counts against the email
// before the password is checked; once LockoutAfter attempts have failed,
// the next one locks the email for LockoutFor and every attempt while
// locked gives ErrLocked, even with the right password. Emails without an
// account lock the same way. A successful login clears the count.
func (s *Store) Login(email string, password []byte) (token string, u User, err error) {
	// No stored password is longer than maxPassword, so cutting a longer
	// one to maxPassword+1 bytes keeps it wrong and bounds the hash work.
	if len(password) > maxPassword {
		password = password[:maxPassword+1]
	}
	e, err := normEmail(email)
	if err != nil {
		// No account can have this email; pay for a hash anyway.
		s.hasher.verifyDummy(password)
		return "", User{}, ErrBadCredentials
	}
	if err := s.reserveAttempt(e); err != nil {
		return "", User{}, err
	}
	var stored string
	u, err = scanUser(s.db.QueryRow(`SELECT `+userColumns+`, password FROM users WHERE email = ?`, e), &stored)
	ok := false
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.hasher.verifyDummy(password)
	case err != nil:
		return "", User{}, dbErr(err)
	default:
		if ok, err = s.hasher.verify(password, stored); err != nil {
			return "", User{}, err
		}
	}
	if !ok {
		return "", User{}, ErrBadCredentials
	}
	plain, hash, err := newSecret(prefixSession)
	if err != nil {
		return "", User{}, err
	}
	id, err := newID()
	if err != nil {
		return "", User{}, err
	}
	now := s.now()
	err = s.tx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM login_failures WHERE email = ?`, e); err != nil {
			return dbErr(err)
		}
		// Sweep expired sessions here rather than on the request path.
		if _, err := tx.Exec(`DELETE FROM sessions WHERE expires <= ?`, ts(now)); err != nil {
			return dbErr(err)
		}
		_, err := tx.Exec(`INSERT INTO sessions (hash, id, user_id, created, expires) VALUES (?, ?, ?, ?, ?)`,
			hash[:], id, u.ID, ts(now), ts(now.Add(s.sessionTTL)))
		if err != nil {
			return dbErr(err)
		}
		return nil
	})
	if err != nil {
		return "", User{}, err
	}
	return plain, u, nil
}

// reserveAttempt counts one login attempt for email, or returns ErrLocked.
// Counting before the password check means that N parallel guesses cannot
// all slip in under the limit.
func (s *Store) reserveAttempt(email string) error {
	now := s.now()
	s.pruneFailures(now)
	locked := false
	err := s.tx(func(tx *sql.Tx) error {
		var failed, until int64
		err := tx.QueryRow(`SELECT failed, locked_until FROM login_failures WHERE email = ?`, email).Scan(&failed, &until)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return dbErr(err)
		}
		switch {
		case until > ts(now):
			locked = true
			return nil
		case until != 0: // an earlier lock has run out: start counting afresh
			failed, until = 0, 0
		}
		if failed >= int64(s.lockoutAfter) {
			locked = true
			failed, until = 0, ts(now.Add(s.lockoutFor))
		} else {
			failed++
		}
		_, err = tx.Exec(`INSERT INTO login_failures (email, failed, locked_until, last) VALUES (?, ?, ?, ?)
			ON CONFLICT (email) DO UPDATE SET failed = excluded.failed, locked_until = excluded.locked_until, last = excluded.last`,
			email, failed, until, ts(now))
		if err != nil {
			return dbErr(err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if locked {
		return ErrLocked
	}
	return nil
}

// pruneFailures forgets idle, unlocked failure counts, at most once an
// hour, so that guesses at many made-up emails do not grow the file
// without bound.
func (s *Store) pruneFailures(now time.Time) {
	last := s.lastPrune.Load()
	if now.UnixNano()-last < int64(time.Hour) || !s.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	// Best effort: a failed sweep only leaves rows for the next one.
	s.db.Exec(`DELETE FROM login_failures WHERE last < ? AND locked_until <= ?`,
		ts(now.Add(-failureMemory)), ts(now))
}

// Logout ends the session whose token is given. Ending a session that does
// not exist (or has already ended) is not an error; a token that is not a
// session token gives ErrUnauthenticated.
func (s *Store) Logout(token string) error {
	kind, hash, ok := parseBearer(token)
	if !ok || kind != Session {
		return ErrUnauthenticated
	}
	_, err := s.db.Exec(`DELETE FROM sessions WHERE hash = ?`, hash[:])
	s.invalidate()
	if err != nil {
		return fmt.Errorf("identity: logging out: %w", err)
	}
	return nil
}
