package server

import (
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/vault"
)

// TestOpenAPIDocumentMatchesTheRoutes: the checked-in document names
// exactly the routes served, each with the access the route table gives
// it, and every problem code the API can return.
func TestOpenAPIDocumentMatchesTheRoutes(t *testing.T) {
	var doc struct {
		OpenAPI    string                                      `yaml:"openapi"`
		Paths      map[string]map[string]any                   `yaml:"paths"`
		Components struct{ Schemas map[string]map[string]any } `yaml:"components"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			m, ok := op.(map[string]any)
			if method == "parameters" || !ok {
				continue
			}
			role, _ := m["x-clawkeep-role"].(string)
			documented[strings.ToUpper(method)+" "+path] = role
		}
	}
	for _, rt := range routes() {
		key := rt.method + " " + rt.pattern
		role, ok := documented[key]
		if !ok {
			t.Errorf("%s is served but not documented", key)
			continue
		}
		if role != rt.who.String() {
			t.Errorf("%s: documented for %q, served for %q", key, role, rt.who)
		}
		delete(documented, key)
	}
	for key := range documented {
		t.Errorf("%s is documented but not served", key)
	}
	var enum []string
	for _, v := range doc.Components.Schemas["ProblemCode"]["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	var codes []string
	for _, c := range problem.Codes() {
		codes = append(codes, string(c))
	}
	sort.Strings(enum)
	sort.Strings(codes)
	if strings.Join(enum, ",") != strings.Join(codes, ",") {
		t.Errorf("problem codes documented %v, defined %v", enum, codes)
	}
	var types []string
	for _, v := range doc.Components.Schemas["CredentialType"]["enum"].([]any) {
		types = append(types, v.(string))
	}
	var vaultTypes []string
	for ty := vault.APIKey; ty.IsValid(); ty++ {
		vaultTypes = append(vaultTypes, ty.String())
	}
	if strings.Join(types, ",") != strings.Join(vaultTypes, ",") {
		t.Errorf("credential types documented %v, the vault takes %v", types, vaultTypes)
	}
}

// TestOpenAPIIsServed: clients can fetch the document they are checked
// against.
func TestOpenAPIIsServed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r := f.mustDo("GET", "/v1/openapi.yaml", "", nil, 200)
	if string(r.raw) != string(openAPI) {
		t.Fatal("served document differs from the embedded one")
	}
}
