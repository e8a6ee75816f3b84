package vault

import (
	"crypto/rand"
	"fmt"
	"testing"
)

// BenchmarkSealOpen is the crypto alone: seal and open a 64-byte secret.
func BenchmarkSealOpen(b *testing.B) {
	key := make([]byte, keySize)
	rand.Read(key)
	aad := secretAAD("tenant", "name", APIKey)
	value := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		n, c, err := seal(rand.Reader, key, value, aad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := openSealed(key, n, c, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads a secret: unwrap the data key, open, record last use
// (one fsync'd SQLite write).
func BenchmarkGet(b *testing.B) {
	v, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	for i := range 100 {
		if err := v.Put("t1", fmt.Sprint("k", i), APIKey, make([]byte, 64)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s, err := v.Get("t1", fmt.Sprint("k", i%100))
		if err != nil {
			b.Fatal(err)
		}
		s.Wipe()
		i++
	}
}

// BenchmarkPut stores a 64-byte secret (one fsync'd transaction).
func BenchmarkPut(b *testing.B) {
	v, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	value := make([]byte, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := v.Put("t1", fmt.Sprint("k", i%100), APIKey, value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRotateMasterKey re-wraps 100 tenants' data keys.
func BenchmarkRotateMasterKey(b *testing.B) {
	dir := b.TempDir()
	v, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	for i := range 100 {
		if err := v.Put(fmt.Sprint("t", i), "k", APIKey, make([]byte, 64)); err != nil {
			b.Fatal(err)
		}
	}
	keys := b.TempDir()
	i := 0
	for b.Loop() {
		if err := v.RotateMasterKey(fmt.Sprintf("%s/%d.key", keys, i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
