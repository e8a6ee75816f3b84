// Package problem writes the API's errors as RFC 9457 problem details
// with a stable machine-readable code, so clients switch on Code and
// never parse Detail. Detail is shown to the caller: it names what was
// wrong with the request and never holds a secret.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Code is a stable problem code. Codes are never renamed or reused.
type Code string

const (
	BadRequest        Code = "bad_request"
	InvalidJSON       Code = "invalid_json"
	BodyTooLarge      Code = "body_too_large"
	Unauthenticated   Code = "unauthenticated"
	Forbidden         Code = "forbidden"
	NotFound          Code = "not_found"
	Conflict          Code = "conflict"
	RateLimited       Code = "rate_limited"
	LockedOut         Code = "locked_out"
	UnsupportedMedia  Code = "unsupported_media_type"
	MethodNotAllowed  Code = "method_not_allowed"
	WorkerUnavailable Code = "worker_unavailable"
	Internal          Code = "internal"
	ManifestInvalid   Code = "manifest_invalid"
	ApprovalDecided   Code = "approval_decided"
)

// Codes lists every code, for documents that must name them all.
func Codes() []Code {
	return []Code{BadRequest, InvalidJSON, BodyTooLarge, Unauthenticated, Forbidden, NotFound, Conflict,
		RateLimited, LockedOut, UnsupportedMedia, MethodNotAllowed, WorkerUnavailable, Internal, ManifestInvalid, ApprovalDecided}
}

// Problem is the JSON body of every error response.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   Code   `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// Write sends a problem. retryAfter > 0 adds Retry-After in whole seconds,
// rounded up.
func Write(w http.ResponseWriter, status int, code Code, detail string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if retryAfter > 0 {
		secs := int64((retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Problem{
		Type:   "https://clawkeep.dev/problems/" + string(code),
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	})
}

// Decode reads r's JSON body into v, strictly (unknown fields, trailing
// data and bodies over max bytes are refused), and on failure writes the
// problem and returns false.
func Decode(w http.ResponseWriter, r *http.Request, v any, max int64) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		Write(w, http.StatusUnsupportedMediaType, UnsupportedMedia, "want Content-Type application/json", 0)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			Write(w, http.StatusRequestEntityTooLarge, BodyTooLarge, fmt.Sprintf("request body over %d bytes", max), 0)
			return false
		}
		Write(w, http.StatusBadRequest, InvalidJSON, "request body: "+err.Error(), 0)
		return false
	}
	if dec.More() {
		Write(w, http.StatusBadRequest, InvalidJSON, "request body: trailing data after the JSON value", 0)
		return false
	}
	return true
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
