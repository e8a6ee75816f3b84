package tenant

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clawkeep/clawkeep/internal/ability"
	"github.com/clawkeep/clawkeep/internal/approval"
	"github.com/clawkeep/clawkeep/internal/audit"
	"github.com/clawkeep/clawkeep/internal/manifest"
	"github.com/clawkeep/clawkeep/internal/problem"
	"github.com/clawkeep/clawkeep/internal/vault"
)

func (w *worker) agentParam(rw http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("agent")
	if !manifest.ValidName(name) {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "agent name: want 1-63 letters, digits or '-', starting with a letter or digit", 0)
		return "", false
	}
	return name, true
}

func (w *worker) listAgents(rw http.ResponseWriter, r *http.Request) {
	rows, err := w.store.agents()
	if err != nil {
		w.internal(rw, err)
		return
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"agents": rows})
}

func (w *worker) putAgent(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") && !strings.HasPrefix(ct, "application/x-yaml") && !strings.HasPrefix(ct, "text/yaml") {
		problem.Write(rw, http.StatusUnsupportedMediaType, problem.UnsupportedMedia, "send the manifest as application/yaml", 0)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxManifestBytes))
	if err != nil {
		problem.Write(rw, http.StatusRequestEntityTooLarge, problem.BodyTooLarge, "manifest over 1 MiB", 0)
		return
	}
	if _, err := parseManifest(name, raw); err != nil {
		problem.Write(rw, http.StatusBadRequest, problem.ManifestInvalid, err.Error(), 0)
		return
	}
	row, created, err := w.store.putAgent(name, raw, w.now())
	if err != nil {
		w.internal(rw, err)
		return
	}
	w.dropPost(name)
	w.record(r, "config", "agent-applied", map[string]string{"agent": name, "sha256": row.SHA256})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	problem.JSON(rw, status, row)
}

func (w *worker) getAgent(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	raw, err := w.store.agent(name)
	if errors.Is(err, errNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no agent "+name, 0)
		return
	}
	if err != nil {
		w.internal(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "application/yaml")
	rw.Write(raw)
}

func (w *worker) deleteAgent(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	if err := w.store.deleteAgent(name); errors.Is(err, errNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no agent "+name, 0)
		return
	} else if err != nil {
		w.internal(rw, err)
		return
	}
	w.dropPost(name)
	w.record(r, "config", "agent-deleted", map[string]string{"agent": name})
	rw.WriteHeader(http.StatusNoContent)
}

func (w *worker) listAbilities(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	if _, err := w.store.agent(name); errors.Is(err, errNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no agent "+name, 0)
		return
	}
	rows, err := w.store.abilities(name)
	if err != nil {
		w.internal(rw, err)
		return
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"abilities": rows})
}

func (w *worker) putAbility(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	var a ability.Ability
	if !problem.Decode(rw, r, &a, maxJSONBytes) {
		return
	}
	if a.Service != "" && a.Service != r.PathValue("service") {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "service in the body differs from the path", 0)
		return
	}
	a.Service = r.PathValue("service")
	if err := a.Validate(); err != nil {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, err.Error(), 0)
		return
	}
	row, err := w.store.putAbility(name, a, w.now())
	if errors.Is(err, errNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no agent "+name, 0)
		return
	}
	if err != nil {
		w.internal(rw, err)
		return
	}
	w.dropPost(name)
	detail := map[string]string{"agent": name, "service": a.Service}
	for act, m := range a.Actions {
		detail["action."+act] = m.String()
	}
	if a.Credential != nil {
		detail["credential"] = a.Credential.Name
	}
	w.record(r, "config", "ability-granted", detail)
	problem.JSON(rw, http.StatusOK, row)
}

func (w *worker) deleteAbility(rw http.ResponseWriter, r *http.Request) {
	name, ok := w.agentParam(rw, r)
	if !ok {
		return
	}
	svc := r.PathValue("service")
	if err := w.store.deleteAbility(name, svc); errors.Is(err, errNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no such ability", 0)
		return
	} else if err != nil {
		w.internal(rw, err)
		return
	}
	w.dropPost(name)
	w.record(r, "config", "ability-revoked", map[string]string{"agent": name, "service": svc})
	rw.WriteHeader(http.StatusNoContent)
}

type credentialInfo struct {
	Name     string     `json:"name"`
	Type     string     `json:"type"`
	Created  time.Time  `json:"created_at"`
	LastUsed *time.Time `json:"last_used_at,omitempty"`
}

func (w *worker) listCredentials(rw http.ResponseWriter, r *http.Request) {
	infos, err := w.vault.List(w.cfg.Org)
	if err != nil {
		w.internal(rw, err)
		return
	}
	out := make([]credentialInfo, 0, len(infos))
	for _, in := range infos {
		ci := credentialInfo{Name: in.Name, Type: in.Type.String(), Created: in.Created}
		if !in.LastUsed.IsZero() {
			lu := in.LastUsed
			ci.LastUsed = &lu
		}
		out = append(out, ci)
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"credentials": out})
}

func (w *worker) putCredential(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	if !problem.Decode(rw, r, &body, maxCredentialBytes) {
		return
	}
	t, err := vault.ParseType(body.Type)
	if err != nil {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "type: want api-key, bearer, basic, oauth or file", 0)
		return
	}
	value := []byte(body.Value)
	body.Value = ""
	err = w.vault.Put(w.cfg.Org, name, t, value)
	clear(value)
	if err != nil {
		if errors.Is(err, vault.ErrInvalid) {
			problem.Write(rw, http.StatusBadRequest, problem.BadRequest, err.Error(), 0)
			return
		}
		w.internal(rw, err)
		return
	}
	w.record(r, "credential", "stored", map[string]string{"name": name, "type": t.String()})
	rw.WriteHeader(http.StatusNoContent)
}

func (w *worker) deleteCredential(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := w.vault.Delete(w.cfg.Org, name); errors.Is(err, vault.ErrNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no credential "+name, 0)
		return
	} else if errors.Is(err, vault.ErrInvalid) {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, err.Error(), 0)
		return
	} else if err != nil {
		w.internal(rw, err)
		return
	}
	w.record(r, "credential", "deleted", map[string]string{"name": name})
	rw.WriteHeader(http.StatusNoContent)
}

type approvalView struct {
	ID       string    `json:"id"`
	Agent    string    `json:"agent"`
	Tool     string    `json:"tool"`
	Summary  string    `json:"summary"`
	Risk     string    `json:"risk"`
	Why      string    `json:"why"`
	Created  time.Time `json:"created_at"`
	Deadline time.Time `json:"deadline"`
}

func (w *worker) listApprovals(rw http.ResponseWriter, r *http.Request) {
	reqs, err := w.approvals.Pending()
	if err != nil {
		w.internal(rw, err)
		return
	}
	out := make([]approvalView, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, approvalView{q.ID, q.Agent, q.Tool, q.Summary, q.Risk.String(), q.Why, q.Created.UTC(), q.Deadline.UTC()})
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"approvals": out})
}

// RejectReasons are the reasons a rejection picks from.
var rejectReasons = map[string]bool{"not_needed": true, "wrong_target": true, "too_risky": true, "needs_changes": true, "other": true}

// decideApproval approves or rejects a pending request. A critical request
// needs an admin: the one rule of who may do what that depends on the
// request itself, so it is checked here, where the request is.
func (w *worker) decideApproval(rw http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	approve := strings.HasSuffix(r.URL.Path, "/approve")
	var body struct {
		Note    string `json:"note"`
		Reason  string `json:"reason"`
		Details string `json:"details"`
	}
	if r.ContentLength != 0 && !problem.Decode(rw, r, &body, maxJSONBytes) {
		return
	}
	reason := body.Note
	if !approve {
		if !rejectReasons[body.Reason] {
			problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "reason: want one of not_needed, wrong_target, too_risky, needs_changes, other", 0)
			return
		}
		reason = body.Reason
		if body.Details != "" {
			reason += ": " + body.Details
		}
	} else if body.Reason != "" || body.Details != "" {
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "an approval takes a note, not a reason", 0)
		return
	}
	req, _, err := w.approvals.Get(id)
	if errors.Is(err, approval.ErrNotFound) {
		problem.Write(rw, http.StatusNotFound, problem.NotFound, "no approval request "+id, 0)
		return
	}
	if err != nil {
		w.internal(rw, err)
		return
	}
	if role := r.Header.Get(headerRole); req.Risk == approval.Critical && role != "admin" && role != "owner" {
		problem.Write(rw, http.StatusForbidden, problem.Forbidden, "a critical request needs an admin or owner to decide it", 0)
		return
	}
	by := actor(r)
	dec, err := w.approvals.Decide(id, approve, by, reason)
	if errors.Is(err, approval.ErrDecided) {
		problem.Write(rw, http.StatusConflict, problem.ApprovalDecided, "the request was already decided or expired", 0)
		return
	}
	if err != nil {
		w.internal(rw, err)
		return
	}
	outcome := "denied"
	if approve {
		outcome = "approved"
	}
	w.record(r, "approval-decision", outcome, map[string]string{"request_id": id, "agent": req.Agent, "tool": req.Tool, "reason": dec.Reason})
	problem.JSON(rw, http.StatusOK, map[string]string{"id": id, "outcome": outcome, "by": dec.By, "reason": dec.Reason})
}

// queryAudit filters the chain. It reads the export, so its cost grows
// with the chain; the newest limit matches are kept.
func (w *worker) queryAudit(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "limit: want 1..1000", 0)
			return
		}
		limit = n
	}
	var since, until time.Time
	for _, p := range []struct {
		key string
		t   *time.Time
	}{{"since", &since}, {"until", &until}} {
		if s := q.Get(p.key); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				problem.Write(rw, http.StatusBadRequest, problem.BadRequest, p.key+": want RFC 3339", 0)
				return
			}
			*p.t = t
		}
	}
	if err := w.audit.Flush(r.Context()); err != nil {
		w.internal(rw, err)
		return
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(audit.Export(w.cfg.DataDir, pw)) }()
	defer pr.Close()
	var out []audit.Exported
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e audit.Exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			w.internal(rw, err)
			return
		}
		if !match(q, "agent", e.Agent) || !match(q, "event", e.Event) || !match(q, "decision", e.Decision) || !match(q, "tool", e.Tool) {
			continue
		}
		if !since.IsZero() || !until.IsZero() {
			t, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil || (!since.IsZero() && t.Before(since)) || (!until.IsZero() && t.After(until)) {
				continue
			}
		}
		out = append(out, e)
		if len(out) > limit {
			out = out[1:]
		}
	}
	if err := sc.Err(); err != nil {
		w.internal(rw, err)
		return
	}
	if out == nil {
		out = []audit.Exported{}
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"records": out})
}

func match(q map[string][]string, key, v string) bool {
	want, ok := q[key]
	return !ok || len(want) == 0 || want[0] == v
}

func (w *worker) verifyAudit(rw http.ResponseWriter, r *http.Request) {
	if err := w.audit.Flush(r.Context()); err != nil {
		w.internal(rw, err)
		return
	}
	rep, err := audit.Verify(w.cfg.DataDir)
	if err != nil {
		w.internal(rw, err)
		return
	}
	problem.JSON(rw, http.StatusOK, map[string]any{"ok": rep.OK, "records": rep.Records, "checkpoints": rep.Checkpoints, "first_bad": rep.FirstBad, "problem": rep.Problem})
}

func (w *worker) exportAudit(rw http.ResponseWriter, r *http.Request) {
	if err := w.audit.Flush(r.Context()); err != nil {
		w.internal(rw, err)
		return
	}
	// Export into memory first so a failure is a clean error, not a cut
	// stream that looks complete.
	var buf bytes.Buffer
	if err := audit.Export(w.cfg.DataDir, &buf); err != nil {
		w.internal(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "application/jsonl")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Write(buf.Bytes())
}

// recordEvent appends an event the supervisor decided (a member added, a
// token revoked) to this organisation's chain. Only the supervisor can
// reach it (the secret), and only identity events are accepted: the
// kernel's own records (decisions, outcomes) cannot be forged this way.
func (w *worker) recordEvent(rw http.ResponseWriter, r *http.Request) {
	var body struct {
		Event    string            `json:"event"`
		Decision string            `json:"decision"`
		Detail   map[string]string `json:"detail"`
	}
	if !problem.Decode(rw, r, &body, maxJSONBytes) {
		return
	}
	switch body.Event {
	case "member", "token":
	default:
		problem.Write(rw, http.StatusBadRequest, problem.BadRequest, "event: want member or token", 0)
		return
	}
	delete(body.Detail, "by") // the actor header says who, not the body
	w.record(r, body.Event, body.Decision, body.Detail)
	rw.WriteHeader(http.StatusNoContent)
}
