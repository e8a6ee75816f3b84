package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a manifest. Field is the path of the
// offending value inside its file, such as spec.tools[2].inline.input_schema.
type Error struct {
	Pos   Pos
	Field string
	Msg   string
}

// Error formats e as "FILE:LINE:COL: FIELD: MSG", leaving out the parts
// that are unknown.
func (e *Error) Error() string {
	var parts []string
	switch {
	case e.Pos.Line > 0:
		parts = append(parts, fmt.Sprintf("%s:%d:%d", e.Pos.File, e.Pos.Line, e.Pos.Col))
	case e.Pos.File != "":
		parts = append(parts, e.Pos.File)
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// ErrorList is every problem found in a manifest, sorted by file, line and
// column. The loader returns it as *ErrorList and never returns an empty one.
type ErrorList []*Error

// Error prints one error per line.
func (l *ErrorList) Error() string {
	lines := make([]string, len(*l))
	for i, e := range *l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors bounds the list so that a hostile file cannot make the loader
// build, sort and print millions of messages.
const maxErrors = 200

// errorSink collects errors; past a hard cap it only counts them.
type errorSink struct {
	list    ErrorList
	dropped int
}

func (s *errorSink) add(e *Error) {
	if len(s.list) >= 50*maxErrors {
		s.dropped++
		return
	}
	s.list = append(s.list, e)
}

// err returns the sorted list as an error, or nil when it is empty, so that
// callers never see a non-nil error holding no problem.
func (s *errorSink) err() error {
	if len(s.list) == 0 {
		return nil
	}
	l := s.list
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	if more := len(l) - maxErrors + s.dropped; more > 0 {
		l = append(l[:maxErrors:maxErrors], &Error{Msg: fmt.Sprintf("%d more errors not shown", more)})
	}
	return &l
}
