package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Bounds on hostile input. They are far above what a hand-written manifest
// needs and low enough that loading stays cheap whatever the input.
const (
	maxFileSize = 4 << 20 // bytes per file
	maxDepth    = 64      // nested mappings and lists
	maxFiles    = 256     // files read for one manifest, the root included
)

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data as exactly one YAML (or JSON) document and checks
// the structural bounds. It returns the root node, or nil after reporting
// why the document was refused.
func (d *decoder) parseYAML(file string, data []byte) *yaml.Node {
	fail := func(line int, msg string) *yaml.Node {
		d.errs.add(&Error{Pos: Pos{File: file, Line: line, Col: lineCol(line)}, Msg: msg})
		return nil
	}
	if len(data) > maxFileSize {
		return fail(0, fmt.Sprintf("file is larger than %d bytes", maxFileSize))
	}
	if !utf8.Valid(data) {
		return fail(0, "file is not valid UTF-8")
	}
	if json.Valid(data) {
		// JSON allows tabs wherever it allows spaces; YAML does not allow
		// them as indentation. Valid JSON has no raw tab inside a string,
		// so this changes no value and keeps every column.
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := safeDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(0, "file is empty")
		}
		return fail(yamlErrorLine(err))
	}
	var extra yaml.Node
	if err := safeDecode(dec, &extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line, _ = yamlErrorLine(err)
		}
		return fail(line, "only one YAML document is allowed per file")
	}
	if len(doc.Content) != 1 {
		return fail(0, "file holds no document")
	}
	root := doc.Content[0]
	before := len(d.errs.list)
	d.checkNode(file, root, 1)
	if len(d.errs.list) != before {
		return nil
	}
	return root
}

// safeDecode turns a panic inside the YAML library into an error: the input
// is untrusted and a crash would take the runtime down with it.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: malformed document (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, "malformed YAML: " + m[2]
	}
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	return 0, "malformed YAML: " + msg
}

func lineCol(line int) int {
	if line > 0 {
		return 1
	}
	return 0
}

// checkNode refuses what the decoders never expect to see: anchors and
// aliases (whose expansion is the billion-laughs attack, and which hide
// one value behind another), tags other than the core schema's, merge keys,
// duplicate or non-scalar keys, and nesting deeper than maxDepth. Each
// problem is reported once; the walk stops below it.
func (d *decoder) checkNode(file string, n *yaml.Node, depth int) {
	bad := func(n *yaml.Node, msg string) {
		d.errs.add(&Error{Pos: Pos{File: file, Line: n.Line, Col: n.Column}, Msg: msg})
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		bad(n, "YAML anchors and aliases are not allowed")
		return
	}
	if !coreTag(n.Tag) {
		bad(n, fmt.Sprintf("YAML tag %s is not allowed", n.Tag))
		return
	}
	if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
		return
	}
	if depth > maxDepth {
		bad(n, fmt.Sprintf("nesting is deeper than %d levels", maxDepth))
		return
	}
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			d.checkNode(file, c, depth+1)
		}
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Anchor != "" {
			bad(k, "mapping keys must be plain scalars")
			continue
		}
		if k.Tag == "!!merge" {
			bad(k, "YAML merge keys (<<) are not allowed")
			continue
		}
		if !coreTag(k.Tag) {
			bad(k, fmt.Sprintf("YAML tag %s is not allowed", k.Tag))
			continue
		}
		if seen[k.Value] {
			bad(k, fmt.Sprintf("duplicate key %q", k.Value))
			continue
		}
		seen[k.Value] = true
		d.checkNode(file, v, depth+1)
	}
}

func coreTag(tag string) bool {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!map", "!!seq":
		return true
	}
	return false
}
