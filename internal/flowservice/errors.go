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

	"github.com/aepoperator/capillary-operator/internal/excerpt"
	"github.com/aepoperator/capillary-operator/internal/httpretry"
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

// flowCode matches the tail of a Flow Service problem type,
// https://ns.adobe.com/aep/errors/FLOW-1404-412.
var flowCode = regexp.MustCompile(`([A-Z]+-\d{4}-\d{3})$`)

// parseError builds an Error from a non-2xx answer. It never fails: bodies it
// cannot read still give an Error with the status and a short excerpt.
func parseError(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status}
	if header != nil {
		e.RequestID = excerpt.Clean(header.Get("x-request-id"))
		e.RetryAfter = httpretry.RetryAfter(header.Get("Retry-After"), now)
	}

	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		e.Detail = excerpt.Body(body)
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
				return excerpt.Clean(s)
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
		e.Detail = excerpt.Body(body)
	}
	e.Code = excerpt.Truncate(e.Code)
	e.RequestID = excerpt.Truncate(e.RequestID)
	e.Title = excerpt.Truncate(e.Title)
	e.Detail = excerpt.Truncate(e.Detail)
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

// redactable picks the secrets worth redacting: ones shorter than 4 bytes
// would garble a message without protecting anything.
func redactable(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// scrubError removes credentials from an error's text fields, in case a
// server echoed them back (JSON escapes can hide them from a scan of the raw
// body).
func scrubError(e *Error, secrets ...string) {
	e.Title = excerpt.Redact(e.Title, secrets...)
	e.Detail = excerpt.Redact(e.Detail, secrets...)
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
