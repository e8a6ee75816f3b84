package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ErrKeyFile is wrapped by Open and Verify when audit.key is missing,
// malformed, readable by others, or labelled for another tenant.
var ErrKeyFile = errors.New("audit: key file refused")

// The key file is three lines: a version, the tenant label (Go-quoted, so
// it is one line whatever it holds) and the seed in base64.
const (
	keyHeader       = "clawkeep audit key v1\n"
	keyTenantPrefix = "tenant "
	keySeedPrefix   = "seed "
)

// marshalKey writes the seed labelled with its tenant, so that one tenant's
// directory cannot be opened as another's by mistake.
func marshalKey(tenant string, seed []byte) []byte {
	return []byte(keyHeader +
		keyTenantPrefix + strconv.Quote(tenant) + "\n" +
		keySeedPrefix + base64.StdEncoding.EncodeToString(seed) + "\n")
}

// parseKey accepts exactly what marshalKey writes, byte for byte: one
// spelling per key, so nothing can hide in a comment or trailing data.
func parseKey(data []byte) (tenant string, seed []byte, err error) {
	rest, ok := bytes.CutPrefix(data, []byte(keyHeader+keyTenantPrefix))
	if !ok {
		return "", nil, fmt.Errorf("%w: not a clawkeep audit key", ErrKeyFile)
	}
	label, rest, _ := bytes.Cut(rest, []byte("\n"))
	if tenant, err = strconv.Unquote(string(label)); err != nil {
		return "", nil, fmt.Errorf("%w: malformed tenant label", ErrKeyFile)
	}
	b64, ok := bytes.CutPrefix(rest, []byte(keySeedPrefix))
	if !ok {
		return "", nil, fmt.Errorf("%w: no seed line", ErrKeyFile)
	}
	seed, err = base64.StdEncoding.DecodeString(string(bytes.TrimSuffix(b64, []byte("\n"))))
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("%w: seed is not %d bytes of base64", ErrKeyFile, ed25519.SeedSize)
	}
	if !bytes.Equal(marshalKey(tenant, seed), data) {
		return "", nil, fmt.Errorf("%w: not in canonical form", ErrKeyFile)
	}
	return tenant, seed, nil
}

// readKey reads a key file, refusing symlinks, non-regular files and any
// mode that lets group or others read it: a seed others could read signs
// nothing worth trusting.
func readKey(path string) (tenant string, seed []byte, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", nil, fmt.Errorf("%w: %s has mode %#o, want 0600", ErrKeyFile, path, perm)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	defer f.Close()
	// Re-check the opened file: the path could have been swapped since Lstat.
	if fi2, err := f.Stat(); err != nil || !os.SameFile(fi, fi2) {
		return "", nil, fmt.Errorf("%w: %s changed while being opened", ErrKeyFile, path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return parseKey(buf.Bytes())
}

// createKey writes a fresh key without ever exposing a partial file under
// the final name, and never replaces an existing key.
func createKey(path, tenant string) ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("audit: generating key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".audit.key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("audit: writing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(marshalKey(tenant, seed))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // fails if a key appeared meanwhile
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: writing key: %w", err)
	}
	return seed, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func keyMissing(err error) bool { return errors.Is(err, fs.ErrNotExist) }
