package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// val is one YAML value, with where it came from for error messages.
type val struct {
	d    *decoder
	file string
	path string // field path, e.g. spec.tools[2].inline
	n    *yaml.Node
}

func (v val) errf(format string, a ...any) {
	v.d.errs.add(&Error{Pos: Pos{File: v.file, Line: v.n.Line, Col: v.n.Column}, Field: v.path, Msg: fmt.Sprintf(format, a...)})
}

func (v val) child(key string, n *yaml.Node) val {
	p := key
	if v.path != "" {
		p = v.path + "." + key
	}
	return val{d: v.d, file: v.file, path: p, n: n}
}

func (v val) index(i int, n *yaml.Node) val {
	return val{d: v.d, file: v.file, path: fmt.Sprintf("%s[%d]", v.path, i), n: n}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str", "!!timestamp":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return n.Tag
}

func (v val) isString() bool {
	return v.n.Kind == yaml.ScalarNode && (v.n.Tag == "!!str" || v.n.Tag == "!!timestamp")
}

func (v val) str() (string, bool) {
	if !v.isString() {
		v.errf("expected a string, got %s", describe(v.n))
		return "", false
	}
	return v.n.Value, true
}

// text is a string of at least one character (the schemas' minLength: 1).
func (v val) text() (string, bool) {
	s, ok := v.str()
	if ok && s == "" {
		v.errf("must not be empty")
		return "", false
	}
	return s, ok
}

func (v val) enum(values ...string) (string, bool) {
	s, ok := v.str()
	if !ok {
		return "", false
	}
	for _, e := range values {
		if s == e {
			return s, true
		}
	}
	v.errf("%q is not one of %s", s, strings.Join(values, ", "))
	return "", false
}

func (v val) match(re *regexp.Regexp, what string) (string, bool) {
	s, ok := v.str()
	if ok && !re.MatchString(s) {
		v.errf("%q is not %s", s, what)
		return "", false
	}
	return s, ok
}

// integer accepts YAML integers and, as JSON Schema does, numbers with no
// fractional part.
func (v val) integer(min int64) (int64, bool) {
	var i int64
	switch {
	case v.n.Kind == yaml.ScalarNode && v.n.Tag == "!!int":
		if v.n.Decode(&i) != nil {
			v.errf("integer %s is out of range", v.n.Value)
			return 0, false
		}
	case v.n.Kind == yaml.ScalarNode && v.n.Tag == "!!float":
		var f float64
		if v.n.Decode(&f) != nil || f != math.Trunc(f) {
			v.errf("expected an integer, got %s", v.n.Value)
			return 0, false
		}
		if math.Abs(f) > 1<<53 {
			v.errf("integer %s is out of range", v.n.Value)
			return 0, false
		}
		i = int64(f)
	default:
		v.errf("expected an integer, got %s", describe(v.n))
		return 0, false
	}
	if i < min {
		v.errf("%d is less than the minimum %d", i, min)
		return 0, false
	}
	return i, true
}

func (v val) number(min, max float64) (float64, bool) {
	var f float64
	if v.n.Kind != yaml.ScalarNode || (v.n.Tag != "!!int" && v.n.Tag != "!!float") {
		v.errf("expected a number, got %s", describe(v.n))
		return 0, false
	}
	if v.n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		v.errf("expected a finite number, got %s", v.n.Value)
		return 0, false
	}
	if f < min || f > max {
		v.errf("%v is outside the range %v to %v", f, min, max)
		return 0, false
	}
	return f, true
}

func (v val) boolean() (bool, bool) {
	if v.n.Kind != yaml.ScalarNode || v.n.Tag != "!!bool" {
		v.errf("expected a boolean, got %s", describe(v.n))
		return false, false
	}
	var b bool
	err := v.n.Decode(&b)
	return b, err == nil
}

func (v val) list() ([]val, bool) {
	if v.n.Kind != yaml.SequenceNode {
		v.errf("expected a list, got %s", describe(v.n))
		return nil, false
	}
	out := make([]val, len(v.n.Content))
	for i, c := range v.n.Content {
		out[i] = v.index(i, c)
	}
	return out, true
}

func (v val) strs() []string {
	items, ok := v.list()
	if !ok {
		return nil
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.str(); ok {
			out = append(out, s)
		}
	}
	return out
}

func (v val) strMap() map[string]string {
	o, ok := v.object()
	if !ok {
		return nil
	}
	out := make(map[string]string, len(o.n.Content)/2)
	for i := 0; i+1 < len(o.n.Content); i += 2 {
		k := o.n.Content[i].Value
		o.asked[k] = true
		if s, ok := v.child(k, o.n.Content[i+1]).str(); ok {
			out[k] = s
		}
	}
	return out
}

// toAny converts a value to the JSON data model: maps with string keys,
// lists, strings, float64 or int64 numbers, booleans and nil.
func (v val) toAny() (any, bool) {
	n := v.n
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			x, good := v.child(k, n.Content[i+1]).toAny()
			m[k], ok = x, ok && good
		}
		return m, ok
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		for i, c := range n.Content {
			x, good := v.index(i, c).toAny()
			l[i], ok = x, ok && good
		}
		return l, ok
	}
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool":
		return v.boolean()
	case "!!int":
		return v.integer(math.MinInt64)
	case "!!float":
		return v.number(-math.MaxFloat64, math.MaxFloat64)
	}
	return n.Value, true
}

// jsonObject returns a mapping as compact JSON.
func (v val) jsonObject() (json.RawMessage, bool) {
	if v.n.Kind != yaml.MappingNode {
		v.errf("expected a mapping, got %s", describe(v.n))
		return nil, false
	}
	x, ok := v.toAny()
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(x)
	if err != nil {
		v.errf("cannot be written as JSON: %v", err)
		return nil, false
	}
	return b, true
}

// obj is a YAML mapping decoded strictly: every key must be asked for by
// the decoder, and done reports the others as unknown.
type obj struct {
	val
	keys  map[string]int // key -> index of its value in n.Content
	asked map[string]bool
}

func (v val) object() (*obj, bool) {
	if v.n.Kind != yaml.MappingNode {
		v.errf("expected a mapping, got %s", describe(v.n))
		return nil, false
	}
	o := &obj{val: v, keys: map[string]int{}, asked: map[string]bool{}}
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		o.keys[v.n.Content[i].Value] = i + 1
	}
	return o, true
}

func (o *obj) has(key string) bool {
	_, ok := o.keys[key]
	return ok
}

// get returns the value of key, marking key as known.
func (o *obj) get(key string) (val, bool) {
	o.asked[key] = true
	i, ok := o.keys[key]
	if !ok {
		return val{}, false
	}
	return o.child(key, o.n.Content[i]), true
}

// need reports each missing key.
func (o *obj) need(keys ...string) bool {
	ok := true
	for _, k := range keys {
		o.asked[k] = true
		if !o.has(k) {
			o.child(k, o.n).errf("required field is missing")
			ok = false
		}
	}
	return ok
}

// conflict reports an object that sets both a shorthand key and its
// canonical twin: which one wins would be a guess.
func (o *obj) conflict(short, canonical string) bool {
	if o.has(short) && o.has(canonical) {
		i := o.keys[short]
		o.child(short, o.n.Content[i-1]).errf("shorthand %q cannot be mixed with %q in one object", short, canonical)
		return true
	}
	return false
}

// rest returns the keys not asked for so far, as JSON values, and marks them
// known. It serves the places where the schema allows extra keys.
func (o *obj) rest() map[string]any {
	var out map[string]any
	for i := 0; i+1 < len(o.n.Content); i += 2 {
		k := o.n.Content[i].Value
		if o.asked[k] {
			continue
		}
		if x, ok := o.child(k, o.n.Content[i+1]).toAny(); ok {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = x
		}
	}
	for k := range o.keys {
		o.asked[k] = true
	}
	return out
}

// done reports every key the decoder did not ask for.
func (o *obj) done() {
	var unknown []*yaml.Node
	for i := 0; i+1 < len(o.n.Content); i += 2 {
		if k := o.n.Content[i]; !o.asked[k.Value] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return
	}
	known := make([]string, 0, len(o.asked))
	for k := range o.asked {
		known = append(known, k)
	}
	sort.Strings(known)
	hint := ""
	if len(known) > 0 {
		hint = "; expected one of " + strings.Join(known, ", ")
	}
	for _, k := range unknown {
		o.child(k.Value, k).errf("unknown field%s", hint)
	}
}

// Getters for optional fields: they return the zero value when the key is
// absent or invalid (after reporting why).

func (o *obj) str(key string) string {
	if v, ok := o.get(key); ok {
		s, _ := v.str()
		return s
	}
	return ""
}

func (o *obj) text(key string) string {
	if v, ok := o.get(key); ok {
		s, _ := v.text()
		return s
	}
	return ""
}

func (o *obj) enum(key string, values ...string) string {
	if v, ok := o.get(key); ok {
		s, _ := v.enum(values...)
		return s
	}
	return ""
}

func (o *obj) integer(key string, min int64) int64 {
	if v, ok := o.get(key); ok {
		i, _ := v.integer(min)
		return i
	}
	return 0
}

func (o *obj) integerPtr(key string, min int64) *int64 {
	if v, ok := o.get(key); ok {
		if i, ok := v.integer(min); ok {
			return &i
		}
	}
	return nil
}

func (o *obj) number(key string, min, max float64) float64 {
	if p := o.numberPtr(key, min, max); p != nil {
		return *p
	}
	return 0
}

func (o *obj) numberPtr(key string, min, max float64) *float64 {
	if v, ok := o.get(key); ok {
		if f, ok := v.number(min, max); ok {
			return &f
		}
	}
	return nil
}

func (o *obj) flag(key string) bool {
	if p := o.flagPtr(key); p != nil {
		return *p
	}
	return false
}

func (o *obj) flagPtr(key string) *bool {
	if v, ok := o.get(key); ok {
		if b, ok := v.boolean(); ok {
			return &b
		}
	}
	return nil
}

func (o *obj) strs(key string) []string {
	if v, ok := o.get(key); ok {
		return v.strs()
	}
	return nil
}

func (o *obj) enums(key string, values ...string) []string {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	items, _ := v.list()
	var out []string
	for _, it := range items {
		if s, ok := it.enum(values...); ok {
			out = append(out, s)
		}
	}
	return out
}

func (o *obj) strMap(key string) map[string]string {
	if v, ok := o.get(key); ok {
		return v.strMap()
	}
	return nil
}

func (o *obj) anyMap(key string) map[string]any {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	if v.n.Kind != yaml.MappingNode {
		v.errf("expected a mapping, got %s", describe(v.n))
		return nil
	}
	x, _ := v.toAny()
	m, _ := x.(map[string]any)
	return m
}

// sub returns the nested mapping at key, or nil when it is absent or not a
// mapping. The caller must call done on it.
func (o *obj) sub(key string) *obj {
	if v, ok := o.get(key); ok {
		if s, ok := v.object(); ok {
			return s
		}
	}
	return nil
}

func (o *obj) list(key string) []val {
	if v, ok := o.get(key); ok {
		l, _ := v.list()
		return l
	}
	return nil
}

// in decodes the nested mapping at key with f, if it is there.
func (o *obj) in(key string, f func(*obj)) bool {
	s := o.sub(key)
	if s == nil {
		return false
	}
	f(s)
	s.done()
	return true
}

// objects decodes each mapping of the list at key with f.
func (o *obj) objects(key string, f func(int, *obj)) {
	for i, it := range o.list(key) {
		if s, ok := it.object(); ok {
			f(i, s)
			s.done()
		}
	}
}

// rawSpec is the spec as JSON values, without the metadata keys an inline
// item may carry.
func (o *obj) rawSpec() map[string]any {
	x, _ := o.toAny()
	m, _ := x.(map[string]any)
	delete(m, "name")
	delete(m, "version")
	delete(m, "labels")
	return m
}
