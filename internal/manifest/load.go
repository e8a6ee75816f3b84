package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Options says where a manifest comes from.
type Options struct {
	File string // name used in errors; for Load it is the path
	// Dir is the base directory for relative refs, globs and claw://local
	// URIs; "" refuses every file ref, because a manifest that arrives over
	// the wire must not make the runtime read its filesystem.
	Dir string
}

// Load reads the root manifest at path; its refs resolve inside the file's
// directory.
func Load(path string) (*Claw, error) {
	d := newDecoder(Options{File: path, Dir: filepath.Dir(path)})
	defer d.close()
	data, key := d.readRoot(path)
	if data == nil {
		return nil, d.result(path, false)
	}
	c := d.decodeClaw(path, key, data)
	if err := d.result(path, c != nil); err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		c.File = abs
	}
	return c, nil
}

// Parse decodes the YAML or JSON bytes of a kind: Claw document.
func Parse(data []byte, opts Options) (*Claw, error) {
	d := newDecoder(opts)
	defer d.close()
	d.files = 1
	c := d.decodeClaw(opts.File, "", data)
	if err := d.result(opts.File, c != nil); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadPrimitive validates one primitive file of any kind, for `clawkeep
// validate`. A Claw is loaded in full, refs included; the other kinds are
// checked on their own, so references to other primitives are not followed.
func LoadPrimitive(path string) (kind string, err error) {
	d := newDecoder(Options{File: path, Dir: filepath.Dir(path)})
	defer d.close()
	data, key := d.readRoot(path)
	if data == nil {
		return "", d.result(path, false)
	}
	root := d.parseYAML(path, data)
	if root == nil {
		return "", d.result(path, false)
	}
	env, ok := d.envelope(path, root)
	if !ok {
		return env.kind, d.result(path, false)
	}
	if env.kind == "Claw" {
		d.errs = errorSink{}
		c := d.decodeClaw(path, key, data)
		return env.kind, d.result(path, c != nil)
	}
	d.standalone = true
	d.primitive(env.kind, env.meta, env.spec)
	env.spec.done()
	return env.kind, d.errs.err()
}

// LoadSandbox reads one Sandbox primitive file (for operators who check a
// profile on its own, e.g. clawkeep egress check --policy).
func LoadSandbox(path string) (*Sandbox, error) {
	d := newDecoder(Options{File: path, Dir: filepath.Dir(path)})
	defer d.close()
	data, _ := d.readRoot(path)
	if data == nil {
		return nil, d.result(path, false)
	}
	root := d.parseYAML(path, data)
	if root == nil {
		return nil, d.result(path, false)
	}
	env, ok := d.envelope(path, root)
	if !ok {
		return nil, d.result(path, false)
	}
	if env.kind != "Sandbox" {
		return nil, &ErrorList{{Pos: Pos{File: path}, Field: "kind", Msg: fmt.Sprintf("%q is not Sandbox", env.kind)}}
	}
	d.standalone = true
	sb := d.sandbox(env.meta, env.spec)
	env.spec.done()
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return &sb, nil
}

// decoder holds the state of one load. It is never shared.
type decoder struct {
	errs       errorSink
	dir        string   // base directory; "" refuses file refs
	realDir    string   // dir with symlinks resolved, once needed
	root       *os.Root // confines reads to dir; opened on the first ref
	files      int      // files read so far
	stack      []frame  // files being loaded, outermost first
	standalone bool     // decoding one primitive file: cross refs are not checked

	declared map[string]map[string]bool // kind -> names declared in the Claw
	crossRef []crossRef
	fallback map[string][]val // provider name -> its fallback provider_ref values
}

type frame struct {
	key string // path with symlinks resolved; identifies the file
	rel string // path relative to dir, for messages
}

// crossRef is a name that must resolve to a primitive declared in the Claw.
type crossRef struct {
	at   val
	kind string
	name string
}

func newDecoder(opts Options) *decoder {
	return &decoder{dir: opts.Dir, declared: map[string]map[string]bool{}, fallback: map[string][]val{}}
}

func (d *decoder) close() {
	if d.root != nil {
		d.root.Close()
	}
}

// result is the error of a load: the errors found, or, should a decoder
// ever give up without saying why, a refusal all the same (fail closed).
func (d *decoder) result(file string, decoded bool) error {
	if !decoded && len(d.errs.list) == 0 {
		d.fileError(file, "manifest: internal error: refused without a reason")
	}
	return d.errs.err()
}

func (d *decoder) fileError(file, msg string) {
	d.errs.add(&Error{Pos: Pos{File: file}, Msg: msg})
}

// readRoot reads the operator-named root file. Unlike refs it may be
// anywhere; it is still size-bounded and must be a regular file (a FIFO or
// device would block or never end).
func (d *decoder) readRoot(path string) (data []byte, key string) {
	d.files = 1
	st, err := os.Stat(path)
	if err != nil {
		d.fileError(path, readFailure(err))
		return nil, ""
	}
	if !st.Mode().IsRegular() {
		d.fileError(path, "not a regular file")
		return nil, ""
	}
	f, err := os.Open(path)
	if err != nil {
		d.fileError(path, readFailure(err))
		return nil, ""
	}
	defer f.Close()
	data, err = readBounded(f)
	if err != nil {
		d.fileError(path, err.Error())
		return nil, ""
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		key = real
	}
	return data, key
}

func readFailure(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "file not found"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "cannot read file: " + pe.Err.Error()
	}
	return "cannot read file: " + err.Error()
}

func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read file: %v", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file is larger than %d bytes", maxFileSize)
	}
	return data, nil
}

func (d *decoder) decodeClaw(file, key string, data []byte) *Claw {
	root := d.parseYAML(file, data)
	if root == nil {
		return nil
	}
	d.stack = append(d.stack, frame{key: key, rel: filepath.Base(file)})
	defer func() { d.stack = d.stack[:len(d.stack)-1] }()
	return d.claw(file, root)
}

var (
	kebabName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$`)
	semver    = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-.+)?$`)
)

// ValidName reports whether s is a valid metadata.name: 1-63 letters,
// digits or '-', starting with a letter or digit. Agents are named by it
// wherever clawkeep names them (tokens, API paths, workspaces).
func ValidName(s string) bool { return kebabName.MatchString(s) }

const (
	nameRule   = "a valid name (1-63 letters, digits or '-', starting with a letter or digit)"
	semverRule = "a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])"
)

// kindSlug gives the lower-case form of a kind used in claw:// URIs and in
// generated names; "" for a kind that has none.
func kindSlug(kind string) string {
	switch kind {
	case "Identity", "Provider", "Channel", "Tool", "Skill", "Memory", "Sandbox", "Policy", "Swarm", "Telemetry":
		return strings.ToLower(kind)
	case "WorldModel":
		return "world-model"
	}
	return ""
}

// kindWords names a kind in messages: "world model", "provider".
func kindWords(kind string) string { return strings.ReplaceAll(kindSlug(kind), "-", " ") }

func allKinds() []string {
	return []string{"Identity", "Provider", "Channel", "Tool", "Skill", "Memory", "WorldModel", "Sandbox", "Policy", "Swarm", "Telemetry", "Claw"}
}

type envelope struct {
	kind string
	meta Meta
	desc string // Claw only
	spec *obj   // nil when ok is false
}

// envelope decodes claw, kind and metadata of a file, leaving spec to the
// caller.
func (d *decoder) envelope(file string, root *yaml.Node) (env envelope, ok bool) {
	top, ok := val{d: d, file: file, n: root}.object()
	if !ok {
		return env, false
	}
	ok = top.need("claw", "kind", "metadata", "spec")
	if v, has := top.get("claw"); has {
		if s, good := v.str(); good && s != "0.3.0" {
			v.errf("%q is not the supported protocol version 0.3.0", s)
			ok = false
		}
	}
	if v, has := top.get("kind"); has {
		env.kind, _ = v.enum(allKinds()...)
		ok = ok && env.kind != ""
	}
	if m := top.sub("metadata"); m != nil {
		ok = m.need("name") && ok
		env.meta = d.metadata(m, true)
		if env.kind == "Claw" {
			env.desc = m.str("description")
		}
		m.done()
	}
	if v, has := top.get("spec"); has {
		env.spec, _ = v.object()
	}
	top.done()
	return env, ok && env.spec != nil
}

// metadata decodes name, version and labels, and annotations when the
// metadata is a file's (inline items have none).
func (d *decoder) metadata(m *obj, file bool) Meta {
	var meta Meta
	if v, ok := m.get("name"); ok {
		meta.Name, _ = v.match(kebabName, nameRule)
	}
	if v, ok := m.get("version"); ok {
		meta.Version, _ = v.match(semver, semverRule)
	}
	meta.Labels = m.strMap("labels")
	if file {
		meta.Annotations = m.anyMap("annotations")
	}
	return meta
}

var (
	clawLocal = regexp.MustCompile(`^claw://local/([a-z-]+)/([a-zA-Z0-9][a-zA-Z0-9-]{0,62})(?:@([0-9]+\.[0-9]+\.[0-9]+(?:-.+)?))?$`)
	clawAlias = regexp.MustCompile(`^claw://([a-z-]+)/([a-zA-Z0-9][a-zA-Z0-9-]{0,62})$`)
	uriScheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// clawURI is a parsed claw:// URI naming a local primitive.
type clawURI struct {
	slug, name, version string
}

// parseClawURI reports why s is refused, or returns what it names.
func parseClawURI(s string) (clawURI, string) {
	if strings.HasPrefix(s, "claw://registry/") {
		return clawURI{}, fmt.Sprintf("%q cannot be resolved: no registry is configured", s)
	}
	var m []string
	if m = clawLocal.FindStringSubmatch(s); m == nil {
		if m = clawAlias.FindStringSubmatch(s); m != nil && m[1] != "local" {
			m = append(m, "")
		}
	}
	if len(m) != 4 {
		return clawURI{}, fmt.Sprintf("%q is not a valid claw URI (expected claw://local/KIND/NAME[@VERSION] or claw://KIND/NAME)", s)
	}
	known := false
	for _, k := range allKinds() {
		known = known || kindSlug(k) == m[1]
	}
	if !known {
		return clawURI{}, fmt.Sprintf("%q names unknown kind %q", s, m[1])
	}
	return clawURI{slug: m[1], name: m[2], version: m[3]}, ""
}

func isClawURI(s string) bool { return strings.HasPrefix(strings.ToLower(s), "claw:") }

// target is one file a ref resolves to.
type target struct {
	rel         string // relative to dir, cleaned
	wantName    string // from a claw URI: the file's metadata.name must match
	wantVersion string // from claw://...@VERSION
}

// targets resolves a ref string to files inside dir, reporting why it
// cannot. Relative paths and globs are taken from the directory of the file
// that holds the ref; claw:// URIs from dir itself.
func (d *decoder) targets(at val, s, kind string) []target {
	if isClawURI(s) {
		u, why := parseClawURI(s)
		if why != "" {
			at.errf("%s", why)
			return nil
		}
		if u.slug != kindSlug(kind) {
			at.errf("%q names kind %s; expected kind %s", s, u.slug, kindSlug(kind))
			return nil
		}
		if !d.filesAllowed(at) {
			return nil
		}
		return []target{{rel: filepath.Join(u.slug, u.name+".yaml"), wantName: u.name, wantVersion: u.version}}
	}
	if uriScheme.MatchString(s) {
		at.errf("%q is not a supported ref (expected a relative path, a glob or a claw:// URI)", s)
		return nil
	}
	if !d.filesAllowed(at) {
		return nil
	}
	if filepath.IsAbs(s) || strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\`) {
		at.errf("ref %q is an absolute path; refs must be relative to the manifest", s)
		return nil
	}
	rel := filepath.Join(d.currentDir(), s)
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		at.errf("ref %q leaves the manifest directory", s)
		return nil
	}
	if !strings.ContainsAny(s, "*?[") {
		return []target{{rel: rel}}
	}
	matches, err := filepath.Glob(filepath.Join(d.dir, rel))
	if err != nil {
		at.errf("malformed glob %q", s)
		return nil
	}
	if len(matches) == 0 {
		at.errf("glob %q matches no files", s)
		return nil
	}
	if len(matches) > maxFiles {
		at.errf("glob %q matches more than %d files", s, maxFiles)
		return nil
	}
	sort.Strings(matches)
	out := make([]target, 0, len(matches))
	for _, m := range matches {
		r, err := filepath.Rel(d.dir, m)
		if err != nil {
			at.errf("glob %q matched %s outside the manifest directory", s, m)
			continue
		}
		out = append(out, target{rel: r})
	}
	return out
}

func (d *decoder) filesAllowed(at val) bool {
	if d.dir == "" {
		at.errf("file refs are not allowed in a manifest that did not come from a file (use inline primitives)")
		return false
	}
	return true
}

// currentDir is the directory, relative to dir, of the file being decoded.
func (d *decoder) currentDir() string {
	if len(d.stack) == 0 {
		return "."
	}
	return filepath.Dir(d.stack[len(d.stack)-1].rel)
}

// readRef reads a ref'd file. It refuses a file reached through a symlink
// that leaves dir (checked with EvalSymlinks for a clear message, and again
// by os.Root when opening, so that a swap in between cannot escape), a file
// already being loaded (a cycle), non-regular files, and any file past the
// per-manifest budget.
func (d *decoder) readRef(at val, t target) (key string, data []byte) {
	d.files++
	if d.files > maxFiles {
		if d.files == maxFiles+1 {
			at.errf("manifest refers to more than %d files", maxFiles)
		}
		return "", nil
	}
	if d.realDir == "" {
		real, err := filepath.EvalSymlinks(d.dir)
		if err != nil {
			at.errf("manifest directory: %s", readFailure(err))
			return "", nil
		}
		d.realDir = real
	}
	real, err := filepath.EvalSymlinks(filepath.Join(d.dir, t.rel))
	if err != nil {
		at.errf("%s: %s", filepath.ToSlash(t.rel), readFailure(err))
		return "", nil
	}
	if r, err := filepath.Rel(d.realDir, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		at.errf("%s resolves through a symlink to a file outside the manifest directory", filepath.ToSlash(t.rel))
		return "", nil
	}
	for i, f := range d.stack {
		if f.key == real {
			path := make([]string, 0, len(d.stack)-i+1)
			for _, g := range d.stack[i:] {
				path = append(path, filepath.ToSlash(g.rel))
			}
			at.errf("ref cycle: %s -> %s", strings.Join(path, " -> "), filepath.ToSlash(t.rel))
			return "", nil
		}
	}
	if d.root == nil {
		if d.root, err = os.OpenRoot(d.dir); err != nil {
			at.errf("manifest directory: %s", readFailure(err))
			return "", nil
		}
	}
	st, err := d.root.Stat(t.rel)
	if err != nil {
		at.errf("%s: %s", filepath.ToSlash(t.rel), readFailure(err))
		return "", nil
	}
	if !st.Mode().IsRegular() {
		at.errf("%s is not a regular file", filepath.ToSlash(t.rel))
		return "", nil
	}
	f, err := d.root.Open(t.rel)
	if err != nil {
		at.errf("%s: %s", filepath.ToSlash(t.rel), readFailure(err))
		return "", nil
	}
	defer f.Close()
	if data, err = readBounded(f); err != nil {
		at.errf("%s: %v", filepath.ToSlash(t.rel), err)
		return "", nil
	}
	return real, data
}

// loadFile loads one ref'd primitive file of the wanted kind and calls each
// with its metadata and spec while the file is on the stack, so that refs
// inside it are resolved from its directory and cycles through it are seen.
func (d *decoder) loadFile(at val, t target, kind string, each func(Meta, *obj)) {
	key, data := d.readRef(at, t)
	if data == nil {
		return
	}
	file := filepath.Join(d.dir, t.rel)
	root := d.parseYAML(file, data)
	if root == nil {
		return
	}
	d.stack = append(d.stack, frame{key: key, rel: t.rel})
	defer func() { d.stack = d.stack[:len(d.stack)-1] }()
	env, ok := d.envelope(file, root)
	if !ok {
		return
	}
	rel := filepath.ToSlash(t.rel)
	switch {
	case env.kind != kind:
		at.errf("%s holds kind %s; expected kind %s", rel, env.kind, kind)
	case t.wantName != "" && env.meta.Name != t.wantName:
		at.errf("%s has metadata.name %q; the URI names %q", rel, env.meta.Name, t.wantName)
	case t.wantVersion != "" && env.meta.Version != t.wantVersion:
		at.errf("%s has metadata.version %q; the URI asks for %q", rel, env.meta.Version, t.wantVersion)
	default:
		each(env.meta, env.spec)
		env.spec.done()
	}
}
