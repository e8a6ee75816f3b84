package vault

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// FuzzOpenSealed: decrypting arbitrary bytes never panics and fails with
// ErrCorrupt, whatever the nonce, ciphertext or wrapped-key length; the one
// input that opens is the genuine seal, and any seal round-trips.
func FuzzOpenSealed(f *testing.F) {
	key := bytes.Repeat([]byte{7}, keySize)
	aad := secretAAD("t1", "k", APIKey)
	// A fixed nonce: every fuzz worker must compute the same genuine seal.
	nonce, ct, err := seal(bytes.NewReader(make([]byte, nonceSize)), key, []byte("genuine"), aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(nonce, ct, []byte("plaintext"))
	f.Add(nonce[:11], ct, []byte{})                 // short nonce: GCM would panic
	f.Add(append(nonce, 0), ct, []byte{0})          // long nonce
	f.Add(nonce, ct[:len(ct)-1], []byte{1, 2})      // truncated tag
	f.Add(nonce, ct[:tagSize-1], []byte{})          // shorter than a tag
	f.Add([]byte{}, []byte{}, []byte{})             // nothing
	f.Add(nonce, append(ct, 0), []byte("trailing")) // trailing byte
	f.Fuzz(func(t *testing.T, n, c, plaintext []byte) {
		genuine := bytes.Equal(n, nonce) && bytes.Equal(c, ct)
		pt, err := openSealed(key, n, c, aad)
		switch {
		case genuine && (err != nil || string(pt) != "genuine"):
			t.Fatalf("the genuine seal does not open: %v", err)
		case !genuine && err == nil:
			t.Fatalf("forged ciphertext opened: nonce %x ct %x", n, c)
		case !genuine && !errors.Is(err, ErrCorrupt):
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
		// Arbitrary bytes as a wrapped data key: refused, never a panic.
		if _, err := unwrapDEK(key, append(n[:len(n):len(n)], c...), "t1"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("arbitrary wrapped key: %v, want ErrCorrupt", err)
		}
		// Any plaintext seals and opens, and not under another tenant.
		n2, c2, err := seal(rand.Reader, key, plaintext, aad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := openSealed(key, n2, c2, aad)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip failed: %v", err)
		}
		if _, err := openSealed(key, n2, c2, secretAAD("t2", "k", APIKey)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("opened under another tenant: %v", err)
		}
		// Typed values: the splitters never panic on arbitrary bytes.
		_ = checkValue(Basic, plaintext)
		_ = checkValue(OAuth, plaintext)
	})
}
