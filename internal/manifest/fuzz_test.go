package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: whatever the bytes, Parse returns either a non-empty
// *ErrorList or a Claw that keeps the package's invariants; it never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "  tools: [{name: t, description: d, input_schema: {type: object}}]\n"))
	f.Add([]byte(`{"claw":"0.3.0","kind":"Claw","metadata":{"name":"j"},"spec":{"identity":{"inline":{"personality":"p"}},"providers":[{"inline":{"protocol":"custom","endpoint":"http://x","model":"m","auth":{"type":"none"}}}]}}`))
	f.Add([]byte("a: &a [x]\nb: *a\n"))
	for _, dir := range []string{"valid", "conformance", "golden"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, Options{File: "fuzz.yaml"})
		if err != nil {
			var list *ErrorList
			if c != nil || !errors.As(err, &list) || len(*list) == 0 {
				t.Fatalf("want nil Claw and a non-empty *ErrorList, got %v, %T %v", c != nil, err, err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil Claw without error")
		}
		checkInvariants(t, c)
	})
}
