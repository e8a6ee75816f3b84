package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestScanSecretsCLI(t *testing.T) {
	cmd := exec.Command(binPath, "scan", "secrets", "--jsonl")
	// A fake key of the right shape, a hard negative, a bad line, a blank line.
	cmd.Stdin = strings.NewReader(`{"text": "export AWS_ACCESS_KEY_ID=AKIAZ7Q3RV2MB4NXKD5P"}` + "\n" +
		`{"text": "id 123e4567-e89b-12d3-a456-426614174000"}` + "\n" +
		`not json` + "\n\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got:\n%s", out)
	}
	var first struct {
		Secret   bool `json:"secret"`
		Findings []struct {
			Kind       string
			Start, End int
		} `json:"findings"`
	}
	json.Unmarshal([]byte(lines[0]), &first)
	if !first.Secret || len(first.Findings) != 1 || first.Findings[0].Start != 25 || first.Findings[0].End != 45 {
		t.Fatalf("line 1: %s", lines[0])
	}
	if lines[1] != `{"secret":false,"findings":[]}` {
		t.Fatalf("line 2: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"error"`) {
		t.Fatalf("line 3: %s", lines[2])
	}
}
