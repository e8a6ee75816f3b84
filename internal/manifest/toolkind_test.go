package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func toolManifest(labels string) string {
	return minimal + `  tools:
    - inline:
        name: t
        description: d
        input_schema: {type: object}
        labels: {` + labels + `}
`
}

func TestExecToolLabel(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(write(t, dir, "claw.yaml", toolManifest(`clawkeep.dev/exec: '["/usr/bin/wc", "-c"]'`)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Tools[0].Exec, " "); got != "/usr/bin/wc -c" {
		t.Fatalf("exec = %q", got)
	}
}

func TestWASMModulePinnedBySHA256(t *testing.T) {
	dir := t.TempDir()
	code := []byte("\x00asm\x01\x00\x00\x00")
	os.WriteFile(filepath.Join(dir, "m.wasm"), code, 0o644)
	sum := sha256.Sum256(code)
	good := hex.EncodeToString(sum[:])
	c, err := Load(write(t, dir, "claw.yaml", toolManifest(`clawkeep.dev/wasm: m.wasm, clawkeep.dev/wasm-sha256: `+good+`, clawkeep.dev/wasm-function: run`)))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Tools[0].WASM; m == nil || m.Function != "run" || string(m.Code) != string(code) || m.SHA256 != good {
		t.Fatalf("wasm = %+v", m)
	}
}

// A tampered or swapped module, a hash in the wrong form, a path out of
// the manifest's directory and a tool of two kinds are each refused with
// a message that names the problem.
func TestToolKindAttacksRefused(t *testing.T) {
	dir := t.TempDir()
	code := []byte("\x00asm\x01\x00\x00\x00")
	os.WriteFile(filepath.Join(dir, "m.wasm"), code, 0o644)
	other := sha256.Sum256([]byte("another module"))
	wrong := hex.EncodeToString(other[:])
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "evil.wasm"), code, 0o644)
	os.Symlink(filepath.Join(outside, "evil.wasm"), filepath.Join(dir, "link.wasm"))
	sum := sha256.Sum256(code)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct{ name, labels, want string }{
		{"tampered module", `clawkeep.dev/wasm: m.wasm, clawkeep.dev/wasm-sha256: ` + wrong, "the manifest pins " + wrong},
		{"uppercase hash", `clawkeep.dev/wasm: m.wasm, clawkeep.dev/wasm-sha256: ` + strings.ToUpper(good), "64 lowercase hex"},
		{"missing hash", `clawkeep.dev/wasm: m.wasm`, "64 lowercase hex"},
		{"hash without module", `clawkeep.dev/wasm-sha256: ` + good, "need clawkeep.dev/wasm"},
		{"parent directory", `clawkeep.dev/wasm: ../m.wasm, clawkeep.dev/wasm-sha256: ` + good, "leaves the manifest directory"},
		{"absolute path", `clawkeep.dev/wasm: /etc/passwd, clawkeep.dev/wasm-sha256: ` + good, "absolute path"},
		{"symlink out", `clawkeep.dev/wasm: link.wasm, clawkeep.dev/wasm-sha256: ` + good, "outside the manifest directory"},
		{"uri", `clawkeep.dev/wasm: "claw://local/tool/x", clawkeep.dev/wasm-sha256: ` + good, "not a URI"},
		{"two kinds", `clawkeep.dev/exec: '["/bin/true"]', clawkeep.dev/builtin: echo`, "exclusive"},
		{"relative command", `clawkeep.dev/exec: '["wc"]'`, "absolute, clean path"},
		{"not an array", `clawkeep.dev/exec: /bin/true`, "JSON array"},
		{"empty array", `clawkeep.dev/exec: '[]'`, "JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, dir, "claw.yaml", toolManifest(tc.labels)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// An inline manifest (from a CKP peer) has no directory to read from.
	_, err := Parse([]byte(toolManifest(`clawkeep.dev/wasm: m.wasm, clawkeep.dev/wasm-sha256: `+good)), Options{File: "inline"})
	if err == nil || !strings.Contains(err.Error(), "did not come from a file") {
		t.Fatalf("inline: %v", err)
	}
}
