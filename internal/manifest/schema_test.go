package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// officialSchemas compiles the official CKP 0.3.0 JSON Schemas, read from
// the shared directory (they are third-party and not carried in the
// repository), keyed by kind.
func officialSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	dir := filepath.Join(sharedCKP, "schema", "0.3.0")
	needShared(t, dir)
	files, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s", dir)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // everything needed is added below
	ids := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ids[strings.TrimSuffix(filepath.Base(f), ".schema.json")] = id
	}
	out := map[string]*jsonschema.Schema{}
	for _, kind := range allKinds() {
		name := kindSlug(kind)
		if kind == "Claw" {
			name = "claw"
		}
		sch, err := c.Compile(ids[name])
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[kind] = sch
	}
	return out
}

// TestSchemaAgreement checks the Go validation against the official
// schemas over testdata/schema: whatever the schema rejects the loader
// rejects, and whatever the loader accepts the schema accepts, except the
// documents marked "# extension" (clawkeep shorthand or extensions), which
// the schema must then reject, or the mark is stale.
func TestSchemaAgreement(t *testing.T) {
	schemas := officialSchemas(t)
	files, _ := filepath.Glob("testdata/schema/*.yaml")
	if len(files) < 40 {
		t.Fatalf("corpus has %d documents, want at least 40", len(files))
	}
	var valid, invalid int
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := wants(t, f)[0]
			extension := bytes.Contains(data, []byte("\n# extension\n"))
			_, ours := LoadPrimitive(f)
			if (ours == nil) != (want == "valid") {
				t.Fatalf("loader: want %s, got %v", want, ours)
			}
			if want == "valid" {
				valid++
			} else {
				invalid++
			}
			var doc any
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			kind, _ := doc.(map[string]any)["kind"].(string)
			sch := schemas[kind]
			if sch == nil {
				if ours == nil {
					t.Fatalf("loader accepted unknown kind %q", kind)
				}
				return // both refuse: there is no schema for it
			}
			js, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				t.Fatal(err)
			}
			official := sch.Validate(inst)
			switch {
			case official != nil && ours == nil && !extension:
				t.Errorf("loader accepts a document the official schema rejects:\n%v", official)
			case extension && official == nil:
				t.Errorf("marked as an extension but the official schema accepts it")
			case extension && ours != nil:
				t.Errorf("extension document refused by the loader: %v", ours)
			}
		})
	}
	if valid == 0 || invalid == 0 {
		t.Errorf("corpus needs both valid (%d) and invalid (%d) documents", valid, invalid)
	}
}
