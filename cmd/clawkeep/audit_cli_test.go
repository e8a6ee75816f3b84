package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAuditVerifyCLIDetectsTampering edits the audit database of a real
// run with plain SQL and checks `clawkeep audit verify` exits 1 naming the
// first bad record (the audit package tests every tampering form; this
// checks the command reports them).
func TestAuditVerifyCLIDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		seq       string
	}{
		{"modified decision", `UPDATE records SET decision = 'allow' WHERE seq = 3`, "seq 3"},
		{"deleted record", `DELETE FROM records WHERE seq = 2`, "seq 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			p := start(t, dataDir, "--manifest", conformanceManifest)
			p.mustInitialize("claw://local/claw/conformance")
			resultText(t, p.call("claw.tool.call", toolParams("echo", "t-1", map[string]any{"text": "a"})))
			wantError(t, p.call("claw.tool.call", toolParams("destructive-tool", "t-2", map[string]any{"path": "a"})), -32011)
			resultText(t, p.call("claw.tool.call", toolParams("echo", "t-3", map[string]any{"text": "b"})))
			wantResult(t, p.call("claw.shutdown", map[string]any{}))
			<-p.done
			p.cmd.Wait()
			if out, code := clawkeepCmd(t, "audit", "verify", "--data-dir", dataDir); code != 0 {
				t.Fatalf("untouched log does not verify: %s", out)
			}

			db, err := sql.Open("sqlite", filepath.Join(dataDir, "audit.db"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			db.Close()
			out, code := clawkeepCmd(t, "audit", "verify", "--data-dir", dataDir)
			if code != 1 || !strings.Contains(out, tc.seq) {
				t.Fatalf("verify after %q: exit %d\n%s", tc.sql, code, out)
			}
		})
	}
}
