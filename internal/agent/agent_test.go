package agent

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/clawkeep/clawkeep/internal/ckp"
	"github.com/clawkeep/clawkeep/internal/manifest"
)

const pinnedYAML = `claw: "0.3.0"
kind: Claw
metadata: {name: pinned}
spec:
  identity: {inline: {personality: p, autonomy: observer}}
  providers: [{inline: {protocol: custom, endpoint: "http://localhost:1/v1", model: m, auth: {type: none}}}]
`

func mustParse(t *testing.T, s string) *manifest.Claw {
	t.Helper()
	c, err := manifest.Parse([]byte(s), manifest.Options{File: "t.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) int {
	var e *ckp.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// inline returns the pinned manifest as JSON, renamed.
func inline(t *testing.T, name string) json.RawMessage {
	return json.RawMessage(`{"claw":"0.3.0","kind":"Claw","metadata":{"name":"` + name + `"},"spec":{"identity":{"inline":{"personality":"p","autonomy":"autonomous"}},"providers":[{"inline":{"protocol":"custom","endpoint":"http://localhost:1/v1","model":"m","auth":{"type":"none"}}}]}}`)
}

func TestPeerCannotReplaceThePinnedManifest(t *testing.T) {
	h := New(Config{Manifest: mustParse(t, pinnedYAML)})
	// Same name, different (more permissive) content: the pinned one runs.
	got, err := h.settle(inline(t, "pinned"))
	if err != nil || got.Identity.Autonomy != manifest.Observer {
		t.Fatalf("settle = %v, %v; the pinned manifest must win", got, err)
	}
	if _, err := h.settle(inline(t, "other")); code(err) != ckp.CodeInvalidParams {
		t.Fatalf("another manifest was accepted: %v", err)
	}
	for _, uri := range []string{"claw://local/claw/other", "claw://local/tool/pinned", "https://x/pinned", "claw://local/claw/pinned/../x"} {
		if _, err := h.settle(json.RawMessage(`"` + uri + `"`)); err == nil {
			t.Errorf("URI %q accepted", uri)
		}
	}
	for _, uri := range []string{"claw://local/claw/pinned", "claw://claw/pinned", "claw://local/claw/pinned@1.0.0"} {
		if _, err := h.settle(json.RawMessage(`"` + uri + `"`)); err != nil {
			t.Errorf("URI %q refused: %v", uri, err)
		}
	}
}

func TestInlineManifestCannotReadLocalFiles(t *testing.T) {
	h := New(Config{})
	raw := json.RawMessage(`{"claw":"0.3.0","kind":"Claw","metadata":{"name":"x"},"spec":{"identity":"/etc/passwd","providers":["./providers/p.yaml"]}}`)
	if _, err := h.settle(raw); code(err) != ckp.CodeManifestInvalid {
		t.Fatalf("inline manifest with file refs: %v", err)
	}
}

func TestInlineManifestRunsWithoutPin(t *testing.T) {
	h := New(Config{})
	got, err := h.settle(inline(t, "mine"))
	if err != nil || got.Name != "mine" {
		t.Fatalf("settle = %v, %v", got, err)
	}
	if _, err := h.settle(json.RawMessage(`"claw://local/claw/mine"`)); code(err) != ckp.CodeInvalidParams {
		t.Fatalf("URI without any manifest to name: %v", err)
	}
}
