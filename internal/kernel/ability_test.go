package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/clawkeep/clawkeep/internal/ability"
	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

const abilityTools = `
  tools:
    - inline: {name: send, labels: {clawkeep.dev/builtin: file.write, clawkeep.dev/service: gmail, clawkeep.dev/action: send}, description: w, input_schema: {type: object}}
    - inline: {name: inbox, labels: {clawkeep.dev/builtin: echo, clawkeep.dev/service: gmail, clawkeep.dev/action: read}, description: e, input_schema: {type: object}, annotations: {readOnlyHint: true}}
    - inline: {name: echo, description: e, input_schema: {type: object}, annotations: {readOnlyHint: true}}
  sandbox:
    inline: {level: none, capabilities: {filesystem: {mode: full}}}
  policies: [{inline: {rules: [{id: all, action: allow, scope: all}]}}]
`

// abilityFixture is an autonomous agent whose policy allows everything, so
// that only the abilities decide.
func abilityFixture(t *testing.T, grants ...ability.Ability) *fixture {
	t.Helper()
	set, err := ability.NewSet(grants)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir()}
	claw, err := manifest.Parse([]byte(fmt.Sprintf(head, "")+`  identity: {inline: {personality: p, autonomy: autonomous}}`+abilityTools), manifest.Options{File: "test.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.openStores(claw)
	cfg.Abilities = &set
	if f.k, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAgentWithNoAbilitiesRunsNothing(t *testing.T) {
	f := abilityFixture(t)
	for _, tool := range []string{"send", "inbox", "echo"} {
		e := wantCode(t, func() error {
			_, err := f.call(tool, "z-"+tool, map[string]any{"path": "x", "content": "y"})
			return err
		}(), ckp.CodePolicyDenied)
		if e.Layer != LayerAbility {
			t.Fatalf("%s refused by layer %q, want ability", tool, e.Layer)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an ungranted send reached the workspace")
	}
}

func TestGrantOfOneActionDoesNotGrantItsNeighbours(t *testing.T) {
	f := abilityFixture(t, ability.Ability{Service: "gmail", Actions: map[string]ability.Mode{"read": ability.Automatic, "send": ability.Disabled}})
	if _, err := f.call("inbox", "r1", map[string]any{}); err != nil {
		t.Fatalf("granted read refused: %v", err)
	}
	wantCode(t, func() error { _, err := f.call("send", "s1", map[string]any{"path": "x", "content": "y"}); return err }(), ckp.CodePolicyDenied)
	// echo is action "echo" of service "local", which nobody granted.
	wantCode(t, func() error { _, err := f.call("echo", "e1", map[string]any{}); return err }(), ckp.CodePolicyDenied)
}

func TestApprovalAbilityOverridesAPolicyAllow(t *testing.T) {
	f := abilityFixture(t, ability.Ability{Service: "gmail", Actions: map[string]ability.Mode{"send": ability.Approval}})
	done := make(chan error, 1)
	go func() { _, err := f.call("send", "a1", map[string]any{"path": "x", "content": "y"}); done <- err }()
	if err := f.k.Decide(context.Background(), "a1", false, "tester", "no"); err != nil {
		t.Fatalf("the send was not waiting for approval: %v", err)
	}
	wantCode(t, <-done, ckp.CodeApprovalDenied)
	if _, err := os.Stat(filepath.Join(f.dir, "ws", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rejected send reached the workspace")
	}
	reqs, err := f.approvals.Pending()
	if err != nil || len(reqs) != 0 {
		t.Fatalf("pending after decision: %v %v", reqs, err)
	}
	go func() { _, err := f.call("send", "a2", map[string]any{"path": "x", "content": "y"}); done <- err }()
	if err := f.k.Decide(context.Background(), "a2", true, "tester", ""); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("approved send: %v", err)
	}
}

func TestAbilityCredentialNeedsAVault(t *testing.T) {
	set, err := ability.NewSet([]ability.Ability{{Service: "gmail", Actions: map[string]ability.Mode{"send": ability.Automatic},
		Credential: &ability.Credential{Name: "gm", Hosts: []string{"gmail.example"}, Header: "Authorization", Format: "Bearer %s"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir()}
	claw, err := manifest.Parse([]byte(fmt.Sprintf(head, "")+`  identity: {inline: {personality: p, autonomy: autonomous}}`+abilityTools), manifest.Options{File: "test.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.openStores(claw)
	cfg.Abilities = &set
	if _, err := New(cfg); err == nil {
		t.Fatal("a kernel bound an ability's credential with no vault to read it from")
	}
}
