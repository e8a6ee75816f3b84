package manifest

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var duration = regexp.MustCompile(`^[0-9]+(s|m|h|d)$`)

const durationRule = "a duration such as 90s, 30m, 24h or 30d"

func (o *obj) duration(key string) {
	if v, ok := o.get(key); ok {
		v.match(duration, durationRule)
	}
}

// minItems reports a list at key with fewer than n entries.
func (o *obj) minItems(key string, n int, what string) {
	if v, ok := o.get(key); ok && v.n.Kind == yaml.SequenceNode && len(v.n.Content) < n {
		v.errf("at least %d %s required", n, what)
	}
}

func (d *decoder) memory(m Meta, o *obj) Memory {
	mem := Memory{Meta: m}
	o.need("stores")
	o.minItems("stores", 1, "store is")
	names := map[string]bool{}
	o.objects("stores", func(_ int, s *obj) {
		s.need("name", "type")
		st := MemoryStore{
			Name:      s.text("name"),
			Type:      s.enum("type", "conversation", "semantic", "key-value", "workspace", "checkpoint"),
			Role:      s.enum("role", "sensory", "working", "episodic", "semantic", "procedural"),
			Backend:   s.enum("backend", "sqlite", "postgresql", "filesystem", "sqlite-vec", "pgvector", "qdrant", "custom"),
			Scope:     s.enum("scope", "global", "per-identity", "per-channel"),
			Isolation: s.enum("isolation", "shared", "per-identity", "per-channel"),
			Path:      s.str("path"),
		}
		if st.Name != "" {
			if names[st.Name] {
				v, _ := s.get("name")
				v.errf("duplicate store name %q", st.Name)
			}
			names[st.Name] = true
		}
		s.in("retention", func(r *obj) {
			r.duration("max_age")
			r.integer("max_entries", 1)
		})
		s.in("compaction", func(c *obj) {
			c.flag("enabled")
			c.enum("strategy", "summarize", "truncate", "sliding-window")
		})
		s.in("embedding", func(e *obj) {
			e.need("provider_ref", "model", "dimensions")
			e.str("provider_ref")
			e.str("model")
			e.integer("dimensions", 1)
		})
		s.in("search", func(x *obj) {
			x.enum("strategy", "vector-only", "fts-only", "hybrid")
			x.enum("fusion", "reciprocal-rank", "linear-combination")
			x.integer("top_k", 1)
		})
		s.flag("encryption")
		s.integer("max_size_mb", 1)
		s.in("checkpoint", func(c *obj) {
			c.integer("max_snapshots", 1)
			c.duration("ttl")
		})
		s.in("lifecycle", func(l *obj) {
			l.enum("acquisition", "event-driven", "continuous", "manual")
			l.enum("consolidation", "none", "summarize", "merge", "adaptive")
			l.enum("retrieval", "exact", "semantic", "contextual", "hybrid")
		})
		s.in("forgetting", func(f *obj) {
			f.enum("strategy", "none", "decay", "summarize", "adaptive")
			f.strs("signals")
		})
		s.in("salience", func(x *obj) {
			x.flag("enabled")
			x.strs("signals")
		})
		s.in("confidence", func(c *obj) {
			c.flag("source_tracking")
			c.enum("decay", "optional", "none", "adaptive")
		})
		st.Raw = s.rawSpec()
		mem.Stores = append(mem.Stores, st)
	})
	return mem
}

func (d *decoder) worldModel(m Meta, o *obj) WorldModel {
	w := WorldModel{Meta: m}
	o.need("paradigm", "backend")
	w.Paradigm = o.enum("paradigm", "implicit", "explicit", "simulator", "hybrid")
	w.Scope = o.enum("scope", "agent-wide", "task-scoped")
	o.text("memory_ref")
	o.in("backend", func(b *obj) {
		b.need("type", "ref")
		w.Backend.Type = b.enum("type", "tool", "provider", "custom")
		w.Backend.Ref = b.text("ref")
	})
	o.in("predicts", func(p *obj) {
		for _, k := range []string{"state", "observation", "risk", "cost"} {
			p.flag(k)
		}
	})
	o.in("planning", func(p *obj) {
		p.enum("horizon", "adaptive", "bounded", "fixed")
		p.enum("uncertainty_mode", "none", "bounded", "calibrated")
		p.enum("fallback", "conservative", "retry", "escalate")
	})
	o.in("update", func(u *obj) {
		u.enum("mode", "online", "batch", "hybrid")
		u.enum("evidence", "observations", "observations+outcomes")
	})
	o.in("constraints", func(c *obj) { c.text("policy_ref") })
	w.Raw = o.rawSpec()
	return w
}

// runtimeFor is the runtime a sandbox level implies when none is named.
func runtimeFor(level string) string {
	switch level {
	case "wasm":
		return "wasmtime"
	case "container":
		return "docker"
	case "vm":
		return "firecracker"
	case "none", "process":
		return "native"
	}
	return ""
}

func (d *decoder) sandbox(m Meta, o *obj) Sandbox {
	sb := Sandbox{Meta: m}
	o.need("level")
	// vm is accepted here; the kernel refuses what it cannot provide.
	sb.Level = o.enum("level", "none", "process", "wasm", "container", "vm")
	sb.Runtime = o.enum("runtime", "docker", "apple-container", "wasmtime", "firecracker", "gvisor", "native")
	if sb.Runtime == "" {
		sb.Runtime = runtimeFor(sb.Level)
	}
	sb.Network.Mode, sb.FS.Mode, sb.Shell.Mode = "deny", "deny", "deny"

	// limits: is the shorthand of the public security page for resource_limits:.
	o.conflict("limits", "resource_limits")
	limitsKey := "resource_limits"
	if o.has("limits") && !o.has("resource_limits") {
		limitsKey = "limits"
	}
	o.asked["limits"] = true
	o.in(limitsKey, func(l *obj) {
		sb.Limits = ResourceLimits{
			MemoryMB:       l.integer("memory_mb", 0),
			CPUShares:      l.integer("cpu_shares", 0),
			MaxProcesses:   l.integer("max_processes", 0),
			MaxOpenFiles:   l.integer("max_open_files", 0),
			TimeoutMS:      l.integer("timeout_ms", 0),
			MaxOutputBytes: l.integer("max_output_bytes", 0),
		}
	})

	o.in("capabilities", func(c *obj) {
		if v, ok := c.get("network"); ok && o.has("network") {
			v.errf("network is set both here and as the shorthand spec.network")
		}
		c.in("network", func(n *obj) { sb.Network = network(n, false) })
		c.in("filesystem", func(f *obj) {
			sb.FS.Mode = "deny"
			if mode := f.enum("mode", "deny", "read-only", "scoped", "full"); mode != "" {
				sb.FS.Mode = mode
			}
			f.objects("mount_paths", func(_ int, mp *obj) {
				mp.need("path", "permissions")
				sb.FS.MountPaths = append(sb.FS.MountPaths, Mount{Path: mp.str("path"), Permissions: mp.enum("permissions", "ro", "rw")})
			})
			sb.FS.DeniedPaths = f.strs("denied_paths")
		})
		c.in("secrets", func(s *obj) {
			sb.Secrets.Injection = s.enum("injection", "host-boundary", "environment", "file-mount")
			sb.Secrets.Encryption = s.str("encryption")
			s.in("leak_detection", func(l *obj) {
				sb.Secrets.LeakDetection = l.flagPtr("enabled")
				sb.Secrets.LeakPatternsCount = int(l.integer("patterns", 0))
			})
		})
		c.in("shell", func(s *obj) {
			if mode := s.enum("mode", "deny", "restricted", "full"); mode != "" {
				sb.Shell.Mode = mode
			}
			sb.Shell.BlockedCommands = s.strs("blocked_commands")
			if v, ok := s.get("blocked_patterns"); ok {
				items, _ := v.list()
				for _, it := range items {
					p, ok := it.str()
					if !ok {
						continue
					}
					// A pattern that does not compile would block nothing.
					if _, err := regexp.Compile(p); err != nil {
						it.errf("%q is not a valid regular expression: %v", p, err)
						continue
					}
					sb.Shell.BlockedPatterns = append(sb.Shell.BlockedPatterns, p)
				}
			}
		})
	})
	o.in("network", func(n *obj) { sb.Network = network(n, true) })
	return sb
}

// network decodes capabilities.network, or with short set the shorthand
// spec.network, whose modes are restricted (allowlist), none (deny) and
// full or open (allow-all), and whose hosts are allowed_domains.
func network(n *obj, short bool) NetworkCaps {
	nc := NetworkCaps{Mode: "deny"}
	if v, ok := n.get("mode"); ok {
		modes := []string{"deny", "allowlist", "allow-all"}
		if short {
			modes = append(modes, "restricted", "none", "full", "open")
		}
		if m, ok := v.enum(modes...); ok {
			nc.Mode = map[string]string{"restricted": "allowlist", "none": "deny", "full": "allow-all", "open": "allow-all"}[m]
			if nc.Mode == "" {
				nc.Mode = m
			}
		}
	}
	hosts := "allowed_hosts"
	if short {
		n.conflict("allowed_domains", "allowed_hosts")
		if n.has("allowed_domains") && !n.has("allowed_hosts") {
			hosts = "allowed_domains"
		}
		n.asked["allowed_domains"] = true
	}
	nc.AllowedHosts = n.strs(hosts)
	n.in("ssrf_protection", func(s *obj) {
		nc.SSRF.Enabled = s.flagPtr("enabled")
		nc.SSRF.BlockPrivateIPs = s.flagPtr("block_private_ips")
		nc.SSRF.DNSPinning = s.flagPtr("dns_pinning")
	})
	return nc
}

// policy decodes a Policy; index numbers its rules' generated ids and ids
// collects the rule ids seen so far in the Claw.
func (d *decoder) policy(m Meta, o *obj, index int, ids map[string]val) Policy {
	p := Policy{Meta: m}
	o.need("rules")
	o.minItems("rules", 1, "rule is")
	for j, rv := range o.list("rules") {
		r, ok := d.rule(rv, index, j)
		if !ok {
			continue
		}
		if first, dup := ids[r.ID]; dup {
			rv.errf("duplicate rule id %q (first used at %s:%d:%d)", r.ID, first.file, first.n.Line, first.n.Column)
		} else {
			ids[r.ID] = rv
		}
		p.Rules = append(p.Rules, r)
	}
	o.in("prompt_injection", func(x *obj) {
		pi := &PromptInjection{Detection: "pattern"}
		if v := x.enum("detection", "pattern", "llm-based", "hybrid", "none"); v != "" {
			pi.Detection = v
		}
		pi.PatternEngine = x.str("pattern_engine")
		pi.PatternCount = int(x.integer("pattern_count", 0))
		pi.Action = x.enum("action", "block-and-log", "warn", "log-only", "ignore")
		p.PromptInjection = pi
	})
	o.in("secret_scanning", func(x *obj) {
		p.SecretScanning = &SecretScanning{
			Enabled:  x.flag("enabled"),
			Scope:    x.enum("scope", "input", "output", "both"),
			Patterns: int(x.integer("patterns", 0)),
			Action:   x.enum("action", "redact", "block", "warn"),
		}
	})
	o.in("input_validation", func(x *obj) {
		p.InputValidation = &InputValidation{
			MaxSizeBytes:       x.integer("max_size_bytes", 0),
			NullByteDetection:  x.flag("null_byte_detection"),
			WhitespaceAnalysis: x.flag("whitespace_analysis"),
			Encoding:           x.str("encoding"),
		}
	})
	o.in("rate_limits", func(x *obj) {
		p.RateLimits = RateLimits{
			ToolCallsPerMinute: x.integer("tool_calls_per_minute", 0),
			TokensPerHour:      x.integer("tokens_per_hour", 0),
			CostPerDayUSD:      x.number("cost_per_day_usd", 0, math.MaxFloat64),
		}
	})
	o.in("audit", func(x *obj) {
		a := &AuditSettings{LogInputs: x.flag("log_inputs"), LogOutputs: x.flag("log_outputs"), LogApprovals: x.flag("log_approvals")}
		if v, ok := x.get("retention"); ok {
			a.Retention, _ = v.match(duration, durationRule)
		}
		a.Destination = x.enum("destination", "file", "sqlite", "webhook", "syslog")
		p.Audit = a
	})
	return p
}

// toolPattern is a tool name or a glob over tool names.
var toolPattern = regexp.MustCompile(`^[a-zA-Z0-9*][a-zA-Z0-9*._-]{0,127}$`)

const toolPatternRule = "a tool name or glob (letters, digits, '.', '_', '-', '*')"

// rule decodes one policy rule, normalising the shorthand: pattern:
// "tool:NAME" or "category:NAME", action approve or require_approval, a
// missing id, and the clawkeep extension match.tool.
func (d *decoder) rule(v val, pi, ri int) (Rule, bool) {
	o, ok := v.object()
	if !ok {
		return Rule{}, false
	}
	defer o.done()
	r := Rule{Pos: Pos{File: v.file, Line: v.n.Line, Col: v.n.Column}}
	if iv, ok := o.get("id"); ok {
		r.ID, _ = iv.text()
	} else {
		r.ID = fmt.Sprintf("rule-%d-%d", pi, ri)
	}
	o.need("action")
	if av, ok := o.get("action"); ok {
		if s, ok := av.str(); ok {
			switch s {
			case "approve", "require_approval":
				r.Action = "require-approval"
			case "allow", "deny", "require-approval", "audit-only":
				r.Action = s
			default:
				av.errf("%q is not one of allow, deny, require-approval, audit-only", s)
			}
		}
	}
	if pv, ok := o.get("pattern"); ok {
		o.conflict("pattern", "scope")
		o.conflict("pattern", "match")
		o.asked["scope"] = true
		if s, ok := pv.str(); ok {
			what, arg, _ := strings.Cut(s, ":")
			switch {
			case what == "tool" && toolPattern.MatchString(arg):
				r.Scope, r.Match.Tools = "tool", []string{arg}
			case what == "category" && arg != "":
				r.Scope, r.Match.Category = "category", arg
			default:
				pv.errf(`%q is not a rule pattern (expected "tool:NAME", "tool:GLOB" or "category:NAME")`, s)
			}
		}
	} else {
		o.need("scope")
		r.Scope = o.enum("scope", "tool", "category", "all")
	}
	o.in("match", func(m *obj) {
		r.Match.Annotations = m.anyMap("annotations")
		r.Match.Category = m.str("category")
		if tv, ok := m.get("tool"); ok {
			r.Match.Tools = toolPatterns(tv)
		}
	})
	r.Reason = o.str("reason")
	if av, ok := o.get("approval"); ok {
		if r.Action != "" && r.Action != "require-approval" {
			av.errf("only require-approval rules may carry approval (this rule's action is %s)", r.Action)
		}
		if a, ok := av.object(); ok {
			r.Approval = &RuleApproval{TimeoutSeconds: int(a.integer("timeout_seconds", 1)), DefaultIfTimeout: "deny"}
			if s := a.enum("default_if_timeout", "deny", "allow"); s != "" {
				r.Approval.DefaultIfTimeout = s
			}
			a.done()
		}
	}
	o.in("conditions", func(c *obj) {
		r.Conditions.PathWithin = c.str("path_within")
		r.Conditions.Extra = c.rest()
	})
	o.in("rate_limit", func(x *obj) {
		r.RateLimit = &RuleRateLimit{
			CostPerDayUSD: x.numberPtr("cost_per_day_usd", 0, math.MaxFloat64),
			TokensPerDay:  x.integerPtr("tokens_per_day", 0),
		}
	})
	if r.Scope == "category" && r.Match.Category == "" && !o.has("pattern") {
		o.child("match", o.n).errf("scope category needs match.category")
	}
	return r, true
}

// toolPatterns reads match.tool: one pattern or a list of them.
func toolPatterns(v val) []string {
	var items []val
	if v.n.Kind == yaml.SequenceNode {
		items, _ = v.list()
		if len(items) == 0 {
			v.errf("at least one tool pattern is required")
		}
	} else {
		items = []val{v}
	}
	var out []string
	for _, it := range items {
		if s, ok := it.match(toolPattern, toolPatternRule); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) swarm(m Meta, o *obj) Swarm {
	s := Swarm{Meta: m}
	o.need("topology", "agents", "coordination", "aggregation")
	s.Topology = o.enum("topology", "leader-worker", "peer-to-peer", "pipeline", "broadcast", "hierarchical")
	o.minItems("agents", 1, "agent is")
	o.objects("agents", func(_ int, a *obj) {
		a.need("identity_ref", "role")
		ag := SwarmAgent{IdentityRef: a.str("identity_ref"), Role: a.str("role"), ProviderRef: a.str("provider_ref"), Count: 1}
		if a.has("count") {
			ag.Count = int(a.integer("count", 1))
		}
		s.Agents = append(s.Agents, ag)
	})
	o.in("coordination", func(c *obj) {
		c.need("message_passing", "backend", "concurrency")
		c.enum("message_passing", "queue", "shared-memory", "event-bus", "direct")
		c.enum("backend", "sqlite-wal", "redis", "nats", "in-process")
		c.in("concurrency", func(x *obj) {
			x.integer("max_parallel", 1)
			x.flag("sequential_within_agent")
		})
	})
	o.in("aggregation", func(a *obj) {
		a.need("strategy")
		a.enum("strategy", "leader-decides", "majority-vote", "merge", "chain", "best-of-n")
		a.flag("cost_aware")
		a.integer("timeout_ms", 0)
	})
	o.in("failure", func(f *obj) {
		f.integer("retry_per_agent", 0)
		f.in("dead_letter", func(x *obj) {
			x.flag("enabled")
			x.integer("max_retries", 0)
		})
		f.in("circuit_breaker", func(x *obj) {
			x.integer("failure_threshold", 1)
			x.integer("reset_timeout_ms", 0)
		})
	})
	o.in("resource_limits", func(x *obj) {
		x.integer("max_total_tokens", 0)
		x.number("max_total_cost_usd", 0, math.MaxFloat64)
		x.integer("max_duration_ms", 0)
	})
	s.Raw = o.rawSpec()
	return s
}

func (d *decoder) telemetry(m Meta, o *obj) Telemetry {
	t := Telemetry{Meta: m}
	o.need("exporters")
	o.minItems("exporters", 1, "exporter is")
	o.objects("exporters", func(_ int, e *obj) {
		e.need("type")
		typ := e.enum("type", "otlp", "file", "sqlite", "webhook", "console")
		e.str("endpoint")
		e.str("path")
		// A remote exporter without an endpoint, or a local one without a
		// path, would drop every event.
		switch typ {
		case "otlp", "webhook":
			e.need("endpoint")
		case "file", "sqlite":
			e.need("path")
		}
		e.in("auth", func(a *obj) { a.text("secret_ref") })
		e.in("batch", func(b *obj) {
			b.integer("max_size", 1)
			b.integer("flush_interval_ms", 100)
		})
		if x, ok := e.toAny(); ok {
			t.Exporters = append(t.Exporters, x.(map[string]any))
		}
	})
	o.in("events", func(e *obj) {
		for _, k := range []string{"tool_calls", "memory_ops", "world_model_ops", "planning_ops", "swarm_ops", "lifecycle", "errors"} {
			e.flag(k)
		}
	})
	o.in("metrics", func(x *obj) {
		for _, k := range []string{"token_usage", "cost_usd", "latency_histogram", "prediction_error", "retrieval_hit_rate", "plan_revision_count"} {
			x.flag(k)
		}
	})
	o.in("sampling", func(s *obj) { s.number("rate", 0, 1) })
	o.in("redaction", func(r *obj) {
		r.flag("strip_arguments")
		r.flag("strip_results")
	})
	t.Raw = o.rawSpec()
	return t
}
