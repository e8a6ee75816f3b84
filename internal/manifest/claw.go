package manifest

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// claw decodes a kind: Claw document: every slot, then the checks that need
// the whole manifest.
func (d *decoder) claw(file string, root *yaml.Node) *Claw {
	env, ok := d.envelope(file, root)
	if !ok {
		return nil
	}
	if env.kind != "Claw" {
		at := val{d: d, file: file, path: "kind", n: root}
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "kind" {
				at.n = root.Content[i+1]
			}
		}
		at.errf("expected kind Claw, got kind %s", env.kind)
		return nil
	}
	c := &Claw{Meta: env.meta, Description: env.desc}
	// Rule ids are unique across all policies, because the policies form
	// one list and an audit record names the rule that decided.
	ruleIDs := map[string]val{}
	spec := env.spec
	spec.need("identity", "providers")

	if v, ok := spec.get("identity"); ok {
		d.item(v, "Identity", c.Name, c.Version, true, func(m Meta, o *obj) { c.Identity = d.identity(m, o) })
	}
	if v, ok := spec.get("providers"); ok {
		if items, ok := v.list(); ok && len(items) == 0 {
			v.errf("at least one provider is required")
		}
	}
	d.items(spec, "providers", "Provider", c.Version, func(m Meta, o *obj) { c.Providers = append(c.Providers, d.provider(m, o)) })
	d.items(spec, "channels", "Channel", c.Version, func(m Meta, o *obj) { c.Channels = append(c.Channels, d.channel(m, o)) })
	d.items(spec, "tools", "Tool", c.Version, func(m Meta, o *obj) { c.Tools = append(c.Tools, d.tool(m, o)) })
	d.items(spec, "skills", "Skill", c.Version, func(m Meta, o *obj) { c.Skills = append(c.Skills, d.skill(m, o)) })
	d.items(spec, "world_models", "WorldModel", c.Version, func(m Meta, o *obj) { c.WorldModels = append(c.WorldModels, d.worldModel(m, o)) })
	d.items(spec, "policies", "Policy", c.Version, func(m Meta, o *obj) {
		c.Policies = append(c.Policies, d.policy(m, o, len(c.Policies), ruleIDs))
	})
	if v, ok := spec.get("memory"); ok {
		d.item(v, "Memory", "memory", c.Version, true, func(m Meta, o *obj) { x := d.memory(m, o); c.Memory = &x })
	}
	if v, ok := spec.get("sandbox"); ok {
		d.item(v, "Sandbox", "sandbox", c.Version, true, func(m Meta, o *obj) { x := d.sandbox(m, o); c.Sandbox = &x })
	}
	if v, ok := spec.get("swarm"); ok {
		d.item(v, "Swarm", "swarm", c.Version, true, func(m Meta, o *obj) { x := d.swarm(m, o); c.Swarm = &x })
	}
	if v, ok := spec.get("telemetry"); ok {
		d.item(v, "Telemetry", "telemetry", c.Version, true, func(m Meta, o *obj) { x := d.telemetry(m, o); c.Telemetry = &x })
	}
	spec.done()

	d.checkRefs()
	d.checkFallbackCycles(c)
	return c
}

// items decodes a list slot; each item gets the generated name KIND-INDEX
// unless it names itself.
func (d *decoder) items(spec *obj, key, kind, version string, each func(Meta, *obj)) {
	v, ok := spec.get(key)
	if !ok {
		return
	}
	items, _ := v.list()
	for i, it := range items {
		d.item(it, kind, fmt.Sprintf("%s-%d", kindSlug(kind), i), version, false, each)
	}
}

// item decodes one slot value: a ref (path, glob or claw:// URI), an
// {inline: {...}} object, or the same object without the inline wrapper
// (a clawkeep shorthand). An inline object carries the kind's spec fields
// plus name, version and labels; name defaults to gen and version to the
// Claw's.
func (d *decoder) item(v val, kind, gen, version string, single bool, each func(Meta, *obj)) {
	declare := func(m Meta, o *obj) {
		d.declare(v, kind, m.Name)
		each(m, o)
	}
	switch {
	case v.isString():
		s := v.n.Value
		if s == "" {
			v.errf("ref must not be empty")
			return
		}
		ts := d.targets(v, s, kind)
		if single && len(ts) > 1 {
			v.errf("%q matches %d files; expected one %s", s, len(ts), kind)
			return
		}
		for _, t := range ts {
			d.loadFile(v, t, kind, declare)
		}
	case v.n.Kind == yaml.MappingNode:
		o, _ := v.object()
		body := o
		if o.has("inline") {
			iv, _ := o.get("inline")
			o.done()
			var ok bool
			if body, ok = iv.object(); !ok {
				return
			}
		}
		meta := d.metadata(body, false)
		if meta.Name == "" && !body.has("name") {
			meta.Name = gen
		}
		if meta.Version == "" && !body.has("version") {
			meta.Version = version
		}
		declare(meta, body)
		body.done()
	default:
		v.errf("expected a ref (string) or a mapping, got %s", describe(v.n))
	}
}

// declare records a primitive's name; names are unique per kind, generated
// ones included.
func (d *decoder) declare(at val, kind, name string) {
	if name == "" {
		return
	}
	names := d.declared[kind]
	if names == nil {
		names = map[string]bool{}
		d.declared[kind] = names
	}
	if names[name] {
		at.errf("duplicate %s name %q (unnamed items are named %s-INDEX)", kindWords(kind), name, kindSlug(kind))
		return
	}
	names[name] = true
}

// refName records that the string at v must name a declared primitive of
// kind: either its metadata.name or a claw:// URI of that kind.
func (d *decoder) refName(v val, kind string) string {
	s, ok := v.text()
	if !ok {
		return ""
	}
	if isClawURI(s) {
		u, why := parseClawURI(s)
		if why != "" {
			v.errf("%s", why)
			return ""
		}
		if u.slug != kindSlug(kind) {
			v.errf("%q names kind %s; expected kind %s", s, u.slug, kindSlug(kind))
			return ""
		}
		s = u.name
	} else if !kebabName.MatchString(s) {
		v.errf("%q is not a %s name or claw:// URI", s, kindWords(kind))
		return ""
	}
	if !d.standalone {
		d.crossRef = append(d.crossRef, crossRef{at: v, kind: kind, name: s})
	}
	return s
}

func (d *decoder) checkRefs() {
	for _, r := range d.crossRef {
		if !d.declared[r.kind][r.name] {
			r.at.errf("%s %q is not declared in this manifest", kindWords(r.kind), r.name)
		}
	}
}

// checkFallbackCycles refuses fallback chains that come back to a provider:
// a runtime following them would loop.
func (d *decoder) checkFallbackCycles(c *Claw) {
	next := map[string][]string{}
	for _, p := range c.Providers {
		next[p.Name] = p.Fallback
	}
	const (
		unvisited = iota
		onPath
		finished
	)
	state := map[string]int{}
	var path []string
	var visit func(name string) bool
	visit = func(name string) bool {
		switch state[name] {
		case onPath:
			i := 0
			for path[i] != name {
				i++
			}
			cycle := append(append([]string{}, path[i:]...), name)
			from := path[len(path)-1]
			for j, ref := range next[from] {
				if ref == name && j < len(d.fallback[from]) {
					d.fallback[from][j].errf("fallback cycle: %s", strings.Join(cycle, " -> "))
					break
				}
			}
			return true
		case finished:
			return false
		}
		state[name] = onPath
		path = append(path, name)
		for _, n := range next[name] {
			if visit(n) {
				return true
			}
		}
		path = path[:len(path)-1]
		state[name] = finished
		return false
	}
	names := make([]string, 0, len(next))
	for n := range next {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if state[n] == unvisited && visit(n) {
			return // one cycle report is enough to make the fix obvious
		}
	}
}
