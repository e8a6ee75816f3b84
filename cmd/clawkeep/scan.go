package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/clawkeep/clawkeep/internal/scan"
)

// cmdScan runs `clawkeep scan secrets --jsonl`: one input line
// {"text": "..."} gives one output line, in order:
// {"secret": true|false, "findings": [{"kind", "start", "end"}]}.
// Offsets are byte offsets into text. A bad line gets {"error": "..."}
// and the stream goes on.
func cmdScan(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "secrets" || args[1] != "--jsonl" {
		fmt.Fprintln(stderr, "clawkeep scan: use 'scan secrets --jsonl' (lines of {\"text\": \"...\"} on stdin)")
		return 2
	}
	det := scan.NewDetector(nil)
	in := bufio.NewReaderSize(stdin, 64<<10)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	type finding struct {
		Kind  string `json:"kind"`
		Start int    `json:"start"`
		End   int    `json:"end"`
	}
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req struct {
				Text *string `json:"text"`
			}
			if jerr := json.Unmarshal(line, &req); jerr != nil || req.Text == nil {
				enc.Encode(map[string]string{"error": `each line must be a JSON object {"text": "..."}`})
			} else {
				res := struct {
					Secret   bool      `json:"secret"`
					Findings []finding `json:"findings"`
				}{Findings: []finding{}}
				for _, f := range det.Scan([]byte(*req.Text)) {
					res.Findings = append(res.Findings, finding{f.Kind, f.Start, f.End})
				}
				res.Secret = len(res.Findings) > 0
				enc.Encode(res)
			}
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep scan: %v\n", err)
			return 2
		}
	}
}
