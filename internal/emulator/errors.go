package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// HeaderEmulatorReason is set on responses the emulator injects on purpose
// (faults, spec validation) so a test, or a human reading a trace, can tell
// them from ordinary Adobe behaviour. Adobe never sends it.
const HeaderEmulatorReason = "X-Emulator-Reason"

// Values of HeaderEmulatorReason.
const (
	ReasonFault503 = "fault-503"
	ReasonFault429 = "fault-429"
	// ReasonRateLimited marks a 429 of the gateway's rate limit (RateLimit),
	// as opposed to an injected one.
	ReasonRateLimited   = "rate-limited"
	ReasonFaultLost     = "fault-lost-response"
	ReasonSpecViolation = "openapi-validation"
	// ReasonFaultTokenExpiry is only logged: the 401 it causes is Adobe's own.
	ReasonFaultTokenExpiry = "fault-token-expiry"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v == nil {
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// gatewayError writes the Adobe I/O gateway shape,
// {"error_code":"401013","message":"Oauth token is not valid"}.
func gatewayError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error_code": code, "message": message})
}

// imsError writes the IMS OAuth error shape {"error","error_description"}.
func imsError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": description})
}

// apiError is an error answer from Flow Service or Data Prep.
type apiError struct {
	status int
	// code is the "NNNN-SSS" part of a Flow Service error type URI.
	code   string
	title  string
	detail string
	report map[string]any
	// problem selects the generic Platform problem shape instead of the
	// Flow Service one (used for Data Prep, whose error bodies Adobe does
	// not document).
	problem bool
}

// write renders the error. The Flow Service shape is the one documented for
// FLOW-1439-404 (en:help/sources/tutorials/api/labels.md): type, title,
// status, report{detailed-message, request-id, ...}, errorMessage,
// errorDetails. The problem shape is the one documented for content-type
// errors (en:help/landing/troubleshooting.md).
func (e *apiError) write(w http.ResponseWriter, rc *reqCtx) {
	if e.problem {
		writeJSON(w, e.status, map[string]any{
			"type":   "/placeholder/type/uri",
			"status": e.status,
			"title":  e.title,
			"detail": e.detail,
		})
		return
	}
	rep := map[string]any{"detailed-message": e.detail}
	if rc != nil {
		rep["request-id"] = rc.requestID
	}
	for k, v := range e.report {
		rep[k] = v
	}
	writeJSON(w, e.status, map[string]any{
		"type":         "https://ns.adobe.com/aep/errors/FLOW-" + e.code,
		"title":        e.title,
		"status":       e.status,
		"report":       rep,
		"errorMessage": e.detail,
		"errorDetails": e.detail,
	})
}

// Constructors for the Flow Service errors the emulator returns, with the
// wording of Adobe's catalogue (en:help/sources/errors/flow-service-errors.md).

func errBadRequest(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1100-400", title: "Invalid request",
		detail: "The request could not be processed. Error from flow provider: " + detail}
}

func errEmptyBody() *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1405-400", title: "Invalid request",
		detail: "The request body cannot be null or empty. Please provide a request body and try again."}
}

func errNotFound(kind Kind, id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "1439-404", title: "Resource not found",
		detail: "The requested " + string(kind) + " resource " + id + " is not found. Verify the resource ID before trying again.",
		report: map[string]any{"id": id, "type": string(kind)}}
}

func errSpecNotFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "1101-404", title: "Resource not found",
		detail: "The requested resource is not found. Error from flow provider: Resource with given id does not exist.",
		report: map[string]any{"id": id}}
}

func errInvalidSpec(id string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1413-400", title: "Invalid request",
		detail: "The spec ID provided is invalid. Please provide a valid spec ID and try again.",
		report: map[string]any{"id": id}}
}

func errIfMatchMissing() *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1403-400", title: "Header is missing",
		detail: "The header 'If-Match' is missing in the request. Please provide the header and try again."}
}

func errVersionMismatch(supplied, current string) *apiError {
	return &apiError{status: http.StatusPreconditionFailed, code: "1404-412", title: "Version not matching",
		detail: "The supplied version '" + supplied + "' does not match the current version on entity '" + current +
			"'. Please ensure that the supplied version matches the current version on entity and try again."}
}

func errConnectionInUse(kind Kind, id string) *apiError {
	noun, users := "source connection", "flows"
	switch kind {
	case KindTargetConnection:
		noun = "target connection"
	case KindConnection:
		noun, users = "base connection", "source connections"
	}
	return &apiError{status: http.StatusBadRequest, code: "1418-400", title: "Invalid request",
		detail: "The " + noun + " with the ID " + id + " cannot be deleted because the " + noun +
			" is being used in one or more " + users + ". Please ensure that corresponding " + users + " are deleted before deleting a " + noun + ".",
		report: map[string]any{"id": id}}
}

func errServiceUnavailable() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: "1103-503", title: "Service Unavailable",
		detail: "The service is temporarily unavailable. Please try again. If the problem persists, please contact customer support."}
}

func errInternal() *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "1102-500", title: "Internal Error",
		detail: "An internal error has occurred. Please try again. If the problem persists, please contact customer support."}
}

func errProblem(status int, title, detail string) *apiError {
	return &apiError{status: status, title: title, detail: detail, problem: true}
}

func retryAfterValue(seconds int) string {
	if seconds < 1 {
		seconds = 1
	}
	return strconv.Itoa(seconds)
}
