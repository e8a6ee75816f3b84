package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

type sandboxReport struct {
	Level    string `json:"level"`
	Outcome  string `json:"outcome"`
	ExitCode int    `json:"exit_code"`
	Meter    string `json:"meter"`
	Reason   string `json:"reason"`
}

// sandboxRun runs the built binary's sandbox run and decodes the report,
// the last line of stderr.
func sandboxRun(t *testing.T, args ...string) (sandboxReport, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"sandbox", "run", "--report", "json"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	var rep sandboxReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("no report: %q", errb.String())
	}
	return rep, out.String(), code
}

func needLevel(t *testing.T, level string) {
	t.Helper()
	rep, _, _ := sandboxRun(t, "--level", level, "--", "/bin/true")
	if rep.Outcome == "refused" {
		if os.Getenv("CLAWKEEP_REQUIRE_ALL") != "" {
			t.Fatalf("level %s: %s", level, rep.Reason)
		}
		t.Skip(rep.Reason)
	}
}

func TestSandboxRunReportsMeters(t *testing.T) {
	for _, level := range []string{"process", "container"} {
		t.Run(level, func(t *testing.T) {
			needLevel(t, level)
			rep, out, code := sandboxRun(t, "--level", level, "--", "/bin/echo", "hi")
			if rep.Outcome != "exited" || code != 0 || out != "hi\n" {
				t.Fatalf("%+v %q %d", rep, out, code)
			}
			rep, _, code = sandboxRun(t, "--level", level, "--timeout", "300ms", "--", "sleep", "10")
			if rep.Outcome != "killed" || rep.Meter != "wall_clock" || code != 137 {
				t.Fatalf("%+v %d", rep, code)
			}
			rep, _, _ = sandboxRun(t, "--level", level, "--cpu-seconds", "1", "--", "sh", "-c", "while :; do :; done")
			if rep.Meter != "cpu_time" {
				t.Fatalf("%+v", rep)
			}
			rep, _, code = sandboxRun(t, "--level", level, "--", "cat", "/etc/shadow")
			if rep.Outcome != "exited" || code == 0 {
				t.Fatalf("%+v %d", rep, code)
			}
		})
	}
}

func TestSandboxRunWASMFuelAndEpoch(t *testing.T) {
	code, err := wasmtime.Wat2Wasm(`(module (func (export "spin") (loop $l (br $l))))`)
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(t.TempDir(), "spin.wasm")
	os.WriteFile(mod, code, 0o644)
	rep, _, exit := sandboxRun(t, "--level", "wasm", "--fuel", "1000000", "--timeout", "30s", "--", mod, "spin")
	if rep.Meter != "fuel" || exit != 137 {
		t.Fatalf("%+v", rep)
	}
	rep, _, _ = sandboxRun(t, "--level", "wasm", "--timeout", "300ms", "--", mod, "spin")
	if rep.Meter != "wall_clock" {
		t.Fatalf("%+v", rep)
	}
}

func TestSandboxRunRefusesVM(t *testing.T) {
	rep, _, code := sandboxRun(t, "--level", "vm", "--", "/bin/true")
	if rep.Outcome != "refused" || code != 125 || !strings.Contains(rep.Reason, "vm") {
		t.Fatalf("%+v %d", rep, code)
	}
}

// A wasm module that is not the one the manifest pins is refused before
// anything compiles it, with both hashes named, and the refusal is in the
// audit chain.
func TestTamperedModuleRefusedAndAudited(t *testing.T) {
	dir := t.TempDir()
	code, err := wasmtime.Wat2Wasm(`(module (func (export "_start")))`)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tool.wasm"), code, 0o644)
	pinned := strings.Repeat("ab", 32) // the hash of some other module
	manifestPath := filepath.Join(dir, "claw.yaml")
	os.WriteFile(manifestPath, []byte(`claw: "0.3.0"
kind: Claw
metadata: {name: pinned}
spec:
  identity: {inline: {personality: p}}
  providers:
    - inline: {protocol: custom, endpoint: "http://x.example", model: m, auth: {type: none}}
  tools:
    - inline: {name: t, description: d, input_schema: {type: object}, labels: {clawkeep.dev/wasm: tool.wasm, clawkeep.dev/wasm-sha256: `+pinned+`}}
  sandbox: {inline: {level: wasm}}
`), 0o644)
	data := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.Command(binPath, "run", "--manifest", manifestPath, "--data-dir", data)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("a tampered module was accepted")
	}
	if !strings.Contains(stderr.String(), "the manifest pins "+pinned) {
		t.Fatalf("the refusal does not name the hashes: %s", stderr.String())
	}
	out, err := exec.Command(binPath, "audit", "tail", "--data-dir", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "manifest") || !strings.Contains(string(out), "refused") || !strings.Contains(string(out), pinned) {
		t.Fatalf("not audited: %v %s", err, out)
	}
}
