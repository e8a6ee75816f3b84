package scan

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
)

// encodings returns the forms in which a vault value is looked for.
func encodings(v []byte) []string {
	h := hex.EncodeToString(v)
	return []string{
		string(v),
		base64.StdEncoding.EncodeToString(v),
		base64.RawStdEncoding.EncodeToString(v),
		base64.URLEncoding.EncodeToString(v),
		base64.RawURLEncoding.EncodeToString(v),
		h,
		strings.ToUpper(h),
		url.QueryEscape(string(v)),
		url.PathEscape(string(v)),
		percentAll(v),
	}
}

// percentAll escapes every byte, the form a hostile encoder uses when it
// wants no byte of the original left in place.
func percentAll(v []byte) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range v {
		b.WriteByte('%')
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}
