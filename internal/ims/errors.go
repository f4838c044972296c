package ims

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Error is an answer from IMS other than a token: an OAuth error body
// ({"error","error_description"}) or a response that carries no usable token.
// It never holds the client secret or a token.
type Error struct {
	// StatusCode is the HTTP status IMS answered with.
	StatusCode int
	// Code is the OAuth error code, e.g. "invalid_client"; "invalid_response"
	// when a 2xx answer carried no usable token.
	Code string
	// Description is IMS's error_description, scrubbed of the secret.
	Description string
	// DebugID is IMS's X-Debug-Id header, which Adobe support can trace.
	DebugID string
	// RetryAfter is IMS's Retry-After, when it sent one.
	RetryAfter time.Duration
}

// CodeInvalidResponse marks a successful status whose body held no token.
const CodeInvalidResponse = "invalid_response"

func (e *Error) Error() string {
	msg := fmt.Sprintf("IMS answered %d", e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.DebugID != "" {
		msg += " (debug id " + e.DebugID + ")"
	}
	return msg
}

// terminalCodes are OAuth errors that no retry can fix: the credential itself
// is wrong, revoked, or not allowed the requested scopes.
var terminalCodes = map[string]bool{
	"invalid_client":         true,
	"invalid_scope":          true,
	"unauthorized_client":    true,
	"invalid_grant":          true,
	"unsupported_grant_type": true,
	"invalid_request":        true,
}

// IsTerminal reports whether err means the credential is unusable as it stands
// (bad client ID or secret, scopes not granted): retrying with the same input
// fails the same way, so the caller should surface it and wait for a change.
func IsTerminal(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	if terminalCodes[e.Code] {
		return true
	}
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// IsTransient reports whether err is worth retrying later: IMS 5xx or 429,
// a malformed success answer, a timeout or a network failure. Caller
// cancellation is neither terminal nor transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		if IsTerminal(err) {
			return false
		}
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests ||
			e.StatusCode == http.StatusRequestTimeout || e.Code == CodeInvalidResponse
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
