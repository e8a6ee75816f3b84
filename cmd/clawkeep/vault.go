package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/clawkeep/clawkeep/internal/vault"
)

const maxSecretBytes = 1 << 20

// cmdVault manages credentials. Values are read from standard input or a
// file, never from the command line, where other users could read them in
// the process table and shells keep them in history.
func cmdVault(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "clawkeep vault: use put, list, rm or rotate-key")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("vault "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory")
	tenant := fs.String("tenant", "local", "tenant the credential belongs to")
	typ := fs.String("type", "", "put: api-key, bearer, basic, oauth or file")
	file := fs.String("file", "", "put: read the value from this file instead of standard input")
	user := fs.String("user", "", "put --type basic: the user name (the password comes from stdin or --file)")
	newKey := fs.String("new-key-file", "", "rotate-key: the new master key file (32 bytes, mode 0600)")
	// The name comes first (vault put NAME --type T); flags may follow it.
	var name string
	rest := args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// The argument is not echoed: it may be a value typed in the wrong place.
		fmt.Fprintf(stderr, "clawkeep vault %s: unexpected argument (values are read from stdin or --file, never from arguments)\n", verb)
		return 2
	}
	v, err := vault.Open(*dataDir, vault.Options{MasterKeyFile: os.Getenv("CLAWKEEP_MASTER_KEY_FILE")})
	if err != nil {
		fmt.Fprintf(stderr, "clawkeep vault: %v\n", err)
		return 2
	}
	defer v.Close()
	switch verb {
	case "put":
		t, err := vault.ParseType(*typ)
		if name == "" || err != nil {
			fmt.Fprintln(stderr, "clawkeep vault put: usage: vault put NAME --type api-key|bearer|basic|oauth|file [--file F] [--user U]")
			return 2
		}
		value, err := readValue(stdin, *file, t)
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep vault put: %v\n", err)
			return 2
		}
		value, err = shapeValue(t, *user, value)
		if err == nil {
			err = v.Put(*tenant, name, t, value)
		}
		clear(value)
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep vault put: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "stored %s (%s) for tenant %s\n", name, t, *tenant)
	case "list":
		infos, err := v.List(*tenant)
		if err != nil {
			fmt.Fprintf(stderr, "clawkeep vault list: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, "NAME\tTYPE\tCREATED\tLAST USED")
		for _, in := range infos {
			last := "never"
			if !in.LastUsed.IsZero() {
				last = in.LastUsed.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", in.Name, in.Type, in.Created.UTC().Format(time.RFC3339), last)
		}
	case "rm":
		if name == "" {
			fmt.Fprintln(stderr, "clawkeep vault rm: usage: vault rm NAME")
			return 2
		}
		if err := v.Delete(*tenant, name); err != nil {
			fmt.Fprintf(stderr, "clawkeep vault rm: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "removed %s\n", name)
	case "rotate-key":
		if *newKey == "" {
			fmt.Fprintln(stderr, "clawkeep vault rotate-key: --new-key-file is required")
			return 2
		}
		if err := v.RotateMasterKey(*newKey); err != nil {
			fmt.Fprintf(stderr, "clawkeep vault rotate-key: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, "master key rotated: every tenant data key is re-wrapped")
	default:
		fmt.Fprintf(stderr, "clawkeep vault: unknown verb %q\n", verb)
		return 2
	}
	return 0
}

// readValue reads at most maxSecretBytes. One trailing newline is dropped
// except for files, whose bytes are kept exactly.
func readValue(stdin io.Reader, file string, t vault.Type) ([]byte, error) {
	r := stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSecretBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretBytes {
		clear(data)
		return nil, fmt.Errorf("value is larger than %d bytes", maxSecretBytes)
	}
	if t != vault.File {
		data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	return data, nil
}

// shapeValue builds the stored form of basic and oauth credentials; the
// input buffer is wiped when a new one replaces it.
func shapeValue(t vault.Type, user string, value []byte) ([]byte, error) {
	switch t {
	case vault.Basic:
		if user == "" {
			return value, fmt.Errorf("--type basic needs --user")
		}
		out, err := vault.BasicValue(user, value)
		clear(value)
		return out, err
	case vault.OAuth:
		var in struct {
			Access  string    `json:"access"`
			Refresh string    `json:"refresh"`
			Expiry  time.Time `json:"expiry"`
		}
		dec := json.NewDecoder(bytes.NewReader(value))
		dec.DisallowUnknownFields()
		err := dec.Decode(&in)
		clear(value)
		if err != nil || in.Access == "" {
			return nil, fmt.Errorf(`--type oauth reads {"access": "...", "refresh": "...", "expiry": "RFC 3339"} from stdin`)
		}
		return vault.OAuthValue([]byte(in.Access), []byte(in.Refresh), in.Expiry), nil
	}
	return value, nil
}
