package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// primitive decodes the spec of a standalone primitive file.
func (d *decoder) primitive(kind string, m Meta, o *obj) {
	switch kind {
	case "Identity":
		d.identity(m, o)
	case "Provider":
		d.provider(m, o)
	case "Channel":
		d.channel(m, o)
	case "Tool":
		d.tool(m, o)
	case "Skill":
		d.skill(m, o)
	case "Memory":
		d.memory(m, o)
	case "WorldModel":
		d.worldModel(m, o)
	case "Sandbox":
		d.sandbox(m, o)
	case "Policy":
		d.policy(m, o, 0, map[string]val{})
	case "Swarm":
		d.swarm(m, o)
	case "Telemetry":
		d.telemetry(m, o)
	}
}

func (d *decoder) identity(m Meta, o *obj) Identity {
	id := Identity{Meta: m, Locale: "en-US", Autonomy: Supervised}
	o.need("personality")
	if v, ok := o.get("personality"); ok {
		if s, ok := v.str(); ok {
			if strings.TrimSpace(s) == "" {
				v.errf("must not be empty or only whitespace")
			}
			id.Personality = s
		}
	}
	id.ContextFiles = o.strMap("context_files")
	if v, ok := o.get("locale"); ok {
		if s, ok := v.text(); ok {
			id.Locale = s
		}
	}
	id.Capabilities = o.strs("capabilities")
	if a := o.enum("autonomy", string(Observer), string(Supervised), string(Autonomous)); a != "" {
		id.Autonomy = Autonomy(a)
	}
	return id
}

func (d *decoder) provider(m Meta, o *obj) Provider {
	p := Provider{Meta: m}
	o.need("protocol", "endpoint", "model", "auth")
	p.Protocol = o.enum("protocol", "openai-compatible", "anthropic-native", "custom")
	if v, ok := o.get("endpoint"); ok {
		p.Endpoint, _ = v.absURL()
	}
	p.Model = o.text("model")
	o.in("auth", func(a *obj) {
		a.need("type")
		p.Auth.Type = a.enum("type", "bearer", "api-key-header", "oauth2", "none")
		p.Auth.SecretRef = a.text("secret_ref")
		if p.Auth.Type != "" && p.Auth.Type != "none" && !a.has("secret_ref") {
			a.child("secret_ref", a.n).errf("required unless auth.type is none")
		}
	})
	p.Streaming = o.flag("streaming")
	o.in("hints", func(h *obj) {
		p.Hints.CostPriority = h.numberPtr("cost_priority", 0, 1)
		p.Hints.SpeedPriority = h.numberPtr("speed_priority", 0, 1)
		p.Hints.IntelligencePriority = h.numberPtr("intelligence_priority", 0, 1)
	})
	o.objects("fallback", func(_ int, f *obj) {
		f.need("provider_ref")
		if v, ok := f.get("provider_ref"); ok {
			if name := d.refName(v, "Provider"); name != "" {
				p.Fallback = append(p.Fallback, name)
				d.fallback[p.Name] = append(d.fallback[p.Name], v)
			}
		}
	})
	o.in("limits", func(l *obj) {
		// max_* are the shorthand of the public security page.
		pick := func(canonical, short string) int64 {
			l.conflict(short, canonical)
			n := l.integer(canonical, 0)
			if l.has(short) {
				return l.integer(short, 0)
			}
			l.asked[short] = true
			return n
		}
		p.Limits.TokensPerDay = pick("tokens_per_day", "max_tokens_per_day")
		p.Limits.TokensPerRequest = pick("tokens_per_request", "max_tokens_per_request")
		p.Limits.RequestsPerMinute = l.integer("requests_per_minute", 0)
		p.Limits.MaxContextWindow = l.integer("max_context_window", 0)
		p.Limits.CostPerDayUSD = l.number("max_cost_per_day_usd", 0, math.MaxFloat64)
	})
	o.in("retry", func(r *obj) { p.Retry = retry(r, true) })
	p.Capabilities = o.enums("capabilities", "text", "image", "audio", "video", "realtime")
	if v, ok := o.get("capabilities"); ok {
		seen := map[string]bool{}
		for _, c := range p.Capabilities {
			if seen[c] {
				v.errf("capability %q is listed twice", c)
			}
			seen[c] = true
		}
	}
	p.Transport = o.enum("transport", "http", "websocket", "webrtc", "grpc")
	return p
}

func retry(r *obj, delay bool) Retry {
	var x Retry
	x.MaxAttempts = int(r.integer("max_attempts", 1))
	x.Backoff = r.enum("backoff", "exponential", "linear", "constant")
	if delay {
		x.InitialDelayMS = r.integer("initial_delay_ms", 0)
	}
	return x
}

func (v val) absURL() (string, bool) {
	s, ok := v.text()
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		v.errf("%q is not an absolute URI", s)
		return "", false
	}
	return s, true
}

func (d *decoder) channel(m Meta, o *obj) Channel {
	ch := Channel{Meta: m}
	// kind: is the shorthand of the public security page for type:.
	o.conflict("kind", "type")
	typeKey := "type"
	if o.has("kind") && !o.has("type") {
		typeKey = "kind"
	}
	o.asked["kind"] = true
	o.need(typeKey, "transport", "auth")
	ch.Type = o.enum(typeKey, "telegram", "discord", "whatsapp", "slack", "email", "webhook", "cli", "voice", "web",
		"lark", "matrix", "line", "wechat", "qq", "dingtalk", "cron", "queue", "imap", "db-trigger", "custom")
	ch.Transport = o.enum("transport", "polling", "webhook", "websocket", "stdio")
	o.in("auth", func(a *obj) {
		a.need("secret_ref")
		ch.Auth.SecretRef = a.text("secret_ref")
	})
	o.in("access_control", func(a *obj) { ch.AccessControl = accessControl(a) })
	o.in("processing", func(p *obj) {
		ch.Processing.MaxMessageLength = int(p.integer("max_message_length", 1))
		p.in("rate_limit", func(r *obj) {
			ch.Processing.MessagesPerMinute = int(r.integer("messages_per_minute", 1))
			ch.Processing.Burst = int(r.integer("burst", 1))
		})
		ch.Processing.TypingIndicator = p.flag("typing_indicator")
		ch.Processing.ReadReceipts = p.flag("read_receipts")
	})
	o.in("features", func(f *obj) {
		for _, k := range []string{"voice", "files", "reactions", "threads", "inline_images"} {
			if b := f.flagPtr(k); b != nil {
				if ch.Features == nil {
					ch.Features = map[string]bool{}
				}
				ch.Features[k] = *b
			}
		}
	})
	o.in("trigger", func(t *obj) {
		tr := &ChannelTrigger{MaxParallel: 1, OverlapPolicy: "skip"}
		tr.Schedule = t.text("schedule")
		tr.QueueName = t.text("queue_name")
		tr.Mailbox = t.text("mailbox")
		tr.Table = t.text("table")
		tr.Events = t.enums("events", "INSERT", "UPDATE", "DELETE")
		if v, ok := t.get("events"); ok && len(v.n.Content) == 0 {
			v.errf("at least one event is required")
		}
		if t.has("max_parallel") {
			tr.MaxParallel = int(t.integer("max_parallel", 1))
		}
		if p := t.enum("overlap_policy", "skip", "queue", "allow"); p != "" {
			tr.OverlapPolicy = p
		}
		ch.Trigger = tr
	})
	// An event-driven channel without its source would never fire, or
	// would fire on a default nobody chose.
	need := map[string][]string{"cron": {"schedule"}, "queue": {"queue_name"}, "imap": {"mailbox"}, "db-trigger": {"table", "events"}}[ch.Type]
	if len(need) > 0 {
		if t, ok := o.get("trigger"); !ok {
			o.child("trigger", o.n).errf("a %s channel needs trigger.%s", ch.Type, strings.Join(need, " and trigger."))
		} else if to, ok := t.object(); ok {
			to.need(need...)
		}
	}
	return ch
}

func accessControl(a *obj) AccessControl {
	var ac AccessControl
	a.need("mode")
	ac.Mode = a.enum("mode", "open", "allowlist", "pairing", "role-based")
	ac.AllowedIDs = a.strs("allowed_ids")
	a.in("pairing", func(p *obj) {
		p.need("code_expiry_minutes", "max_pending")
		ac.Pairing = &Pairing{
			CodeExpiryMinutes: int(p.integer("code_expiry_minutes", 1)),
			MaxPending:        int(p.integer("max_pending", 1)),
		}
	})
	a.objects("roles", func(_ int, r *obj) {
		r.need("id", "role")
		ac.Roles = append(ac.Roles, RoleBinding{ID: r.str("id"), Role: r.enum("role", "admin", "user", "viewer")})
	})
	forbid := func(key, use string) {
		if a.has(key) {
			v, _ := a.get(key)
			v.errf("%s is not allowed with mode %s (it belongs to mode %s)", key, ac.Mode, use)
		}
	}
	require := func(key string, n int) {
		v, ok := a.get(key)
		switch {
		case !ok:
			a.child(key, a.n).errf("mode %s requires %s", ac.Mode, key)
		case n == 0 && v.n.Kind == yaml.SequenceNode:
			v.errf("mode %s requires at least one entry in %s", ac.Mode, key)
		}
	}
	switch ac.Mode {
	case "allowlist":
		require("allowed_ids", len(ac.AllowedIDs))
		forbid("roles", "role-based")
	case "role-based":
		require("roles", len(ac.Roles))
		forbid("allowed_ids", "allowlist")
	case "pairing":
		require("pairing", 1)
	}
	return ac
}

var (
	costTokens = regexp.MustCompile(`^[0-9]+$`)
	costUSD    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

func (d *decoder) tool(m Meta, o *obj) Tool {
	t := Tool{Meta: m}
	if !o.has("mcp_source") {
		o.need("description", "input_schema")
	}
	t.Description = o.text("description")
	if v, ok := o.get("input_schema"); ok {
		t.InputSchema = v.schema(true)
	}
	if v, ok := o.get("output_schema"); ok {
		t.OutputSchema = v.schema(false)
	}
	if v, ok := o.get("sandbox_ref"); ok {
		t.SandboxRef = d.primitiveRef(v, "Sandbox")
	}
	if v, ok := o.get("policy_ref"); ok {
		t.PolicyRef = d.primitiveRef(v, "Policy")
	}
	o.in("mcp_source", func(s *obj) {
		s.need("uri")
		src := &MCPSource{}
		if v, ok := s.get("uri"); ok {
			src.URI, _ = v.mcpURI()
		}
		if v, ok := s.get("tool_name"); ok {
			if n, ok := v.str(); ok {
				if strings.HasPrefix(strings.ToLower(n), "mcp://") {
					v.errf("the mcp:// scheme is reserved and cannot be used")
				}
				src.ToolName = n
			}
		}
		t.MCPSource = src
	})
	o.in("annotations", func(a *obj) {
		t.Annotations.ReadOnly = a.flagPtr("readOnlyHint")
		t.Annotations.Destructive = a.flagPtr("destructiveHint")
		t.Annotations.Idempotent = a.flagPtr("idempotentHint")
		t.Annotations.OpenWorld = a.flagPtr("openWorldHint")
		t.Annotations.Extra = a.rest()
	})
	t.TimeoutMS = o.integer("timeout_ms", 0)
	o.in("retry", func(r *obj) { t.Retry = retry(r, false) })
	t.Composite = o.flag("composite")
	if v, ok := o.get("skill_ref"); ok {
		t.SkillRef = d.refName(v, "Skill")
	}
	if t.Composite && !o.has("skill_ref") {
		v, _ := o.get("composite")
		v.errf("a composite tool needs skill_ref naming the skill it wraps")
	}

	// Inline labels sit in the item; a file's sit in its metadata.
	labels := val{d: d, file: o.file, path: "metadata.labels", n: o.n}
	if i, ok := o.keys["labels"]; ok {
		labels = o.child("labels", o.n.Content[i])
	}
	t.Builtin = t.Name
	if b, ok := t.Labels[LabelBuiltin]; ok {
		if b == "" {
			labels.errf("label %s must not be empty", LabelBuiltin)
		}
		t.Builtin = b
	}
	d.toolKind(&t, labels)
	if s, ok := t.Labels[LabelCostTokens]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if !costTokens.MatchString(s) || err != nil {
			labels.errf("label %s: %q is not a non-negative integer", LabelCostTokens, s)
		}
		t.CostTokens = n
	}
	if s, ok := t.Labels[LabelCostUSD]; ok {
		f, err := strconv.ParseFloat(s, 64)
		if !costUSD.MatchString(s) || err != nil || math.IsInf(f, 0) {
			labels.errf("label %s: %q is not a non-negative decimal number", LabelCostUSD, s)
			f = 0
		}
		t.CostUSD = f
	}
	return t
}

// toolKind reads the exec and wasm labels. A wasm module is read here,
// confined to the manifest directory like any ref, and refused unless its
// sha256 is the pinned one: nothing unpinned is ever compiled.
func (d *decoder) toolKind(t *Tool, labels val) {
	kinds := 0
	for _, l := range []string{LabelBuiltin, LabelExec, LabelWASM} {
		if _, ok := t.Labels[l]; ok {
			kinds++
		}
	}
	if kinds > 1 {
		labels.errf("labels %s, %s and %s are exclusive: a tool has one kind", LabelBuiltin, LabelExec, LabelWASM)
		return
	}
	if s, ok := t.Labels[LabelExec]; ok {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
			labels.errf("label %s: want a JSON array of strings, the command's absolute path first", LabelExec)
			return
		}
		for _, a := range argv {
			if strings.ContainsRune(a, 0) {
				labels.errf("label %s: arguments must not hold NUL", LabelExec)
				return
			}
		}
		if !filepath.IsAbs(argv[0]) || filepath.Clean(argv[0]) != argv[0] {
			labels.errf("label %s: command %q must be an absolute, clean path", LabelExec, argv[0])
			return
		}
		t.Exec = argv
	}
	_, hasSHA := t.Labels[LabelWASMSHA256]
	_, hasFn := t.Labels[LabelWASMFunction]
	path, ok := t.Labels[LabelWASM]
	if !ok {
		if hasSHA || hasFn {
			labels.errf("labels %s and %s need %s", LabelWASMSHA256, LabelWASMFunction, LabelWASM)
		}
		return
	}
	sum := t.Labels[LabelWASMSHA256]
	if !sha256Hex.MatchString(sum) {
		labels.errf("label %s: want the module's sha256 as 64 lowercase hex digits", LabelWASMSHA256)
		return
	}
	fn := "_start"
	if hasFn {
		fn = t.Labels[LabelWASMFunction]
		if fn == "" || len(fn) > 256 {
			labels.errf("label %s must name an export", LabelWASMFunction)
			return
		}
	}
	if isClawURI(path) {
		labels.errf("label %s: want a path relative to the manifest, not a URI", LabelWASM)
		return
	}
	ts := d.targets(labels, path, "")
	if len(ts) != 1 {
		if len(ts) > 1 {
			labels.errf("label %s: %q must name one file, not a glob", LabelWASM, path)
		}
		return
	}
	_, code := d.readRef(labels, ts[0])
	if code == nil {
		return
	}
	if got := sha256.Sum256(code); hex.EncodeToString(got[:]) != sum {
		labels.errf("label %s: module %s has sha256 %s, the manifest pins %s; refusing to load it", LabelWASM, path, hex.EncodeToString(got[:]), sum)
		return
	}
	t.WASM = &WASMModule{Path: path, SHA256: sum, Function: fn, Code: code}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// mcpURI accepts the transports an MCP source may use. mcp:// is reserved
// by the spec and refused.
func (v val) mcpURI() (string, bool) {
	s, ok := v.text()
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs():
		v.errf("%q is not an absolute URI", s)
	case strings.EqualFold(u.Scheme, "mcp"):
		v.errf("the mcp:// scheme is reserved and cannot be used")
	case u.Scheme != "stdio" && u.Scheme != "https":
		v.errf("%q: an MCP source must use stdio:// or https://", s)
	default:
		return s, true
	}
	return "", false
}

// schema decodes a JSON Schema, which must compile (draft 2020-12 unless
// it says otherwise) without loading anything: a $ref to http(s) or a file
// is refused, since fetching it would let a manifest reach the network or
// the filesystem.
func (v val) schema(mustBeObject bool) json.RawMessage {
	raw, ok := v.jsonObject()
	if !ok {
		return nil
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		v.errf("cannot be read back as JSON: %v", err)
		return nil
	}
	if mustBeObject && doc["type"] != "object" {
		v.errf(`must have "type": "object" (tool arguments are a JSON object)`)
		return nil
	}
	if err := compileSchema(raw); err != nil {
		v.errf("not a valid JSON Schema: %v", err)
		return nil
	}
	return raw
}

func compileSchema(raw json.RawMessage) error {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "clawkeep:manifest/schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return err
	}
	_, err = c.Compile(loc)
	return err
}

// primitiveRef resolves a tool's sandbox_ref or policy_ref. A path is
// loaded and checked (which is how ref cycles arise); a name or claw:// URI
// is looked up. Either way the result must be declared in the Claw.
func (d *decoder) primitiveRef(v val, kind string) string {
	s, ok := v.text()
	if !ok {
		return ""
	}
	if isClawURI(s) || !(strings.ContainsAny(s, `/\`) || hasYAMLExt(s)) {
		return d.refName(v, kind)
	}
	if d.standalone {
		return s // a lone primitive file has no Claw to check the ref against
	}
	ts := d.targets(v, s, kind)
	if len(ts) > 1 {
		v.errf("%q matches %d files; expected one %s", s, len(ts), kind)
		return ""
	}
	var name string
	for _, t := range ts {
		d.loadFile(v, t, kind, func(m Meta, o *obj) {
			if kind == "Sandbox" {
				d.sandbox(m, o)
			} else {
				d.policy(m, o, 0, map[string]val{})
			}
			name = m.Name
		})
	}
	if name != "" && !d.standalone {
		d.crossRef = append(d.crossRef, crossRef{at: v, kind: kind, name: name})
	}
	return name
}

func hasYAMLExt(s string) bool {
	s = strings.ToLower(s)
	return strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml") || strings.HasSuffix(s, ".json")
}

func (d *decoder) skill(m Meta, o *obj) Skill {
	s := Skill{Meta: m}
	o.need("description", "tools_required", "instruction")
	s.Description = o.text("description")
	if v, ok := o.get("tools_required"); ok {
		s.ToolsRequired = v.strs()
		if v.n.Kind == yaml.SequenceNode && len(v.n.Content) == 0 {
			v.errf("at least one tool is required")
		}
	}
	s.Instruction = o.text("instruction")
	if v, ok := o.get("input_schema"); ok {
		s.InputSchema, _ = v.jsonObject()
	}
	if v, ok := o.get("output_schema"); ok {
		s.OutputSchema, _ = v.jsonObject()
	}
	o.in("permissions", func(p *obj) {
		s.Permissions.Network = p.flagPtr("network")
		s.Permissions.Filesystem = p.enum("filesystem", "none", "read-only", "write-workspace", "full")
		s.Permissions.ApprovalRequired = p.flagPtr("approval_required")
	})
	if v, ok := o.get("world_model_ref"); ok {
		s.WorldModelRef = d.refName(v, "WorldModel")
	}
	o.in("estimates", func(e *obj) {
		s.Estimates.AvgTokens = e.integer("avg_tokens", 0)
		s.Estimates.AvgDurationSeconds = e.integer("avg_duration_seconds", 0)
		s.Estimates.AvgToolCalls = e.integer("avg_tool_calls", 0)
	})
	return s
}
