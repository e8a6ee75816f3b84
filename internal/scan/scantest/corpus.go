package scantest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Line is one labelled corpus entry; Text may hold «markers» (see Expand).
type Line struct {
	Text   string `json:"text"`
	Secret *bool  `json:"secret"` // never nil in a loaded corpus
	Kind   string `json:"kind"`   // set when Secret is true
}

// LoadCorpus reads a JSON Lines corpus strictly: unknown fields, a missing
// label or a secret without a kind are errors naming the line.
func LoadCorpus(path string) ([]Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var l Line
		if err := dec.Decode(&l); err != nil || l.Secret == nil || (*l.Secret && l.Kind == "") {
			return nil, fmt.Errorf("scantest: %s line %d: bad entry (%v)", path, n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Prose is benign text of the kinds tool output is made of (prose, Go code,
// logs, JSON, git output), for building scanner benchmark inputs.
var Prose = []string{
	"The scheduler assigns each task to a worker and retries it with backoff when the upstream is unavailable. ",
	"Operators should rotate keys on a schedule and keep the audit log off the host.\n",
	"func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n\tif err := s.check(r.Context()); err != nil {\n\t\thttp.Error(w, err.Error(), 500)\n\t\treturn\n\t}\n}\n",
	"2026-04-01T12:00:00Z INFO request method=GET path=/v1/items status=200 bytes=5120 latency=12ms\n",
	"2026-04-01T12:00:01Z WARN retrying upstream=api.internal attempt=3 backoff=200ms err=\"connection reset\"\n",
	`{"id":"123e4567-e89b-42d3-a456-426614174000","name":"widget","tags":["a","b"],"count":3}` + "\n",
	"commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Dev <dev@example.org>\n\n    Fix the thing: see https://github.com/org/repo/issues/12\n",
	"for key, value := range cfg { if key == \"mode\" { mode = value } }\n",
}
