package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// rlimit is one resource limit the job's first process sets on itself.
type rlimit struct {
	Resource int
	Cur, Max uint64
}

// systemPaths are the host paths every process-level job may read and
// execute: programs, libraries and the few /etc files dynamic linking and
// name lookups read. Not /proc, /sys, /home, /root, /tmp or /etc itself.
var systemPaths = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
	"/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
	"/etc/ssl/certs", "/etc/ca-certificates", "/usr/share/ca-certificates",
}

// lookPath resolves argv0 against the job's PATH, or /usr/bin:/bin.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if !filepath.IsAbs(argv0) {
			return "", fmt.Errorf("command %q must be absolute or a bare name", argv0)
		}
		return argv0, nil
	}
	path := "/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in %s", argv0, path)
}
