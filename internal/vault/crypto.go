package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	keySize   = 32 // AES-256
	nonceSize = 12 // the GCM standard nonce
	tagSize   = 16

	// formatVersion is bound into every secret's additional data, so a
	// later format can never be opened as this one.
	formatVersion byte = 1

	dekAADPrefix    = "clawkeep vault dek v1"
	secretAADPrefix = "clawkeep vault secret"
	keyCheckLabel   = "clawkeep vault master key check v1"
)

// newGCM returns AES-256-GCM under key. The key length is checked by every
// caller, so an error here is an internal error.
func newGCM(key []byte) cipher.AEAD {
	if len(key) != keySize {
		panic("vault: internal error: key is not 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("vault: internal error: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("vault: internal error: " + err.Error())
	}
	return aead
}

// secretAAD binds a ciphertext to its format version, tenant, name and
// type. The strings are length-prefixed, so no two (tenant, name) pairs
// give the same bytes.
func secretAAD(tenant, name string, t Type) []byte {
	b := make([]byte, 0, len(secretAADPrefix)+1+8+len(tenant)+len(name)+1)
	b = append(b, secretAADPrefix...)
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tenant)))
	b = append(b, tenant...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, byte(t))
}

// dekAAD binds a wrapped data key to its tenant. The prefix has a fixed
// length, so the tenant is everything after it.
func dekAAD(tenant string) []byte { return []byte(dekAADPrefix + tenant) }

// seal encrypts plaintext under key with a fresh nonce from rand.
func seal(rand io.Reader, key, plaintext, aad []byte) (nonce, ciphertext []byte, err error) {
	nonce = make([]byte, nonceSize)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, nil, fmt.Errorf("vault: reading randomness: %w", err)
	}
	return nonce, newGCM(key).Seal(nil, nonce, plaintext, aad), nil
}

// openSealed decrypts what seal wrote. Any nonce or ciphertext that is not
// exactly what seal produced for this key and aad gives ErrCorrupt; it
// never panics on hostile input. The result is a fresh buffer.
func openSealed(key, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != nonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes", ErrCorrupt, len(nonce))
	}
	if len(ciphertext) < tagSize {
		return nil, fmt.Errorf("%w: ciphertext truncated", ErrCorrupt)
	}
	out := make([]byte, 0, len(ciphertext)-tagSize)
	out, err := newGCM(key).Open(out, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrCorrupt)
	}
	return out, nil
}

// wrapDEK stores a data key as nonce || ciphertext.
func wrapDEK(rand io.Reader, master, dek []byte, tenant string) ([]byte, error) {
	nonce, ct, err := seal(rand, master, dek, dekAAD(tenant))
	if err != nil {
		return nil, err
	}
	return append(nonce, ct...), nil
}

// unwrapDEK reverses wrapDEK and checks the key length.
func unwrapDEK(master, wrapped []byte, tenant string) ([]byte, error) {
	if len(wrapped) != nonceSize+keySize+tagSize {
		return nil, fmt.Errorf("%w: wrapped data key of tenant %q is %d bytes", ErrCorrupt, tenant, len(wrapped))
	}
	dek, err := openSealed(master, wrapped[:nonceSize], wrapped[nonceSize:], dekAAD(tenant))
	if err != nil {
		return nil, fmt.Errorf("%w (data key of tenant %q)", err, tenant)
	}
	return dek, nil
}

// keyCheck is a value that identifies the master key without revealing
// it: HMAC is a PRF, so the check value says nothing about the key.
func keyCheck(master []byte) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(keyCheckLabel))
	return m.Sum(nil)
}

// readKeyFile reads a master key file. It refuses anything but a regular
// file of exactly 32 bytes with no group or other permissions, checked on
// the open descriptor so the file cannot be swapped between check and read.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: master key file: %w", ErrLocked, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: master key file: %w", ErrLocked, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: master key file %s is not a regular file", ErrLocked, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: master key file %s has mode %04o; group and others must have no access (chmod 600)", ErrLocked, path, perm)
	}
	key := make([]byte, keySize+1) // one more, to see a longer file
	n, err := io.ReadFull(f, key)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		clear(key)
		return nil, fmt.Errorf("%w: master key file: %w", ErrLocked, err)
	}
	if n != keySize {
		clear(key)
		return nil, fmt.Errorf("%w: master key file %s is not exactly %d bytes (truncated or not a key)", ErrLocked, path, keySize)
	}
	return key[:keySize], nil
}

// writeKeyFile creates path (which must not exist) holding key, mode 0600,
// and syncs it and its directory.
func writeKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("vault: creating master key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("vault: writing master key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("vault: writing master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vault: writing master key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// replaceKeyFile atomically replaces path with a file holding key.
func replaceKeyFile(path string, key []byte) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vault: %w", err)
	}
	if err := writeKeyFile(tmp, key); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vault: replacing master key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("vault: syncing %s: %w", dir, err)
	}
	return nil
}
