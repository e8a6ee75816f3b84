package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/clawkeep/clawkeep/internal/scan"
)

const scanUsage = `usage: clawkeep scan secrets --jsonl
       clawkeep scan injection --jsonl [--threshold X]
(lines of {"text": "..."} on stdin, one JSON line out per line in)`

// cmdScan runs the detectors over JSON lines: one input line
// {"text": "..."} gives one output line, in order. Offsets are byte
// offsets into text. A bad line gets {"error": "..."} and the stream goes
// on.
//
//	secrets:   {"secret": true|false, "findings": [{"kind", "start", "end"}]}
//	injection: {"injection": true|false, "score": X, "families": [...], "spans": [[start, end], ...]}
func cmdScan(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "secrets" && args[0] != "injection") {
		fmt.Fprintln(stderr, scanUsage)
		return 2
	}
	fs := flag.NewFlagSet("scan "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonl := fs.Bool("jsonl", false, "read and write JSON lines")
	threshold := fs.Float64("threshold", scan.DefaultInjectionThreshold, "injection: the score at which text counts as an injection")
	if err := fs.Parse(args[1:]); err != nil || !*jsonl || fs.NArg() > 0 {
		fmt.Fprintln(stderr, scanUsage)
		return 2
	}
	var each func(text string) any
	switch args[0] {
	case "secrets":
		det := scan.NewDetector(nil)
		type finding struct {
			Kind  string `json:"kind"`
			Start int    `json:"start"`
			End   int    `json:"end"`
		}
		each = func(text string) any {
			res := struct {
				Secret   bool      `json:"secret"`
				Findings []finding `json:"findings"`
			}{Findings: []finding{}}
			for _, f := range det.Scan([]byte(text)) {
				res.Findings = append(res.Findings, finding{f.Kind, f.Start, f.End})
			}
			res.Secret = len(res.Findings) > 0
			return res
		}
	case "injection":
		if *threshold < 0 || *threshold > 1 {
			fmt.Fprintln(stderr, "clawkeep scan injection: --threshold must be between 0 and 1")
			return 2
		}
		det := scan.NewInjectionDetector()
		each = func(text string) any {
			v := det.ScanThreshold(text, *threshold)
			res := struct {
				Injection bool     `json:"injection"`
				Score     float64  `json:"score"`
				Families  []string `json:"families"`
				Spans     [][2]int `json:"spans"`
			}{v.Injection, v.Score, v.Families, v.Spans}
			if res.Families == nil {
				res.Families = []string{}
			}
			if res.Spans == nil {
				res.Spans = [][2]int{}
			}
			return res
		}
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req struct {
				Text *string `json:"text"`
			}
			if jerr := json.Unmarshal(line, &req); jerr != nil || req.Text == nil {
				enc.Encode(map[string]string{"error": `each line must be a JSON object {"text": "..."}`})
			} else {
				enc.Encode(each(*req.Text))
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
