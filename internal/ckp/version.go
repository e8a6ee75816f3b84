package ckp

import (
	"strconv"
	"strings"
)

// ProtocolVersion is the CKP version this package speaks.
const ProtocolVersion = "0.3.0"

// semver is a parsed semantic version; build metadata is dropped, as it
// has no precedence.
type semver struct {
	major, minor, patch uint64
	pre                 string // "" for a release
}

// parseSemver accepts exactly MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] as
// semver 2.0.0 defines it: no leading zeros, no "v" prefix, no missing parts.
func parseSemver(s string) (semver, bool) {
	var v semver
	if len(s) > 64 {
		return v, false
	}
	s, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !identifiers(build, false) {
		return v, false
	}
	s, pre, hasPre := strings.Cut(s, "-")
	if hasPre && !identifiers(pre, true) {
		return v, false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	nums := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, p := range parts {
		if !numeric(p) {
			return v, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, false
		}
		*nums[i] = n
	}
	v.pre = pre
	return v, true
}

func numeric(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// identifiers checks dot-separated [0-9A-Za-z-] identifiers; numeric ones
// in a pre-release may not have leading zeros.
func identifiers(s string, pre bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		digits := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				digits = false
			default:
				return false
			}
		}
		if pre && digits && !numeric(id) {
			return false
		}
	}
	return true
}

// less reports whether a has lower precedence than b. Pre-releases of the
// same core sort below the release; two pre-releases are compared as
// strings, which is enough as ProtocolVersion is a release.
func (a semver) less(b semver) bool {
	if a.major != b.major {
		return a.major < b.major
	}
	if a.minor != b.minor {
		return a.minor < b.minor
	}
	if a.patch != b.patch {
		return a.patch < b.patch
	}
	if (a.pre == "") != (b.pre == "") {
		return a.pre != ""
	}
	return a.pre < b.pre
}

// negotiate returns the version to speak with a client that asked for
// requested: the lower of requested and ProtocolVersion. Any 0.x is
// accepted; another major is refused with the supported versions.
func negotiate(requested string) (string, *Error) {
	v, ok := parseSemver(requested)
	if !ok {
		return "", errorf(CodeInvalidParams, "invalid params: protocolVersion must be a semantic version such as %q", ProtocolVersion)
	}
	ours, _ := parseSemver(ProtocolVersion)
	if v.major != ours.major {
		e := errorf(CodeVersionNotSupported, "protocol version not supported: this runtime speaks %d.x (%s)", ours.major, ProtocolVersion)
		e.Data = map[string]any{"supported": []string{ProtocolVersion}}
		return "", e
	}
	if v.less(ours) {
		return requested, nil
	}
	return ProtocolVersion, nil
}
