// Package tools holds clawkeep's built-in tool implementations.
//
// A manifest tool names one of these (metadata.labels clawkeep.dev/builtin,
// or its own name). Built-ins never reach the world on their own: file tools
// get a workspace handle that cannot name anything outside the workspace
// (os.Root: no "..", no absolute paths, no symlinks out), and network tools
// get an egress client that dials only addresses the sandbox allows. What a
// built-in needs is declared in Needs, so the kernel can refuse a call before
// it runs when the sandbox does not grant it.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/clawkeep/clawkeep/internal/egress"
)

var (
	// ErrInvalidArgs is wrapped when arguments do not fit the built-in.
	ErrInvalidArgs = errors.New("tools: invalid arguments")
	// ErrSandbox is wrapped when the sandbox refuses what the call tried.
	ErrSandbox = errors.New("tools: refused by sandbox")
)

// Needs is what a built-in needs from its sandbox.
type Needs struct {
	Network    bool
	ReadFiles  bool
	WriteFiles bool
}

// Env is what a sandbox grants one call.
type Env struct {
	Workspace      *os.Root       // or nil: no file access
	HTTP           *egress.Client // or nil: no network
	MaxOutputBytes int64          // > 0
}

// Builtin is one built-in tool.
type Builtin struct {
	Name    string
	Needs   Needs
	PathArg string // name of the argument that holds a workspace path, or ""
	URLArg  string // name of the argument that holds a URL, or ""
	run     func(ctx context.Context, env *Env, args json.RawMessage) (string, error)
}

// Run runs the tool. The error wraps ErrInvalidArgs, ErrSandbox,
// egress.ErrBlocked or a context error, or is the tool's own failure.
func (b *Builtin) Run(ctx context.Context, env *Env, args json.RawMessage) (string, error) {
	return b.run(ctx, env, args)
}

// builtins is fixed at compile time; Lookup is the only way in.
var builtins = map[string]*Builtin{
	"echo":        {Name: "echo", run: echo},
	"sleep":       {Name: "sleep", run: sleep},
	"file.read":   {Name: "file.read", Needs: Needs{ReadFiles: true}, PathArg: "path", run: fileRead},
	"file.write":  {Name: "file.write", Needs: Needs{WriteFiles: true}, PathArg: "path", run: fileWrite},
	"file.delete": {Name: "file.delete", Needs: Needs{WriteFiles: true}, PathArg: "path", run: fileDelete},
	"http.fetch":  {Name: "http.fetch", Needs: Needs{Network: true}, URLArg: "url", run: httpFetch},
}

// Lookup returns the built-in called name.
func Lookup(name string) (*Builtin, bool) {
	b, ok := builtins[name]
	return b, ok
}

// Names lists the built-ins in order, for error messages.
func Names() []string {
	return slices.Sorted(maps.Keys(builtins))
}

// decode reads args strictly into v: unknown fields are an error.
func decode(args json.RawMessage, v any) error {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	return nil
}

func echo(_ context.Context, _ *Env, args json.RawMessage) (string, error) {
	var a map[string]json.RawMessage
	if err := json.Unmarshal(args, &a); err != nil && len(args) > 0 {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	if raw, ok := a["text"]; ok && len(a) == 1 {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
	}
	if len(args) == 0 {
		return "{}", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	return buf.String(), nil
}

// sleep waits for ms milliseconds (default one minute) or until the call is
// cancelled; it exists to exercise timeouts and cancellation.
func sleep(ctx context.Context, _ *Env, args json.RawMessage) (string, error) {
	var a struct {
		MS *int64 `json:"ms"`
	}
	if err := decode(args, &a); err != nil {
		return "", err
	}
	ms := int64(60_000)
	if a.MS != nil {
		ms = *a.MS
	}
	if ms < 0 || ms > 3_600_000 {
		return "", fmt.Errorf("%w: ms must be between 0 and 3600000", ErrInvalidArgs)
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return fmt.Sprintf("slept %d ms", ms), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

type pathArgs struct {
	Path    string  `json:"path"`
	Content *string `json:"content"`
}

// workspacePath refuses what os.Root would refuse anyway, with a clearer
// message, and maps os.Root's escape errors to sandbox refusals.
func workspacePath(env *Env, p string) (string, error) {
	if env.Workspace == nil {
		return "", fmt.Errorf("%w: no filesystem access", ErrSandbox)
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: path must be a non-empty string without NUL", ErrInvalidArgs)
	}
	return strings.TrimPrefix(p, "./"), nil
}

func fsError(op, p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return fmt.Errorf("%w: %s %q: path escapes the workspace", ErrSandbox, op, p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %q: no such file in the workspace", op, p)
	}
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %q: %v", op, p, pe.Err)
	}
	return fmt.Errorf("%s %q: %v", op, p, err)
}

func fileRead(_ context.Context, env *Env, args json.RawMessage) (string, error) {
	var a pathArgs
	if err := decode(args, &a); err != nil {
		return "", err
	}
	if a.Content != nil {
		return "", fmt.Errorf("%w: file.read takes no content", ErrInvalidArgs)
	}
	p, err := workspacePath(env, a.Path)
	if err != nil {
		return "", err
	}
	f, err := env.Workspace.Open(p)
	if err != nil {
		return "", fsError("read", a.Path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, env.MaxOutputBytes+1))
	if err != nil {
		return "", fsError("read", a.Path, err)
	}
	if int64(len(data)) > env.MaxOutputBytes {
		return "", fmt.Errorf("read %q: file is larger than the output limit of %d bytes", a.Path, env.MaxOutputBytes)
	}
	return string(data), nil
}

func fileWrite(_ context.Context, env *Env, args json.RawMessage) (string, error) {
	var a pathArgs
	if err := decode(args, &a); err != nil {
		return "", err
	}
	if a.Content == nil {
		return "", fmt.Errorf("%w: file.write needs content", ErrInvalidArgs)
	}
	p, err := workspacePath(env, a.Path)
	if err != nil {
		return "", err
	}
	f, err := env.Workspace.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fsError("write", a.Path, err)
	}
	if _, err := f.WriteString(*a.Content); err != nil {
		f.Close()
		return "", fsError("write", a.Path, err)
	}
	if err := f.Close(); err != nil {
		return "", fsError("write", a.Path, err)
	}
	return fmt.Sprintf("wrote %d bytes to %s", len(*a.Content), a.Path), nil
}

func fileDelete(_ context.Context, env *Env, args json.RawMessage) (string, error) {
	var a pathArgs
	if err := decode(args, &a); err != nil {
		return "", err
	}
	p, err := workspacePath(env, a.Path)
	if err != nil {
		return "", err
	}
	if err := env.Workspace.Remove(p); err != nil {
		return "", fsError("delete", a.Path, err)
	}
	return "deleted " + a.Path, nil
}

func httpFetch(ctx context.Context, env *Env, args json.RawMessage) (string, error) {
	var a struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Body    *string           `json:"body"`
		Headers map[string]string `json:"headers"` // values may be credential placeholders, {{cred:NAME}}
	}
	if err := decode(args, &a); err != nil {
		return "", err
	}
	if env.HTTP == nil {
		return "", fmt.Errorf("%w: no network access", ErrSandbox)
	}
	switch a.Method {
	case "":
		a.Method = "GET"
	case "GET", "POST":
	default:
		return "", fmt.Errorf("%w: method must be GET or POST", ErrInvalidArgs)
	}
	var body io.Reader
	if a.Body != nil {
		body = strings.NewReader(*a.Body)
	}
	header := http.Header{}
	for k, v := range a.Headers {
		header.Set(k, v)
	}
	resp, err := env.HTTP.DoHeader(ctx, a.Method, a.URL, header, body)
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("HTTP %d\n\n%s", resp.Status, resp.Body)
	if resp.Truncated {
		out += "\n[truncated]"
	}
	return out, nil
}
