package vault

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"
)

// Type is the kind of credential a secret holds. The zero Type is invalid.
type Type uint8

// The types a vault stores. Their numbers are stored in vault.db and bound
// into each ciphertext: never renumber them.
const (
	APIKey Type = iota + 1 // an opaque API key
	Bearer                 // a bearer token
	Basic                  // a user name and password; see BasicValue
	OAuth                  // an access token, refresh token and expiry; see OAuthValue
	File                   // an opaque file (a key, a certificate, a kubeconfig)
)

var typeNames = [...]string{APIKey: "api-key", Bearer: "bearer", Basic: "basic", OAuth: "oauth", File: "file"}

// IsValid reports whether t is one of the declared types.
func (t Type) IsValid() bool { return t >= APIKey && t <= File }

// String returns the type's name, such as "api-key", or "invalid(N)".
func (t Type) String() string {
	if !t.IsValid() {
		return fmt.Sprintf("invalid(%d)", uint8(t))
	}
	return typeNames[t]
}

// ParseType returns the Type named s ("api-key", "bearer", "basic", "oauth"
// or "file").
func ParseType(s string) (Type, error) {
	for t := APIKey; t <= File; t++ {
		if typeNames[t] == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("vault: unknown secret type %q", s)
}

// redacted is what every printed form of a Secret shows.
const redacted = "[redacted]"

// Secret is a decrypted credential. Its bytes belong to the vault package:
// it never prints them (String, GoString, Format, MarshalJSON, MarshalText
// and LogValue all give "[redacted]"), it cannot be compared with ==, and
// Wipe zeroes them. The zero Secret is invalid.
type Secret struct {
	_   [0]func() // not comparable: == would not run in constant time
	typ Type
	b   []byte // nil after Wipe
}

// newSecret takes ownership of b.
func newSecret(t Type, b []byte) *Secret { return &Secret{typ: t, b: b} }

// Type returns the secret's type.
func (s *Secret) Type() Type { return s.typ }

// IsValid reports whether s holds a value: false for the zero Secret and
// after Wipe.
func (s *Secret) IsValid() bool { return s != nil && s.typ.IsValid() && s.b != nil }

// Len returns the length of the value in bytes (0 after Wipe).
func (s *Secret) Len() int { return len(s.b) }

// UnsafeBytes returns the secret value itself, not a copy.
//
// Risk: whatever the caller does with the slice escapes every protection of
// this type. Converting it to a string, appending it, logging it or passing
// it to a formatter makes copies that Wipe cannot reach and that may be
// printed. Use it at the last moment (writing a header, signing a request),
// do not keep it, and do not modify it; it is zeroed by Wipe.
func (s *Secret) UnsafeBytes() []byte { return s.b }

// Equal reports whether s and o hold the same type and value. The
// comparison takes time that depends on the lengths but not the contents.
func (s *Secret) Equal(o *Secret) bool {
	if !s.IsValid() || !o.IsValid() {
		return false
	}
	return subtle.ConstantTimeEq(int32(s.typ), int32(o.typ))&subtle.ConstantTimeCompare(s.b, o.b) == 1
}

// Wipe zeroes the value and forgets it. It reaches only the vault's own
// buffer; see the package doc for what Go cannot wipe.
func (s *Secret) Wipe() {
	if s == nil {
		return
	}
	clear(s.b)
	s.b = nil
}

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so no fmt verb or flag (%x,
// %q, %+v) reaches the bytes.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue returns "[redacted]" for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// The printing methods have value receivers so that a Secret printed or
// marshalled by value (fmt.Print(*s), a struct field) is redacted too.
var (
	_ fmt.Formatter  = Secret{}
	_ fmt.GoStringer = Secret{}
	_ slog.LogValuer = Secret{}
	_ fmt.Formatter  = (*Secret)(nil)
	_ fmt.GoStringer = (*Secret)(nil)
	_ slog.LogValuer = (*Secret)(nil)
)

// errMalformedValue is returned for a value that does not parse as its type.
var errMalformedValue = errors.New("vault: malformed value for its type")

// BasicValue encodes a user name and password as the value of a Basic
// secret: a 2-byte big-endian length, the user, then the password. The
// result is a new buffer holding the password; the caller should clear it
// after Put.
func BasicValue(user string, password []byte) ([]byte, error) {
	if len(user) > 0xffff || !utf8.ValidString(user) {
		return nil, fmt.Errorf("vault: basic user name is not UTF-8 of at most 65535 bytes")
	}
	b := make([]byte, 0, 2+len(user)+len(password))
	b = binary.BigEndian.AppendUint16(b, uint16(len(user)))
	b = append(b, user...)
	return append(b, password...), nil
}

// OAuthValue encodes OAuth tokens and the access token's expiry as the
// value of an OAuth secret: each token with a 4-byte big-endian length,
// then the expiry in Unix seconds (8 bytes; 0 for none). The result is a
// new buffer holding both tokens; the caller should clear it after Put.
func OAuthValue(access, refresh []byte, expiry time.Time) []byte {
	b := make([]byte, 0, 16+len(access)+len(refresh))
	b = binary.BigEndian.AppendUint32(b, uint32(len(access)))
	b = append(b, access...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(refresh)))
	b = append(b, refresh...)
	var unix int64
	if !expiry.IsZero() {
		unix = expiry.Unix()
	}
	return binary.BigEndian.AppendUint64(b, uint64(unix))
}

// Basic splits a Basic secret into its user name and a new Secret holding
// the password (of type Basic). The user name is not treated as secret.
func (s *Secret) Basic() (user string, password *Secret, err error) {
	if !s.IsValid() || s.typ != Basic {
		return "", nil, fmt.Errorf("vault: secret is not a valid basic secret")
	}
	u, p, ok := splitBasic(s.b)
	if !ok {
		return "", nil, errMalformedValue
	}
	return string(u), newSecret(Basic, append([]byte(nil), p...)), nil
}

// OAuth splits an OAuth secret into new Secrets for the access and refresh
// tokens (of type OAuth) and the access token's expiry (zero for none).
func (s *Secret) OAuth() (access, refresh *Secret, expiry time.Time, err error) {
	if !s.IsValid() || s.typ != OAuth {
		return nil, nil, time.Time{}, fmt.Errorf("vault: secret is not a valid oauth secret")
	}
	a, r, unix, ok := splitOAuth(s.b)
	if !ok {
		return nil, nil, time.Time{}, errMalformedValue
	}
	if unix != 0 {
		expiry = time.Unix(unix, 0).UTC()
	}
	return newSecret(OAuth, append([]byte(nil), a...)), newSecret(OAuth, append([]byte(nil), r...)), expiry, nil
}

func splitBasic(b []byte) (user, password []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n || !utf8.Valid(b[2:2+n]) {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}

func splitOAuth(b []byte) (access, refresh []byte, unix int64, ok bool) {
	field := func() ([]byte, bool) {
		if len(b) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			return nil, false
		}
		f := b[4 : 4+n]
		b = b[4+n:]
		return f, true
	}
	if access, ok = field(); !ok {
		return nil, nil, 0, false
	}
	if refresh, ok = field(); !ok {
		return nil, nil, 0, false
	}
	if len(b) != 8 {
		return nil, nil, 0, false
	}
	return access, refresh, int64(binary.BigEndian.Uint64(b)), true
}

// checkValue refuses a value that does not parse as its type, so that Get
// never hands out a Basic or OAuth secret its accessors cannot split.
func checkValue(t Type, v []byte) error {
	switch t {
	case APIKey, Bearer, File:
		return nil
	case Basic:
		if _, _, ok := splitBasic(v); !ok {
			return errMalformedValue
		}
		return nil
	case OAuth:
		if _, _, _, ok := splitOAuth(v); !ok {
			return errMalformedValue
		}
		return nil
	default:
		return fmt.Errorf("vault: invalid secret type %d", uint8(t))
	}
}
