package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters for new password hashes.
// The zero value means the production parameters (time 3, 64 MiB, 2
// threads). Existing hashes are checked with the parameters stored in them,
// so raising the cost does not lock anybody out.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

const (
	argonKeyLen  = 32
	argonSaltLen = 16

	minPassword = 12
	maxPassword = 1024 // bounds the work an attacker can make one hash do

	// Limits on parameters read back from a stored hash, so that a
	// tampered row cannot make Login allocate gigabytes.
	maxArgonMemoryKiB = 1 << 20
	maxArgonTime      = 64
)

var productionArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

func (p Argon2Params) withDefaults() (Argon2Params, error) {
	if p == (Argon2Params{}) {
		return productionArgon2, nil
	}
	if p.Time == 0 || p.Time > maxArgonTime || p.MemoryKiB < 8*uint32(max(p.Threads, 1)) ||
		p.MemoryKiB > maxArgonMemoryKiB || p.Threads == 0 {
		return Argon2Params{}, fmt.Errorf("%w: argon2 parameters time=%d memory=%dKiB threads=%d",
			ErrInvalid, p.Time, p.MemoryKiB, p.Threads)
	}
	return p, nil
}

func checkPassword(pw []byte) error {
	if len(pw) < minPassword || len(pw) > maxPassword {
		return ErrWeakPassword
	}
	return nil
}

// phc is a parsed Argon2id PHC string.
type phc struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePHC accepts only what String writes: Argon2id, version 19, bounded
// parameters, canonical unpadded base64.
func parsePHC(s string) (phc, error) {
	bad := fmt.Errorf("identity: internal error: stored password hash is not an argon2id PHC string")
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, bad
	}
	var m, t, p uint64
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return phc{}, bad
	}
	for i, dst := range []*uint64{&m, &t, &p} {
		name, val, ok := strings.Cut(kv[i], "=")
		if !ok || name != "mtp"[i:i+1] {
			return phc{}, bad
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != val {
			return phc{}, bad
		}
		*dst = n
	}
	if p > 255 {
		return phc{}, bad
	}
	params, err := Argon2Params{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}.withDefaults()
	if err != nil || params != (Argon2Params{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}) {
		return phc{}, bad
	}
	salt, ok := decodeCanonical(f[4])
	if !ok || len(salt) < 8 || len(salt) > 64 {
		return phc{}, bad
	}
	key, ok := decodeCanonical(f[5])
	if !ok || len(key) < 16 || len(key) > 64 {
		return phc{}, bad
	}
	return phc{params: params, salt: salt, key: key}, nil
}

// hasher runs Argon2id with bounded concurrency and counts its runs.
type hasher struct {
	params Argon2Params  // for new hashes
	slots  chan struct{} // one per Argon2id computation allowed at once
	dummy  phc           // what Login checks when the email has no account

	// runs counts Argon2id computations, so tests can see that a code
	// path paid for a hash without measuring time.
	runs atomic.Int64
}

func newHasher(p Argon2Params, concurrent int) *hasher {
	h := &hasher{params: p, slots: make(chan struct{}, concurrent)}
	// The dummy has the current parameters, so a login for an unknown email
	// costs what a login for an account hashed with them costs.
	h.dummy = phc{params: p, salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen)}
	return h
}

func (h *hasher) key(pw []byte, salt []byte, p Argon2Params, n int) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	h.runs.Add(1)
	return argon2.IDKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, uint32(n))
}

// hash returns a new PHC string for pw with a fresh random salt.
func (h *hasher) hash(pw []byte) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return phc{params: h.params, salt: salt, key: h.key(pw, salt, h.params, argonKeyLen)}.String(), nil
}

// verify reports whether pw matches stored, in time that does not depend
// on where they differ. An unparsable stored hash never matches.
func (h *hasher) verify(pw []byte, stored string) (bool, error) {
	ph, err := parsePHC(stored)
	if err != nil {
		h.verifyDummy(pw)
		return false, err
	}
	got := h.key(pw, ph.salt, ph.params, len(ph.key))
	return subtle.ConstantTimeCompare(got, ph.key) == 1, nil
}

// verifyDummy spends what verify spends, for a login with no account.
func (h *hasher) verifyDummy(pw []byte) {
	got := h.key(pw, h.dummy.salt, h.dummy.params, len(h.dummy.key))
	subtle.ConstantTimeCompare(got, h.dummy.key)
}

// decodeCanonical decodes unpadded standard base64 and accepts only the
// spelling that encoding gives back: the decoder alone skips '\r' and '\n'.
func decodeCanonical(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	return b, err == nil && base64.RawStdEncoding.EncodeToString(b) == s
}
