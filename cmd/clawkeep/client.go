package main

// The client subcommands speak the serve API (internal/server/openapi.yaml)
// to a remote clawkeep.
//
// # Threat model
//
// The bearer token in the config file is as good as the user's password
// until it expires, so:
//   - it is sent only to the server it was issued by: a token from the config
//     file is ignored when --server or CLAWKEEP_SERVER names another server;
//   - it never travels in clear text to another machine: plain http is
//     refused except to a loopback address, unless --insecure-http;
//   - a server URL with user:password@ is refused, since it would put a
//     password in shell history and the config file;
//   - it is printed nowhere (bearerToken prints as [redacted]); the only
//     secrets this code prints are the new tokens that `token create` and
//     `agent token` exist to show, once;
//   - the config file is written 0600 in a 0700 directory, atomically, and a
//     config file others could read is refused, like ssh refuses a private key
//     with loose permissions, since its token may already have leaked;
//   - redirects are not followed, so a server cannot bounce the
//     Authorization header to another place.
//
// A hostile or broken server can at most make a command fail: responses are
// bounded (clientMaxResponse; the audit export streams instead), and the text
// printed from them has its control characters escaped, so a server cannot
// rewrite the operator's terminal.
//
// Passwords and credential values are read from standard input, never from
// arguments, where other local users can read them in the process table.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

const (
	// clientTimeout bounds one request; approving may wait on the server.
	clientTimeout = 60 * time.Second
	// clientMaxResponse bounds every response read into memory.
	clientMaxResponse = 16 << 20
	// clientMaxManifest bounds the claw.yaml that agent apply reads.
	clientMaxManifest = 4 << 20
	// maxPasswordBytes bounds the password line read from stdin.
	clientMaxPassword = 4096
)

const clientUsage = `Client commands (talk to a clawkeep serve instance):
  clawkeep bootstrap --server URL --token BOOTSTRAP_TOKEN --email E   (password: first line of stdin)
  clawkeep login --server URL --email E                              (password: first line of stdin)
  clawkeep logout
  clawkeep org create NAME | org list
  clawkeep user add --org O --email E --role R [--password-stdin]
  clawkeep member list --org O
  clawkeep member set-role --org O --user-id N --role R
  clawkeep member remove --org O --user-id N
  clawkeep token create --org O --name N --role R [--expires 720h]
  clawkeep token list --org O | token revoke --org O ID
  clawkeep agent apply --org O -f claw.yaml
  clawkeep agent list --org O | get|delete|token --org O NAME
  clawkeep ability grant --org O --agent A --service S --action NAME=automatic|approval|disabled...
      [--credential NAME --host H... [--header H] [--format F]] [--guidelines T]
  clawkeep ability list --org O --agent A | revoke --org O --agent A --service S
  clawkeep credential set --org O --name N --type api-key|bearer|basic|oauth|file   (value: all of stdin)
  clawkeep credential list --org O | delete --org O --name N
  clawkeep approvals list --org O
  clawkeep approvals approve --org O ID [--note T]
  clawkeep approvals reject --org O ID --reason not_needed|wrong_target|too_risky|needs_changes|other [--details T]
  clawkeep remote-audit verify|export --org O

Every command takes --server URL, --token T, --json (print the server's JSON)
and --insecure-http. The server and token come from the flags, else
CLAWKEEP_SERVER and CLAWKEEP_TOKEN, else the config file ($CLAWKEEP_CONFIG,
else $XDG_CONFIG_HOME/clawkeep/client.json, else ~/.config/clawkeep/client.json).
Exit status: 0 done, 1 the server refused, 2 usage or local error.
`

// clientCommand runs a client subcommand; handled=false if name is not one.
func clientCommand(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, handled bool) {
	c := &clientRun{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	var run func([]string) int
	switch name {
	case "bootstrap":
		run = c.bootstrap
	case "login":
		run = c.login
	case "logout":
		run = c.logout
	case "org":
		run = c.verbs("org", map[string]func(string, []string) int{"create": c.orgCreate, "list": c.orgList})
	case "user":
		run = c.verbs("user", map[string]func(string, []string) int{"add": c.userAdd})
	case "member":
		run = c.verbs("member", map[string]func(string, []string) int{
			"list": c.memberList, "set-role": c.memberSetRole, "remove": c.memberRemove})
	case "token":
		run = c.verbs("token", map[string]func(string, []string) int{
			"create": c.tokenCreate, "list": c.tokenList, "revoke": c.tokenRevoke})
	case "agent":
		run = c.verbs("agent", map[string]func(string, []string) int{
			"apply": c.agentApply, "list": c.agentList, "get": c.agentGet, "delete": c.agentDelete, "token": c.agentToken})
	case "ability":
		run = c.verbs("ability", map[string]func(string, []string) int{
			"grant": c.abilityGrant, "list": c.abilityList, "revoke": c.abilityRevoke})
	case "credential":
		run = c.verbs("credential", map[string]func(string, []string) int{
			"set": c.credentialSet, "list": c.credentialList, "delete": c.credentialDelete})
	case "approvals":
		run = c.verbs("approvals", map[string]func(string, []string) int{
			"list": c.approvalsList, "approve": c.approvalsApprove, "reject": c.approvalsReject})
	case "remote-audit":
		run = c.verbs("remote-audit", map[string]func(string, []string) int{
			"verify": c.auditVerify, "export": c.auditExport})
	default:
		return 0, false
	}
	return run(args), true
}

// clientRun is one invocation's I/O and environment.
type clientRun struct {
	stdin          io.Reader           // never nil
	stdout, stderr io.Writer           // never nil
	getenv         func(string) string // never nil
}

// verbs dispatches "NOUN VERB ARGS..." to the verb's handler.
func (c *clientRun) verbs(noun string, table map[string]func(string, []string) int) func([]string) int {
	return func(args []string) int {
		names := slices.Sorted(maps.Keys(table))
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			w, code := c.stdout, 0
			if len(args) == 0 {
				w, code = c.stderr, 2
			}
			fmt.Fprintf(w, "usage:\n")
			for line := range strings.Lines(clientUsage) {
				if strings.HasPrefix(strings.TrimSpace(line), "clawkeep "+noun+" ") {
					fmt.Fprint(w, line)
				}
			}
			fmt.Fprint(w, clientUsage[strings.Index(clientUsage, "\nEvery command")+1:])
			return code
		}
		h, ok := table[args[0]]
		if !ok {
			fmt.Fprintf(c.stderr, "clawkeep %s: unknown verb %s; use %s\n", noun, termSafe(args[0]), strings.Join(names, ", "))
			return 2
		}
		return h(noun+" "+args[0], args[1:])
	}
}

// ---- values whose invalid states cannot be built ----

// serverURL is the base URL of a clawkeep server that is safe to send a
// token to. The zero serverURL is invalid; only parseServerURL makes one.
type serverURL struct{ base string }

func (s serverURL) IsValid() bool  { return s.base != "" }
func (s serverURL) String() string { return s.base }

// parseServerURL accepts http(s)://host[:port][/prefix] and refuses:
// user:password@ (a password in history and in the config file), any other
// scheme, a query or fragment (they would be mangled into every path), and
// plain http to anything but a loopback address (the token would cross the
// network in clear text) unless insecureHTTP.
func parseServerURL(raw string, insecureHTTP bool) (serverURL, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return serverURL{}, fmt.Errorf("server URL %s: not a URL", termSafe(raw))
	}
	if u.User != nil {
		// The URL is not echoed: it holds a password.
		return serverURL{}, errors.New("server URL: user:password@ is refused; log in with clawkeep login instead")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return serverURL{}, fmt.Errorf("server URL %s: the scheme must be http or https", termSafe(raw))
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return serverURL{}, fmt.Errorf("server URL %s: no host", termSafe(raw))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return serverURL{}, fmt.Errorf("server URL %s: a query or fragment is not allowed", termSafe(raw))
	}
	host := strings.ToLower(u.Hostname())
	if scheme == "http" && !insecureHTTP && !clientIsLoopback(host) {
		return serverURL{}, fmt.Errorf("server URL %s: plain http to a non-loopback host would send the token in clear text; use https, or --insecure-http if the network is trusted", termSafe(raw))
	}
	u.Scheme, u.Host = scheme, strings.ToLower(u.Host)
	return serverURL{base: strings.TrimRight(u.String(), "/")}, nil
}

// clientIsLoopback reports whether host is localhost or a literal loopback
// address. Other spellings (127.1, 0x7f.1, localhost.) are not loopback
// here: failing closed only costs an --insecure-http.
func clientIsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback() && a.Zone() == ""
}

// bearerToken is a credential for the API. It prints as [redacted] in every
// format, so a stray %v cannot leak it; reveal returns the value. The value
// sits behind a pointer because fmt prints a struct's unexported fields
// without their Format methods: inside another struct, a pointer prints as
// an address. The zero bearerToken is invalid.
type bearerToken struct{ secret *string }

func parseBearerToken(s string) (bearerToken, error) {
	if s == "" {
		return bearerToken{}, errors.New("empty token")
	}
	for _, r := range s {
		// Anything else would break (or inject into) the Authorization header.
		if r <= ' ' || r > '~' {
			return bearerToken{}, errors.New("the token holds a character no token has")
		}
	}
	return bearerToken{secret: &s}, nil
}

func (t bearerToken) IsValid() bool                 { return t.secret != nil }
func (t bearerToken) String() string                { return "[redacted]" }
func (t bearerToken) GoString() string              { return "[redacted]" }
func (t bearerToken) Format(f fmt.State, verb rune) { io.WriteString(f, "[redacted]") }

// reveal returns the token itself. Only the Authorization header and the
// config file may hold the result.
func (t bearerToken) reveal() string {
	if t.secret == nil {
		return ""
	}
	return *t.secret
}

// ---- configuration ----

// clientConfig is the config file: the server logged in to and its session.
type clientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token,omitempty"`
}

// configPath returns where the config file lives.
func (c *clientRun) configPath() (string, error) {
	if p := c.getenv("CLAWKEEP_CONFIG"); p != "" {
		return p, nil
	}
	if d := c.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "clawkeep", "client.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no config file location: set CLAWKEEP_CONFIG (%v)", err)
	}
	return filepath.Join(home, ".config", "clawkeep", "client.json"), nil
}

// clientReadConfig returns the config, or a zero config if there is no file. A
// file others may read is refused: its token may have been copied already,
// and using it quietly would hide that.
func clientReadConfig(path string) (clientConfig, error) {
	// Stat first: opening a FIFO planted at the path would block.
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return clientConfig{}, nil
	} else if err != nil {
		return clientConfig{}, fmt.Errorf("config: %v", err)
	} else if !fi.Mode().IsRegular() {
		return clientConfig{}, fmt.Errorf("config %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return clientConfig{}, fmt.Errorf("config: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return clientConfig{}, fmt.Errorf("config: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return clientConfig{}, fmt.Errorf("config %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return clientConfig{}, fmt.Errorf("config %s: permissions %04o are too open: it holds a session token that other users can read; run chmod 600 %s, and log in again if the token may have leaked", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return clientConfig{}, fmt.Errorf("config: %v", err)
	}
	var cfg clientConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		// The decoder's message may quote the file's contents, the token among them.
		return clientConfig{}, fmt.Errorf("config %s: not a clawkeep client config", path)
	}
	return cfg, nil
}

// clientWriteConfig replaces the config file atomically: a crash leaves the old
// file or the new one, never half of one, and the token is never in a file
// others can read, not even for a moment (CreateTemp makes files 0600).
func clientWriteConfig(path string, cfg clientConfig) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %v", err)
	}
	f, err := os.CreateTemp(dir, ".client-*.json")
	if err != nil {
		return fmt.Errorf("config: %v", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	ok = true
	return nil
}

// ---- common flags and target resolution ----

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server, token string
	json          bool
	insecureHTTP  bool
}

func (c *clientRun) newFlags(name string, withToken bool) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, "usage:")
		for line := range strings.Lines(clientUsage) {
			if strings.HasPrefix(strings.TrimSpace(line), "clawkeep "+name+" ") {
				fmt.Fprint(c.stderr, line)
			}
		}
		fmt.Fprintln(c.stderr, "flags:")
		fs.PrintDefaults()
	}
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", "", "server URL (default $CLAWKEEP_SERVER, else the config file)")
	if withToken {
		fs.StringVar(&cf.token, "token", "", "API or session token (default $CLAWKEEP_TOKEN, else the config file); prefer the environment, arguments are visible to other local users")
	}
	fs.BoolVar(&cf.json, "json", false, "print the server's JSON response")
	fs.BoolVar(&cf.insecureHTTP, "insecure-http", false, "allow plain http to a non-loopback server (the token crosses the network in clear text)")
	return fs, cf
}

// clientParseArgs parses flags and positional arguments in any order, so both
// `agent get NAME --org O` and `agent get --org O NAME` work; after "--"
// everything is positional.
func clientParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// clientTarget is where requests go and with what credential.
type clientTarget struct {
	server serverURL   // always valid
	token  bearerToken // or invalid when the command needs none
}

// resolve finds the server and token, first found wins: flags, then the
// environment, then the config file. The config file's token goes only to
// the config file's server, never to a server named elsewhere.
func (c *clientRun) resolve(cf *clientFlags, needToken bool) (clientTarget, error) {
	rawServer, rawToken := cf.server, cf.token
	if rawServer == "" {
		rawServer = c.getenv("CLAWKEEP_SERVER")
	}
	if rawToken == "" {
		rawToken = c.getenv("CLAWKEEP_TOKEN")
	}
	var cfg clientConfig
	if rawServer == "" || (needToken && rawToken == "") {
		path, err := c.configPath()
		if err != nil {
			return clientTarget{}, err
		}
		if cfg, err = clientReadConfig(path); err != nil {
			return clientTarget{}, err
		}
	}
	if rawServer == "" {
		rawServer = cfg.Server
	}
	if rawServer == "" {
		return clientTarget{}, errors.New("no server: use --server, set CLAWKEEP_SERVER, or log in")
	}
	srv, err := parseServerURL(rawServer, cf.insecureHTTP)
	if err != nil {
		return clientTarget{}, err
	}
	t := clientTarget{server: srv}
	if !needToken {
		return t, nil
	}
	if rawToken == "" && cfg.Token != "" {
		if saved, err := parseServerURL(cfg.Server, true); err != nil || saved != srv {
			return clientTarget{}, fmt.Errorf("not logged in to %s (the saved session is for another server): log in, or set CLAWKEEP_TOKEN", srv)
		}
		rawToken = cfg.Token
	}
	if rawToken == "" {
		return clientTarget{}, errors.New("not logged in: run clawkeep login, or set CLAWKEEP_TOKEN")
	}
	if t.token, err = parseBearerToken(rawToken); err != nil {
		return clientTarget{}, err
	}
	return t, nil
}

// ---- HTTP ----

// clientProblem is an error response from the server.
type clientProblem struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Title      string `json:"title"`
	Detail     string `json:"detail"`
	retryAfter string
}

func (p *clientProblem) Error() string {
	s := "server refused"
	if p.Code != "" {
		s += " (" + termSafe(p.Code) + ")"
	} else {
		s += fmt.Sprintf(" (HTTP %d)", p.Status)
	}
	switch {
	case p.Detail != "":
		// Validation errors come one per line; each line is made printable.
		lines := strings.Split(strings.TrimRight(p.Detail, "\n"), "\n")
		for i, l := range lines {
			lines[i] = termSafe(l)
		}
		s += ": " + strings.Join(lines, "\n  ")
	case p.Title != "":
		s += ": " + termSafe(p.Title)
	}
	if p.retryAfter != "" {
		s += "; retry after " + termSafe(p.retryAfter) + " s"
	}
	return s
}

// clientPath joins escaped path segments: a name holding "/" or ".." stays one
// segment and cannot reach another route.
func clientPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func newClientHTTP(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		// The API never redirects; following one could carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// clientSend makes one request and returns the response if its status is 2xx,
// else a *clientProblem. The caller closes the body.
func clientSend(ctx context.Context, hc *http.Client, t clientTarget, method, path, contentType string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.server.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "clawkeep/"+version)
	if t.token.IsValid() {
		req.Header.Set("Authorization", "Bearer "+t.token.reveal())
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	p := &clientProblem{}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, p) != nil || p.Code == "" {
		p = &clientProblem{}
	}
	p.Status = resp.StatusCode
	p.retryAfter = resp.Header.Get("Retry-After")
	return nil, p
}

// call sends a JSON (or other) body and returns the bounded response body.
func (c *clientRun) call(t clientTarget, method, path, contentType string, body []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	resp, err := clientSend(ctx, newClientHTTP(clientTimeout), t, method, path, contentType, body)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, clientMaxResponse+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the response: %v", err)
	}
	if len(data) > clientMaxResponse {
		return nil, 0, fmt.Errorf("the response is larger than %d MiB", clientMaxResponse>>20)
	}
	return data, resp.StatusCode, nil
}

func (c *clientRun) callJSON(t clientTarget, method, path string, in any) ([]byte, int, error) {
	if in == nil {
		return c.call(t, method, path, "", nil)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, 0, err
	}
	return c.call(t, method, path, "application/json", body)
}

// fail prints err and returns its exit status: 1 if the server refused, 2
// for anything local (usage, network, a malformed answer).
func (c *clientRun) fail(cmd string, err error) int {
	fmt.Fprintf(c.stderr, "clawkeep %s: %v\n", cmd, err)
	var p *clientProblem
	if errors.As(err, &p) {
		return 1
	}
	return 2
}

func (c *clientRun) usage(cmd, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "clawkeep %s: "+format+"\n", append([]any{cmd}, a...)...)
	return 2
}

// clientDecode parses a response into v, reporting a malformed one as local.
func clientDecode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("the server's answer is not the JSON the API promises: %v", err)
	}
	return nil
}

// clientJSONText is a scalar the API returns as a string or a number (ids), kept
// as its text.
type clientJSONText string

func (j *clientJSONText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*j = clientJSONText(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*j = clientJSONText(n.String())
		return nil
	}
	if string(b) == "null" {
		*j = ""
		return nil
	}
	return fmt.Errorf("want a string or a number, got %.20s", b)
}

// termSafe escapes control characters in text from the server, so a
// hostile server cannot send terminal escape sequences to the operator.
func termSafe(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// table prints rows under a header, aligned, each cell made printable.
func (c *clientRun) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, v := range r {
			v = termSafe(v)
			if v == "" {
				v = "-"
			}
			cells[i] = strings.ReplaceAll(v, "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// rawJSON prints a response as it came, with a final newline, for --json.
// Only valid JSON is printed: it cannot hold a raw control character, so a
// server cannot reach the terminal through it.
func (c *clientRun) rawJSON(cmd string, data []byte) int {
	if len(bytes.TrimSpace(data)) == 0 {
		return 0
	}
	if !json.Valid(data) {
		return c.fail(cmd, errors.New("the server's answer is not JSON"))
	}
	c.stdout.Write(data)
	if data[len(data)-1] != '\n' {
		fmt.Fprintln(c.stdout)
	}
	return 0
}

// clientReadPassword reads the first line of stdin; the password never appears
// in arguments or output.
func clientReadPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, clientMaxPassword+1), 64).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if len(line) > clientMaxPassword {
		return "", fmt.Errorf("the password line is longer than %d bytes", clientMaxPassword)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on the first line of standard input")
	}
	return line, nil
}

// ---- session commands ----

func (c *clientRun) bootstrap(args []string) int {
	const cmd = "bootstrap"
	fs, cf := c.newFlags(cmd, false)
	tok := fs.String("token", "", "the bootstrap token the server printed at first start")
	email := fs.String("email", "", "the instance owner's email")
	pos, err := clientParseArgs(fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	if len(pos) > 0 || *email == "" || *tok == "" {
		return c.usage(cmd, "usage: bootstrap --server URL --token BOOTSTRAP_TOKEN --email E (password on the first line of stdin)")
	}
	t, err := c.resolve(cf, false)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	password, err := clientReadPassword(c.stdin)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	data, _, err := c.callJSON(t, http.MethodPost, "/v1/bootstrap", map[string]string{"token": *tok, "email": *email, "password": password})
	if err != nil {
		return c.fail(cmd, err)
	}
	var out struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	if cf.json {
		if code := c.rawJSON(cmd, data); code != 0 {
			return code
		}
	} else {
		fmt.Fprintf(c.stdout, "instance owner %s created\n", termSafe(out.User.Email))
	}
	return c.loginAndSave(cmd, t, cf, *email, password)
}

func (c *clientRun) login(args []string) int {
	const cmd = "login"
	fs, cf := c.newFlags(cmd, false)
	email := fs.String("email", "", "your email")
	pos, err := clientParseArgs(fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	if len(pos) > 0 || *email == "" {
		return c.usage(cmd, "usage: login --server URL --email E (password on the first line of stdin)")
	}
	t, err := c.resolve(cf, false)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	password, err := clientReadPassword(c.stdin)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	return c.loginAndSave(cmd, t, cf, *email, password)
}

// loginAndSave logs in and saves the session in the config file. The
// session token is printed nowhere, not even with --json.
func (c *clientRun) loginAndSave(cmd string, t clientTarget, cf *clientFlags, email, password string) int {
	path, err := c.configPath()
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	data, _, err := c.callJSON(t, http.MethodPost, "/v1/login", map[string]string{"email": email, "password": password})
	if err != nil {
		return c.fail(cmd, err)
	}
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		User      struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	tok, err := parseBearerToken(out.Token)
	if err != nil {
		return c.fail(cmd, fmt.Errorf("the server's answer has no usable token: %v", err))
	}
	if err := clientWriteConfig(path, clientConfig{Server: t.server.String(), Token: tok.reveal()}); err != nil {
		return c.fail(cmd, err)
	}
	if cf.json {
		return c.rawJSON(cmd, clientRedactToken(data))
	}
	expires := ""
	if out.ExpiresAt != "" {
		expires = "; session expires " + termSafe(out.ExpiresAt)
	}
	fmt.Fprintf(c.stdout, "logged in to %s as %s%s; saved in %s\n", t.server, termSafe(out.User.Email), expires, path)
	return 0
}

// clientRedactToken replaces a top-level "token" member, for output.
func clientRedactToken(data []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return []byte(`{"token":"[redacted]"}`)
	}
	if _, ok := m["token"]; ok {
		m["token"] = json.RawMessage(`"[redacted]"`)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return []byte(`{"token":"[redacted]"}`)
	}
	return out
}

// logout ends the session on the server and forgets it locally. The local
// copy goes even if the server refuses, so a stolen laptop's config cannot
// outlive the user's intent; the exit status still reports the refusal.
func (c *clientRun) logout(args []string) int {
	const cmd = "logout"
	fs, cf := c.newFlags(cmd, true)
	pos, err := clientParseArgs(fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	if len(pos) > 0 {
		return c.usage(cmd, "usage: logout")
	}
	t, err := c.resolve(cf, true)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	_, _, callErr := c.callJSON(t, http.MethodPost, "/v1/logout", nil)
	path, err := c.configPath()
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	cfg, err := clientReadConfig(path)
	if err == nil && cfg.Token != "" && cfg.Token == t.token.reveal() {
		err = clientWriteConfig(path, clientConfig{Server: cfg.Server})
	}
	if err != nil {
		return c.fail(cmd, err)
	}
	var p *clientProblem
	if callErr != nil && !(errors.As(callErr, &p) && p.Code == "unauthenticated") {
		return c.fail(cmd, callErr)
	}
	fmt.Fprintf(c.stdout, "logged out of %s\n", t.server)
	return 0
}

// clientFlagExit maps a flag parsing error to an exit status: --help is success.
func clientFlagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// ---- an org-scoped command skeleton ----

// clientOrgCmd holds what an org-scoped command parsed.
type clientOrgCmd struct {
	name string
	fs   *flag.FlagSet
	cf   *clientFlags
	org  *string
}

func (c *clientRun) orgFlags(name string) *clientOrgCmd {
	fs, cf := c.newFlags(name, true)
	return &clientOrgCmd{name: name, fs: fs, cf: cf, org: fs.String("org", "", "organisation")}
}

// parse parses args, checks --org and the count of positional arguments,
// and resolves the target. On failure it returns the exit status.
func (c *clientRun) parse(o *clientOrgCmd, args []string, wantPos int, usage string) ([]string, clientTarget, int, bool) {
	pos, err := clientParseArgs(o.fs, args)
	if err != nil {
		return nil, clientTarget{}, clientFlagExit(err), false
	}
	if *o.org == "" || len(pos) != wantPos {
		return nil, clientTarget{}, c.usage(o.name, "usage: %s %s", o.name, usage), false
	}
	t, err := c.resolve(o.cf, true)
	if err != nil {
		return nil, clientTarget{}, c.usage(o.name, "%v", err), false
	}
	return pos, t, 0, true
}

// simple sends one request and prints the JSON with --json or done
// otherwise; for commands whose success needs no table.
// getJSON GETs path: with --json it prints the answer as it came; otherwise
// it decodes it into out. done means the command is over, with code.
func (c *clientRun) getJSON(cmd string, asJSON bool, t clientTarget, path string, out any) (code int, done bool) {
	data, _, err := c.callJSON(t, http.MethodGet, path, nil)
	if err != nil {
		return c.fail(cmd, err), true
	}
	if asJSON {
		return c.rawJSON(cmd, data), true
	}
	if err := clientDecode(data, out); err != nil {
		return c.fail(cmd, err), true
	}
	return 0, false
}

func (c *clientRun) simple(o *clientOrgCmd, t clientTarget, method, path string, in any, done string) int {
	data, _, err := c.callJSON(t, method, path, in)
	if err != nil {
		return c.fail(o.name, err)
	}
	if o.cf.json {
		return c.rawJSON(o.name, data)
	}
	fmt.Fprintln(c.stdout, done)
	return 0
}

func clientValidRole(r string) bool {
	return r == "viewer" || r == "member" || r == "admin" || r == "owner"
}

// ---- orgs, users and members ----

func (c *clientRun) orgCreate(cmd string, args []string) int {
	fs, cf := c.newFlags(cmd, true)
	pos, err := clientParseArgs(fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	if len(pos) != 1 || pos[0] == "" {
		return c.usage(cmd, "usage: org create NAME")
	}
	t, err := c.resolve(cf, true)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	data, _, err := c.callJSON(t, http.MethodPost, "/v1/orgs", map[string]string{"name": pos[0]})
	if err != nil {
		return c.fail(cmd, err)
	}
	if cf.json {
		return c.rawJSON(cmd, data)
	}
	var out struct {
		Name string         `json:"name"`
		ID   clientJSONText `json:"id"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintf(c.stdout, "created org %s (id %s); you are its owner\n", termSafe(out.Name), termSafe(string(out.ID)))
	return 0
}

func (c *clientRun) orgList(cmd string, args []string) int {
	fs, cf := c.newFlags(cmd, true)
	pos, err := clientParseArgs(fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	if len(pos) != 0 {
		return c.usage(cmd, "usage: org list")
	}
	t, err := c.resolve(cf, true)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	var out struct {
		Orgs []struct{ Name, Role string } `json:"orgs"`
	}
	if code, done := c.getJSON(cmd, cf.json, t, "/v1/orgs", &out); done {
		return code
	}
	rows := [][]string{}
	for _, o := range out.Orgs {
		rows = append(rows, []string{o.Name, o.Role})
	}
	c.table([]string{"ORG", "ROLE"}, rows)
	return 0
}

func (c *clientRun) userAdd(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	email := o.fs.String("email", "", "the user's email")
	role := o.fs.String("role", "", "viewer, member, admin or owner")
	pwStdin := o.fs.Bool("password-stdin", false, "read the password of a new user from the first line of stdin")
	_, t, code, ok := c.parse(o, args, 0, "--org O --email E --role R [--password-stdin]")
	if !ok {
		return code
	}
	if *email == "" || !clientValidRole(*role) {
		return c.usage(cmd, "usage: user add --org O --email E --role viewer|member|admin|owner [--password-stdin]")
	}
	in := map[string]string{"email": *email, "role": *role}
	if *pwStdin {
		pw, err := clientReadPassword(c.stdin)
		if err != nil {
			return c.usage(cmd, "%v", err)
		}
		in["password"] = pw
	}
	data, _, err := c.callJSON(t, http.MethodPost, clientPath("v1", "orgs", *o.org, "members"), in)
	if err != nil {
		return c.fail(cmd, err)
	}
	if o.cf.json {
		return c.rawJSON(cmd, data)
	}
	var out struct {
		UserID clientJSONText `json:"user_id"`
		Email  string         `json:"email"`
		Role   string         `json:"role"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintf(c.stdout, "added %s (user id %s) to %s as %s\n", termSafe(out.Email), termSafe(string(out.UserID)), termSafe(*o.org), termSafe(out.Role))
	return 0
}

type clientMember struct {
	UserID  clientJSONText `json:"user_id"`
	Email   string         `json:"email"`
	Role    string         `json:"role"`
	AddedAt string         `json:"added_at"`
}

func (c *clientRun) memberList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	var out struct {
		Members []clientMember `json:"members"`
	}
	if code, done := c.getJSON(cmd, o.cf.json, t, clientPath("v1", "orgs", *o.org, "members"), &out); done {
		return code
	}
	rows := [][]string{}
	for _, m := range out.Members {
		rows = append(rows, []string{string(m.UserID), m.Email, m.Role, m.AddedAt})
	}
	c.table([]string{"USER_ID", "EMAIL", "ROLE", "ADDED"}, rows)
	return 0
}

func (c *clientRun) memberSetRole(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	uid := o.fs.String("user-id", "", "the member's user id")
	role := o.fs.String("role", "", "viewer, member, admin or owner")
	_, t, code, ok := c.parse(o, args, 0, "--org O --user-id N --role R")
	if !ok {
		return code
	}
	if *uid == "" || !clientValidRole(*role) {
		return c.usage(cmd, "usage: member set-role --org O --user-id N --role viewer|member|admin|owner")
	}
	return c.simple(o, t, http.MethodPatch, clientPath("v1", "orgs", *o.org, "members", *uid), map[string]string{"role": *role},
		fmt.Sprintf("user %s is now %s in %s", termSafe(*uid), *role, termSafe(*o.org)))
}

func (c *clientRun) memberRemove(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	uid := o.fs.String("user-id", "", "the member's user id")
	_, t, code, ok := c.parse(o, args, 0, "--org O --user-id N")
	if !ok {
		return code
	}
	if *uid == "" {
		return c.usage(cmd, "usage: member remove --org O --user-id N")
	}
	return c.simple(o, t, http.MethodDelete, clientPath("v1", "orgs", *o.org, "members", *uid), nil,
		fmt.Sprintf("removed user %s from %s", termSafe(*uid), termSafe(*o.org)))
}

// ---- tokens ----

func (c *clientRun) tokenCreate(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	name := o.fs.String("name", "", "what the token is for")
	role := o.fs.String("role", "", "viewer, member, admin or owner (at most yours)")
	expires := o.fs.String("expires", "", "lifetime as a Go duration, for example 720h (default: never)")
	_, t, code, ok := c.parse(o, args, 0, "--org O --name N --role R [--expires 720h]")
	if !ok {
		return code
	}
	if *name == "" || !clientValidRole(*role) {
		return c.usage(cmd, "usage: token create --org O --name N --role viewer|member|admin|owner [--expires 720h]")
	}
	in := map[string]string{"name": *name, "role": *role}
	if *expires != "" {
		if d, err := time.ParseDuration(*expires); err != nil || d <= 0 {
			return c.usage(cmd, "--expires %s: want a positive Go duration such as 720h", termSafe(*expires))
		}
		in["expires_in"] = *expires
	}
	return c.showNewToken(o, t, clientPath("v1", "orgs", *o.org, "tokens"), in)
}

// showNewToken creates a token and prints it: this is the one time it is
// shown. The token is alone on the first line of stdout, so scripts can
// take it with head -1; what describes it goes to stderr.
func (c *clientRun) showNewToken(o *clientOrgCmd, t clientTarget, path string, in any) int {
	data, _, err := c.callJSON(t, http.MethodPost, path, in)
	if err != nil {
		return c.fail(o.name, err)
	}
	var out struct {
		Token string         `json:"token"`
		ID    clientJSONText `json:"id"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(o.name, err)
	}
	tok, err := parseBearerToken(out.Token)
	if err != nil {
		return c.fail(o.name, fmt.Errorf("the server's answer has no usable token: %v", err))
	}
	if o.cf.json {
		return c.rawJSON(o.name, data)
	}
	fmt.Fprintln(c.stdout, tok.reveal())
	fmt.Fprintf(c.stderr, "token id %s; the token is shown only this once\n", termSafe(string(out.ID)))
	return 0
}

func (c *clientRun) tokenList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	data, _, err := c.callJSON(t, http.MethodGet, clientPath("v1", "orgs", *o.org, "tokens"), nil)
	if err != nil {
		return c.fail(cmd, err)
	}
	var out struct {
		Tokens []struct {
			ID         clientJSONText `json:"id"`
			Name       string         `json:"name"`
			Role       string         `json:"role"`
			Agent      clientJSONText `json:"agent"`
			CreatedBy  clientJSONText `json:"created_by"`
			CreatedAt  clientJSONText `json:"created_at"`
			ExpiresAt  clientJSONText `json:"expires_at"`
			Revoked    bool           `json:"revoked"`
			LastUsedAt clientJSONText `json:"last_used_at"`
		} `json:"tokens"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	if o.cf.json {
		// A list never shows a token's value, even if a server sent one.
		var raw struct {
			Tokens []map[string]json.RawMessage `json:"tokens"`
		}
		if err := clientDecode(data, &raw); err != nil {
			return c.fail(cmd, err)
		}
		for _, k := range raw.Tokens {
			delete(k, "token")
		}
		clean, err := json.Marshal(raw)
		if err != nil {
			return c.fail(cmd, err)
		}
		return c.rawJSON(cmd, clean)
	}
	rows := [][]string{}
	for _, k := range out.Tokens {
		state := "active"
		if k.Revoked {
			state = "revoked"
		}
		rows = append(rows, []string{string(k.ID), k.Name, k.Role, string(k.Agent), state, string(k.CreatedAt), string(k.ExpiresAt), string(k.LastUsedAt)})
	}
	c.table([]string{"ID", "NAME", "ROLE", "AGENT", "STATE", "CREATED", "EXPIRES", "LAST_USED"}, rows)
	return 0
}

func (c *clientRun) tokenRevoke(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	pos, t, code, ok := c.parse(o, args, 1, "--org O ID")
	if !ok {
		return code
	}
	return c.simple(o, t, http.MethodDelete, clientPath("v1", "orgs", *o.org, "tokens", pos[0]), nil,
		fmt.Sprintf("revoked token %s", termSafe(pos[0])))
}

// ---- agents ----

func (c *clientRun) agentApply(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	file := o.fs.String("f", "", "the claw.yaml to upload (- for stdin)")
	_, t, code, ok := c.parse(o, args, 0, "--org O -f claw.yaml")
	if !ok {
		return code
	}
	if *file == "" {
		return c.usage(cmd, "usage: agent apply --org O -f claw.yaml")
	}
	var r io.Reader = c.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return c.usage(cmd, "%v", err)
		}
		defer f.Close()
		r = f
	}
	text, err := io.ReadAll(io.LimitReader(r, clientMaxManifest+1))
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	if len(text) > clientMaxManifest {
		return c.usage(cmd, "%s is larger than %d MiB", termSafe(*file), clientMaxManifest>>20)
	}
	name, err := clientManifestName(text)
	if err != nil {
		return c.usage(cmd, "%s: %v", termSafe(*file), err)
	}
	data, status, err := c.call(t, http.MethodPut, clientPath("v1", "orgs", *o.org, "agents", name), "application/yaml", text)
	if err != nil {
		return c.fail(cmd, err)
	}
	if o.cf.json {
		return c.rawJSON(cmd, data)
	}
	var out struct {
		Name      string `json:"name"`
		SHA256    string `json:"sha256"`
		UpdatedAt string `json:"updated_at"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	verb := "updated"
	if status == http.StatusCreated {
		verb = "created"
	}
	fmt.Fprintf(c.stdout, "agent %s %s in %s (sha256 %s)\n", termSafe(out.Name), verb, termSafe(*o.org), termSafe(out.SHA256))
	return 0
}

// clientManifestName finds metadata.name, which names the agent in the URL; the
// server checks the rest of the manifest.
func clientManifestName(text []byte) (string, error) {
	var m struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(text, &m); err != nil {
		return "", fmt.Errorf("not YAML: %v", err)
	}
	if m.Metadata.Name == "" {
		return "", errors.New("no metadata.name")
	}
	return m.Metadata.Name, nil
}

func (c *clientRun) agentList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	var out struct {
		Agents []struct {
			Name      string `json:"name"`
			UpdatedAt string `json:"updated_at"`
			SHA256    string `json:"sha256"`
		} `json:"agents"`
	}
	if code, done := c.getJSON(cmd, o.cf.json, t, clientPath("v1", "orgs", *o.org, "agents"), &out); done {
		return code
	}
	rows := [][]string{}
	for _, a := range out.Agents {
		rows = append(rows, []string{a.Name, a.UpdatedAt, a.SHA256})
	}
	c.table([]string{"AGENT", "UPDATED", "SHA256"}, rows)
	return 0
}

// agentGet prints the manifest as uploaded. It is the operator's own
// document, printed verbatim so that it round-trips into agent apply.
func (c *clientRun) agentGet(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	pos, t, code, ok := c.parse(o, args, 1, "--org O NAME")
	if !ok {
		return code
	}
	data, _, err := c.callJSON(t, http.MethodGet, clientPath("v1", "orgs", *o.org, "agents", pos[0]), nil)
	if err != nil {
		return c.fail(cmd, err)
	}
	// YAML allows no control characters but tab and newline, so a manifest
	// with others is not one, and it might rewrite the terminal.
	if bytes.ContainsFunc(data, func(r rune) bool { return r < ' ' && r != '\t' && r != '\n' && r != '\r' || r == 0x7f }) {
		return c.fail(cmd, errors.New("the manifest holds control characters; refusing to print it"))
	}
	c.stdout.Write(data)
	return 0
}

func (c *clientRun) agentDelete(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	pos, t, code, ok := c.parse(o, args, 1, "--org O NAME")
	if !ok {
		return code
	}
	return c.simple(o, t, http.MethodDelete, clientPath("v1", "orgs", *o.org, "agents", pos[0]), nil,
		fmt.Sprintf("deleted agent %s from %s", termSafe(pos[0]), termSafe(*o.org)))
}

func (c *clientRun) agentToken(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	name := o.fs.String("name", "", "what the token is for (optional)")
	pos, t, code, ok := c.parse(o, args, 1, "--org O NAME [--name N]")
	if !ok {
		return code
	}
	in := map[string]string{}
	if *name != "" {
		in["name"] = *name
	}
	return c.showNewToken(o, t, clientPath("v1", "orgs", *o.org, "agents", pos[0], "tokens"), in)
}

// ---- abilities ----

type clientCredentialBinding struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	Header string   `json:"header,omitempty"`
	Format string   `json:"format,omitempty"`
}

type clientAbility struct {
	Service    string                   `json:"service,omitempty"`
	Actions    map[string]string        `json:"actions"`
	Credential *clientCredentialBinding `json:"credential,omitempty"`
	Guidelines string                   `json:"guidelines,omitempty"`
	UpdatedAt  string                   `json:"updated_at,omitempty"`
}

func (c *clientRun) abilityGrant(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	agent := o.fs.String("agent", "", "agent")
	service := o.fs.String("service", "", "service, for example github")
	var actions, hosts stringList
	o.fs.Var(&actions, "action", "NAME=automatic|approval|disabled; repeatable")
	cred := o.fs.String("credential", "", "credential the agent's calls to this service carry")
	o.fs.Var(&hosts, "host", "a host the credential may be sent to; repeatable, needed with --credential")
	header := o.fs.String("header", "", "header that carries the credential, for example Authorization")
	format := o.fs.String("format", "", "how the header value is built, for example 'Bearer %s'")
	guidelines := o.fs.String("guidelines", "", "free text guidance for the agent")
	_, t, code, ok := c.parse(o, args, 0, "--org O --agent A --service S --action NAME=MODE...")
	if !ok {
		return code
	}
	if *agent == "" || *service == "" || len(actions) == 0 {
		return c.usage(cmd, "usage: ability grant --org O --agent A --service S --action NAME=automatic|approval|disabled... [--credential NAME --host H... [--header H] [--format F]] [--guidelines T]")
	}
	in := clientAbility{Actions: map[string]string{}, Guidelines: *guidelines}
	for _, a := range actions {
		name, mode, found := strings.Cut(a, "=")
		if !found || name == "" {
			return c.usage(cmd, "--action %s: want NAME=automatic|approval|disabled", termSafe(a))
		}
		switch mode {
		case "automatic", "approval", "disabled":
		default:
			return c.usage(cmd, "--action %s: the mode must be automatic, approval or disabled", termSafe(a))
		}
		if _, dup := in.Actions[name]; dup {
			return c.usage(cmd, "--action %s: given twice", termSafe(name))
		}
		in.Actions[name] = mode
	}
	switch {
	case *cred != "" && len(hosts) == 0:
		// Without hosts the credential could go wherever the agent points it.
		return c.usage(cmd, "--credential needs at least one --host it may be sent to")
	case *cred == "" && (len(hosts) > 0 || *header != "" || *format != ""):
		return c.usage(cmd, "--host, --header and --format describe a --credential; name it")
	case *cred != "":
		in.Credential = &clientCredentialBinding{Name: *cred, Hosts: hosts, Header: *header, Format: *format}
	}
	data, _, err := c.callJSON(t, http.MethodPut, clientPath("v1", "orgs", *o.org, "agents", *agent, "abilities", *service), in)
	if err != nil {
		return c.fail(cmd, err)
	}
	if o.cf.json {
		return c.rawJSON(cmd, data)
	}
	var out clientAbility
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintf(c.stdout, "agent %s on %s: %s\n", termSafe(*agent), termSafe(out.Service), termSafe(clientFormatActions(out.Actions)))
	return 0
}

func clientFormatActions(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func (c *clientRun) abilityList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	agent := o.fs.String("agent", "", "agent")
	_, t, code, ok := c.parse(o, args, 0, "--org O --agent A")
	if !ok {
		return code
	}
	if *agent == "" {
		return c.usage(cmd, "usage: ability list --org O --agent A")
	}
	var out struct {
		Abilities []clientAbility `json:"abilities"`
	}
	if code, done := c.getJSON(cmd, o.cf.json, t, clientPath("v1", "orgs", *o.org, "agents", *agent, "abilities"), &out); done {
		return code
	}
	rows := [][]string{}
	for _, a := range out.Abilities {
		cred := ""
		if a.Credential != nil {
			cred = a.Credential.Name + " -> " + strings.Join(a.Credential.Hosts, ",")
		}
		rows = append(rows, []string{a.Service, clientFormatActions(a.Actions), cred, a.UpdatedAt})
	}
	c.table([]string{"SERVICE", "ACTIONS", "CREDENTIAL", "UPDATED"}, rows)
	return 0
}

func (c *clientRun) abilityRevoke(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	agent := o.fs.String("agent", "", "agent")
	service := o.fs.String("service", "", "service")
	_, t, code, ok := c.parse(o, args, 0, "--org O --agent A --service S")
	if !ok {
		return code
	}
	if *agent == "" || *service == "" {
		return c.usage(cmd, "usage: ability revoke --org O --agent A --service S")
	}
	return c.simple(o, t, http.MethodDelete, clientPath("v1", "orgs", *o.org, "agents", *agent, "abilities", *service), nil,
		fmt.Sprintf("agent %s may no longer use %s", termSafe(*agent), termSafe(*service)))
}

// ---- credentials ----

// clientAppendJSONString appends s as a JSON string. s is valid UTF-8.
func clientAppendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, b := range s {
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, '"')
}

// credentialSet sends a credential's value, read from all of stdin. The
// value is never echoed, and the buffers that held it are cleared.
func (c *clientRun) credentialSet(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	name := o.fs.String("name", "", "credential name")
	typ := o.fs.String("type", "", "api-key, bearer, basic, oauth or file")
	_, t, code, ok := c.parse(o, args, 0, "--org O --name N --type T")
	if !ok {
		return code
	}
	switch *typ {
	case "api-key", "bearer", "basic", "oauth", "file":
	default:
		return c.usage(cmd, "usage: credential set --org O --name N --type api-key|bearer|basic|oauth|file (value: all of stdin)")
	}
	if *name == "" {
		return c.usage(cmd, "usage: credential set --org O --name N --type api-key|bearer|basic|oauth|file (value: all of stdin)")
	}
	value, err := io.ReadAll(io.LimitReader(c.stdin, maxSecretBytes+1))
	defer clear(value)
	if err != nil {
		return c.usage(cmd, "reading the value: %v", err)
	}
	if len(value) > maxSecretBytes {
		return c.usage(cmd, "the value is larger than %d bytes", maxSecretBytes)
	}
	v := bytes.TrimSuffix(bytes.TrimSuffix(value, []byte("\n")), []byte("\r"))
	if len(v) == 0 {
		return c.usage(cmd, "no value on standard input")
	}
	if !utf8.Valid(v) {
		// JSON would silently replace the bytes that are not UTF-8.
		return c.usage(cmd, "the value is not UTF-8 text, which is all the API carries")
	}
	// The body is built by hand so that the value is never copied into a
	// string, which could not be cleared.
	body := append([]byte(`{"type":`), strconv.Quote(*typ)...)
	body = clientAppendJSONString(append(body, `,"value":`...), v)
	body = append(body, '}')
	defer clear(body)
	if _, _, err := c.call(t, http.MethodPut, clientPath("v1", "orgs", *o.org, "credentials", *name), "application/json", body); err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintf(c.stdout, "stored credential %s (%s) in %s\n", termSafe(*name), *typ, termSafe(*o.org))
	return 0
}

func (c *clientRun) credentialList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	var out struct {
		Credentials []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			CreatedAt  string `json:"created_at"`
			LastUsedAt string `json:"last_used_at"`
		} `json:"credentials"`
	}
	if code, done := c.getJSON(cmd, o.cf.json, t, clientPath("v1", "orgs", *o.org, "credentials"), &out); done {
		return code
	}
	rows := [][]string{}
	for _, k := range out.Credentials {
		rows = append(rows, []string{k.Name, k.Type, k.CreatedAt, k.LastUsedAt})
	}
	c.table([]string{"NAME", "TYPE", "CREATED", "LAST USED"}, rows)
	return 0
}

func (c *clientRun) credentialDelete(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	name := o.fs.String("name", "", "credential name")
	pos, err := clientParseArgs(o.fs, args)
	if err != nil {
		return clientFlagExit(err)
	}
	// The name may come as --name N or as the one argument.
	if len(pos) == 1 && *name == "" {
		*name, pos = pos[0], nil
	}
	if *o.org == "" || *name == "" || len(pos) != 0 {
		return c.usage(cmd, "usage: credential delete --org O --name N")
	}
	t, err := c.resolve(o.cf, true)
	if err != nil {
		return c.usage(cmd, "%v", err)
	}
	return c.simple(o, t, http.MethodDelete, clientPath("v1", "orgs", *o.org, "credentials", *name), nil,
		fmt.Sprintf("deleted credential %s from %s", termSafe(*name), termSafe(*o.org)))
}

// ---- approvals ----

func (c *clientRun) approvalsList(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	var out struct {
		Approvals []struct {
			ID        clientJSONText `json:"id"`
			Agent     string         `json:"agent"`
			Tool      string         `json:"tool"`
			Summary   string         `json:"summary"`
			Risk      string         `json:"risk"`
			Why       string         `json:"why"`
			CreatedAt string         `json:"created_at"`
			Deadline  string         `json:"deadline"`
		} `json:"approvals"`
	}
	if code, done := c.getJSON(cmd, o.cf.json, t, clientPath("v1", "orgs", *o.org, "approvals"), &out); done {
		return code
	}
	// The server's order (most urgent first) is kept.
	rows := [][]string{}
	for _, a := range out.Approvals {
		rows = append(rows, []string{string(a.ID), a.Risk, a.Agent, a.Tool, a.Deadline, a.Summary, a.Why})
	}
	c.table([]string{"ID", "RISK", "AGENT", "TOOL", "DEADLINE", "SUMMARY", "WHY"}, rows)
	return 0
}

func (c *clientRun) approvalsApprove(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	note := o.fs.String("note", "", "a note recorded with the decision")
	pos, t, code, ok := c.parse(o, args, 1, "--org O ID [--note T]")
	if !ok {
		return code
	}
	in := map[string]string{}
	if *note != "" {
		in["note"] = *note
	}
	return c.decide(o, t, pos[0], "approve", in)
}

func (c *clientRun) approvalsReject(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	reason := o.fs.String("reason", "", "not_needed, wrong_target, too_risky, needs_changes or other")
	details := o.fs.String("details", "", "free text")
	pos, t, code, ok := c.parse(o, args, 1, "--org O ID --reason R [--details T]")
	if !ok {
		return code
	}
	switch *reason {
	case "not_needed", "wrong_target", "too_risky", "needs_changes", "other":
	default:
		return c.usage(cmd, "--reason must be one of not_needed, wrong_target, too_risky, needs_changes, other")
	}
	in := map[string]string{"reason": *reason}
	if *details != "" {
		in["details"] = *details
	}
	return c.decide(o, t, pos[0], "reject", in)
}

func (c *clientRun) decide(o *clientOrgCmd, t clientTarget, id, verb string, in map[string]string) int {
	data, _, err := c.callJSON(t, http.MethodPost, clientPath("v1", "orgs", *o.org, "approvals", id, verb), in)
	if err != nil {
		return c.fail(o.name, err)
	}
	if o.cf.json {
		return c.rawJSON(o.name, data)
	}
	var out struct {
		ID      clientJSONText `json:"id"`
		Outcome string         `json:"outcome"`
		By      string         `json:"by"`
		Reason  string         `json:"reason"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(o.name, err)
	}
	line := fmt.Sprintf("%s %s by %s", string(out.ID), out.Outcome, out.By)
	if out.Reason != "" {
		line += " (" + out.Reason + ")"
	}
	fmt.Fprintln(c.stdout, termSafe(line))
	return 0
}

// ---- audit ----

// auditVerify exits 1 when the server reports a broken chain, as the local
// `audit verify` does.
func (c *clientRun) auditVerify(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	data, _, err := c.callJSON(t, http.MethodGet, clientPath("v1", "orgs", *o.org, "audit", "verify"), nil)
	if err != nil {
		return c.fail(cmd, err)
	}
	var out struct {
		OK      *bool  `json:"ok"`
		Records int64  `json:"records"`
		Problem string `json:"problem"`
	}
	if err := clientDecode(data, &out); err != nil {
		return c.fail(cmd, err)
	}
	if out.OK == nil {
		return c.fail(cmd, errors.New(`the server's answer has no "ok"`))
	}
	if o.cf.json {
		if code := c.rawJSON(cmd, data); code != 0 {
			return code
		}
	} else if *out.OK {
		fmt.Fprintf(c.stdout, "audit chain of %s intact: %d records\n", termSafe(*o.org), out.Records)
	} else {
		fmt.Fprintf(c.stdout, "audit chain of %s BROKEN: %s\n", termSafe(*o.org), termSafe(out.Problem))
	}
	if !*out.OK {
		return 1
	}
	return 0
}

// auditExport streams the whole chain to stdout: it may be larger than any
// bound worth holding in memory. A stall of clientTimeout with no bytes
// ends it; a slow but moving export is not cut off.
func (c *clientRun) auditExport(cmd string, args []string) int {
	o := c.orgFlags(cmd)
	_, t, code, ok := c.parse(o, args, 0, "--org O")
	if !ok {
		return code
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := time.AfterFunc(clientTimeout, cancel)
	defer idle.Stop()
	resp, err := clientSend(ctx, newClientHTTP(0), t, http.MethodGet, clientPath("v1", "orgs", *o.org, "audit", "export"), "", nil)
	if err != nil {
		return c.fail(cmd, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	for {
		idle.Reset(clientTimeout)
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := c.stdout.Write(buf[:n]); werr != nil {
				return c.fail(cmd, werr)
			}
		}
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			return c.fail(cmd, fmt.Errorf("export cut short: %v", err))
		}
	}
}
