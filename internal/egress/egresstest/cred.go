// Package egresstest builds credentials for tests: real values in a real
// vault in a temporary directory, so a test exercises the same path as
// clawkeep run.
package egresstest

import (
	"path/filepath"
	"testing"

	"github.com/clawkeep/clawkeep/internal/egress"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// BearerCredential stores token as bearer credential name for tenant t1
// and returns it bound to hosts, placed as "Authorization: Bearer ...".
// The vault is closed when the test ends.
func BearerCredential(t testing.TB, name, token string, hosts ...string) egress.Credential {
	t.Helper()
	v, err := vault.Open(filepath.Join(t.TempDir(), "vault"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Put("t1", name, vault.Bearer, []byte(token)); err != nil {
		t.Fatal(err)
	}
	place, err := egress.HeaderPlacement("Authorization", "Bearer %s")
	if err != nil {
		t.Fatal(err)
	}
	return egress.Credential{
		Name: name, Hosts: hosts, Placement: place,
		Secret: func() (*vault.Secret, error) { return v.Get("t1", name) },
	}
}
