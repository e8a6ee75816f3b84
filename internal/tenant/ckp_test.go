package tenant

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzOneLine: whatever a WebSocket frame or POST body holds, it reaches
// the line-based CKP server as exactly one line, and valid JSON stays the
// same JSON.
func FuzzOneLine(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"claw.status"}`))
	f.Add([]byte("{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 1,\n  \"method\": \"claw.status\"\n}"))
	f.Add([]byte("[{\"a\":\"x\\ny\"}]\r\n"))
	f.Add([]byte("not json\nsecond line\r"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		line := oneLine(msg)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("%q became %q: not one line", msg, line)
		}
		if json.Valid(msg) {
			if !json.Valid(line) {
				t.Fatalf("valid JSON %q became invalid %q", msg, line)
			}
			// Numbers too big for a float64 are valid JSON that does not
			// unmarshal; compare meaning where it does.
			var a, b any
			if json.Unmarshal(msg, &a) == nil {
				if err := json.Unmarshal(line, &b); err != nil {
					t.Fatalf("%q decodes, %q does not: %v", msg, line, err)
				}
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				if !bytes.Equal(ja, jb) {
					t.Fatalf("%q changed meaning: %s vs %s", msg, ja, jb)
				}
			}
		}
	})
}

func TestAnswersKnowsNotifications(t *testing.T) {
	for in, want := range map[string]bool{
		`{"jsonrpc":"2.0","method":"claw.initialized"}`:                          false,
		`{"jsonrpc":"2.0","id":1,"method":"claw.status"}`:                        true,
		`{"jsonrpc":"2.0","id":null,"method":"claw.status"}`:                     true,
		`[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]`:        false,
		`[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]`: true,
		`[]`:       true,
		`garbage`:  true,
		`[1,2,3]`:  true,
		`"string"`: true,
	} {
		if got := answers([]byte(in)); got != want {
			t.Errorf("answers(%s) = %v, want %v", in, got, want)
		}
	}
}
