package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrInvalidPath is wrapped by every error from ResolvePath.
var ErrInvalidPath = errors.New("policy: invalid path")

// maxSymlinks bounds symlink hops, as the kernel's ELOOP limit does, so that a
// link cycle is an error rather than a hang.
const maxSymlinks = 40

// ResolvePath turns a path argument into the absolute, clean path with every
// symlink in its existing prefix resolved (the last components may not exist
// yet, e.g. a file to be created). Relative paths are taken relative to base,
// which must then be absolute. It refuses empty paths, NUL bytes, ".." after a
// missing component (the OS would resolve it against a directory that does
// not exist yet, wherever a later symlink puts it), path components under a
// non-directory, symlink loops and any file system error other than "does not
// exist".
//
// Components are resolved one at a time, ".." included, exactly as the kernel
// would walk them: "link/.." is the parent of the link's target, not the
// directory holding the link. Cleaning the path lexically first would let
// "allowed/link/../x" pass as inside "allowed" while the OS opens a file
// beside the link's target.
func ResolvePath(base, p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidPath)
	case strings.IndexByte(p, 0) >= 0 || strings.IndexByte(base, 0) >= 0:
		return "", fmt.Errorf("%w: NUL byte", ErrInvalidPath)
	}
	if !filepath.IsAbs(p) {
		if !filepath.IsAbs(base) {
			return "", fmt.Errorf("%w: relative path %s with relative base %s", ErrInvalidPath, quote(p), quote(base))
		}
		p = base + string(filepath.Separator) + p
	}
	resolved, rest := string(filepath.Separator), p
	links := 0
	for {
		var comp string
		comp, rest = next(rest)
		switch comp {
		case "":
			return resolved, nil
		case ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		cand := filepath.Join(resolved, comp)
		fi, err := os.Lstat(cand)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return missingTail(cand, rest)
		case err != nil:
			return "", fmt.Errorf("%w: %s: %w", ErrInvalidPath, quote(cand), err)
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("%w: too many symlinks in %s", ErrInvalidPath, quote(p))
			}
			target, err := os.Readlink(cand)
			if err != nil {
				return "", fmt.Errorf("%w: %s: %w", ErrInvalidPath, quote(cand), err)
			}
			if filepath.IsAbs(target) {
				resolved = string(filepath.Separator)
			}
			rest = target + string(filepath.Separator) + rest
		case !fi.IsDir():
			if more, _ := next(rest); more != "" {
				return "", fmt.Errorf("%w: %s is not a directory", ErrInvalidPath, quote(cand))
			}
			return cand, nil
		default:
			resolved = cand
		}
	}
}

// missingTail appends the components after the first missing one, which
// cannot be symlinks because they do not exist.
func missingTail(missing, rest string) (string, error) {
	out := missing
	for {
		var comp string
		comp, rest = next(rest)
		switch comp {
		case "":
			return out, nil
		case ".":
		case "..":
			return "", fmt.Errorf("%w: \"..\" after missing %s", ErrInvalidPath, quote(missing))
		default:
			out += string(filepath.Separator) + comp
		}
	}
}

// next splits off the first component of p, skipping separators.
func next(p string) (comp, rest string) {
	p = strings.TrimLeft(p, string(filepath.Separator))
	if i := strings.IndexByte(p, filepath.Separator); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// Within reports whether path is dir or inside it, comparing whole
// components: "/a/bc" is not within "/a/b". Both are cleaned first; a
// relative path is within nothing and contains nothing. Within is lexical:
// give it paths from ResolvePath when symlinks matter.
func Within(dir, path string) bool {
	if !filepath.IsAbs(dir) || !filepath.IsAbs(path) {
		return false
	}
	return within(filepath.Clean(dir), filepath.Clean(path))
}

// within is Within for paths already absolute and clean.
func within(dir, path string) bool {
	if dir == string(filepath.Separator) {
		return true
	}
	return strings.HasPrefix(path, dir) && (len(path) == len(dir) || path[len(dir)] == filepath.Separator)
}

// cleanAbs reports whether p is already absolute and clean. filepath.Clean
// does not allocate when its input is clean, so Decide stays allocation-free.
func cleanAbs(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p && strings.IndexByte(p, 0) < 0
}
