package flowservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aepoperator/capillary-operator/internal/ims"
)

// Error is an error answer from the Platform gateway, Flow Service or Data
// Prep, whatever shape its body had (aep-api.md §5).
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is Adobe's error code: "FLOW-1404-412" for Flow Service problems,
	// "401013" for gateway errors; empty when the body named none.
	Code string
	// Title is the short summary (problem title or gateway message).
	Title string
	// Detail is the longer explanation, or a sanitized excerpt of a body that
	// was not JSON (an HTML error page, say).
	Detail string
	// RequestID is Adobe's request id, from the body's report or the
	// x-request-id header, for support tickets.
	RequestID string
	// RetryAfter is the wait the server asked for with Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "adobe answered %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	switch {
	case e.Title != "" && e.Detail != "" && e.Title != e.Detail:
		b.WriteString(": " + e.Title + ": " + e.Detail)
	case e.Detail != "":
		b.WriteString(": " + e.Detail)
	case e.Title != "":
		b.WriteString(": " + e.Title)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// GatewayCodeInvalidToken is the gateway's "Oauth token is not valid".
const GatewayCodeInvalidToken = "401013"

// flowCode matches the tail of a Flow Service problem type,
// https://ns.adobe.com/aep/errors/FLOW-1404-412.
var flowCode = regexp.MustCompile(`([A-Z]+-\d{4}-\d{3})$`)

// maxDetail bounds the text kept from an error body.
const maxDetail = 512

// parseError builds an Error from a non-2xx answer. It never fails: bodies it
// cannot read still give an Error with the status and a short excerpt.
func parseError(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status}
	if header != nil {
		e.RequestID = clean(header.Get("x-request-id"))
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	}

	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		e.Detail = snippet(body)
		return e
	}
	str := func(m map[string]json.RawMessage, keys ...string) string {
		for _, k := range keys {
			raw, ok := m[k]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) == nil && s != "" {
				return clean(s)
			}
			var n json.Number
			if json.Unmarshal(raw, &n) == nil && n != "" {
				return n.String()
			}
		}
		return ""
	}

	// Flow Service problem: type .../FLOW-NNNN-SSS, title, report{...}.
	if t := str(doc, "type"); t != "" {
		if m := flowCode.FindStringSubmatch(t); m != nil {
			e.Code = m[1]
		}
	}
	var report map[string]json.RawMessage
	if raw, ok := doc["report"]; ok {
		_ = json.Unmarshal(raw, &report)
	}
	if e.Code == "" {
		// Gateway {"error_code","message"} and other code fields.
		e.Code = str(doc, "error_code", "errorCode", "code")
	}
	if e.Code == "" && report != nil {
		e.Code = str(report, "code", "errorCode")
	}
	e.Title = str(doc, "title", "message", "error")
	e.Detail = firstNonEmpty(
		str(report, "detailed-message", "message"),
		str(doc, "detail", "errorDetails", "errorMessage", "error_description", "error_message"),
	)
	if id := firstNonEmpty(str(report, "request-id", "requestId"), str(doc, "request-id", "requestId", "request_id")); id != "" {
		e.RequestID = id
	}
	if e.Title == "" && e.Detail == "" && e.Code == "" {
		e.Detail = snippet(body)
	}
	e.Code = truncate(e.Code)
	e.RequestID = truncate(e.RequestID)
	e.Title = truncate(e.Title)
	e.Detail = truncate(e.Detail)
	return e
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// snippet is a short, printable, single-line excerpt of a body, with markup
// stripped so an HTML error page reads as its text.
func snippet(body []byte) string {
	if !utf8.Valid(body) {
		body = []byte(strings.ToValidUTF8(string(body), "?"))
	}
	s := string(body)
	if strings.Contains(s, "<") {
		s = htmlTag.ReplaceAllString(s, " ")
	}
	return truncate(clean(s))
}

var htmlTag = regexp.MustCompile(`(?s)<[^>]*>`)

// clean drops control characters and collapses whitespace.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// scrubError removes credentials from an error's text fields, in case a
// server echoed them back.
func scrubError(e *Error, secrets ...string) {
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		e.Title = strings.ReplaceAll(e.Title, s, "[redacted]")
		e.Detail = strings.ReplaceAll(e.Detail, s, "[redacted]")
	}
}

// adobeNumber is the NNNN of a FLOW-NNNN-SSS (or NNNN-SSS, or bare NNNN) code.
func (e *Error) adobeNumber() string {
	for _, part := range strings.Split(e.Code, "-") {
		if len(part) != 4 {
			continue
		}
		if _, err := strconv.Atoi(part); err == nil {
			return part
		}
	}
	return ""
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports a 404: the object does not exist (or, with ABAC labels,
// is hidden from this credential; aep-api.md §4), or a GET by id answered an
// empty items list.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode == http.StatusNotFound
}

// IsPreconditionFailed reports an etag mismatch on PATCH (FLOW-1404-412):
// re-read the object and retry with its new etag.
func IsPreconditionFailed(err error) bool {
	e, ok := asError(err)
	return ok && (e.StatusCode == http.StatusPreconditionFailed || e.adobeNumber() == "1404")
}

// IsUnauthorized reports a 401: the token or the org header was rejected.
func IsUnauthorized(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode == http.StatusUnauthorized
}

// IsForbidden reports a 403: the credential lacks the product profile,
// permission or API key entitlement for this call.
func IsForbidden(err error) bool {
	e, ok := asError(err)
	return ok && e.StatusCode == http.StatusForbidden
}

// IsInvalid reports a request Adobe refuses as it stands (400, 409, 422, ...):
// retrying the same request cannot succeed.
func IsInvalid(err error) bool {
	e, ok := asError(err)
	if !ok || e.StatusCode < 400 || e.StatusCode >= 500 {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusPreconditionFailed, http.StatusTooManyRequests:
		return false
	}
	return !isRetryableError(e)
}

// IsRetryable reports an error worth trying again later: throttling (429),
// gateway trouble (502, 503, 504), Flow Service's transient 1102/1103/1104,
// a network failure or timeout, or a transient IMS failure.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if e, ok := asError(err); ok {
		return isRetryableError(e)
	}
	if ims.IsTransient(err) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func isRetryableError(e *Error) bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	switch e.adobeNumber() {
	case "1102", "1103", "1104":
		return true
	}
	return false
}
