package flowservice

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/aepoperator/capillary-operator/internal/excerpt"
)

// predicates evaluated on an error, in a fixed order for table comparison.
type predicates struct {
	NotFound, PreconditionFailed, Forbidden, Invalid, Retryable bool
}

func predicatesOf(err error) predicates {
	return predicates{
		NotFound:           IsNotFound(err),
		PreconditionFailed: IsPreconditionFailed(err),
		Forbidden:          IsForbidden(err),
		Invalid:            IsInvalid(err),
		Retryable:          IsRetryable(err),
	}
}

func TestParseErrorShapes(t *testing.T) {
	now := time.Date(2025, 9, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
		preds  predicates
	}{
		{
			name: "flow service problem (labels.md 404)", status: 404,
			body: `{"type":"https://ns.adobe.com/aep/errors/FLOW-1439-404","title":"Resource not found","status":404,
				"report":{"detailed-message":"The requested flows resource 84224def is not found. Verify the resource ID before trying again.",
				"id":"84224def","request-id":"rid-404","type":"flows"},
				"errorMessage":"The requested flows resource 84224def is not found.","errorDetails":"The requested flows resource 84224def is not found."}`,
			want: Error{StatusCode: 404, Code: "FLOW-1439-404", Title: "Resource not found",
				Detail: "The requested flows resource 84224def is not found. Verify the resource ID before trying again.", RequestID: "rid-404"},
			preds: predicates{NotFound: true},
		},
		{
			name: "etag mismatch", status: 412,
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-1404-412","title":"Version not matching","status":412,"report":{"detailed-message":"The supplied version does not match."}}`,
			want:  Error{StatusCode: 412, Code: "FLOW-1404-412", Title: "Version not matching", Detail: "The supplied version does not match."},
			preds: predicates{PreconditionFailed: true},
		},
		{
			name: "etag mismatch, errorMessage only", status: 412,
			body:  `{"errorMessage":"Supplied version=[\"a\"] does not match the current version on entity=[\"b\"]"}`,
			want:  Error{StatusCode: 412, Detail: `Supplied version=["a"] does not match the current version on entity=["b"]`},
			preds: predicates{PreconditionFailed: true},
		},
		{
			name: "gateway invalid token", status: 401,
			body: `{"error_code":"401013","message":"Oauth token is not valid"}`,
			want: Error{StatusCode: 401, Code: "401013", Title: "Oauth token is not valid"},
		},
		{
			name: "gateway api key invalid", status: 403,
			body:  `{"error_code":"403003","message":"Api Key is invalid"}`,
			want:  Error{StatusCode: 403, Code: "403003", Title: "Api Key is invalid"},
			preds: predicates{Forbidden: true},
		},
		{
			name: "missing permission", status: 403,
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-2120-403","title":"Forbidden","status":403}`,
			want:  Error{StatusCode: 403, Code: "FLOW-2120-403", Title: "Forbidden"},
			preds: predicates{Forbidden: true},
		},
		{
			name: "platform problem without a code", status: 400,
			body:  `{"type":"/placeholder/type/uri","status":400,"title":"BadRequestError","detail":"A valid content-type must be specified"}`,
			want:  Error{StatusCode: 400, Title: "BadRequestError", Detail: "A valid content-type must be specified"},
			preds: predicates{Invalid: true},
		},
		{
			name: "validation error", status: 400,
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-1410-400","title":"Invalid request","status":400,"report":{"detailed-message":"State cannot be set on create."}}`,
			want:  Error{StatusCode: 400, Code: "FLOW-1410-400", Title: "Invalid request", Detail: "State cannot be set on create."},
			preds: predicates{Invalid: true},
		},
		{
			name: "internal error 1102", status: 500,
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-1102-500","title":"Internal Error","status":500}`,
			want:  Error{StatusCode: 500, Code: "FLOW-1102-500", Title: "Internal Error"},
			preds: predicates{Retryable: true},
		},
		{
			name: "unavailable 1103 with retry-after", status: 503, header: http.Header{"Retry-After": {"12"}},
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-1103-503","title":"Service Unavailable","status":503}`,
			want:  Error{StatusCode: 503, Code: "FLOW-1103-503", Title: "Service Unavailable", RetryAfter: 12 * time.Second},
			preds: predicates{Retryable: true},
		},
		{
			name: "timeout 1104", status: 504,
			body:  `{"type":"https://ns.adobe.com/aep/errors/FLOW-1104-504","title":"Gateway Timeout","status":504}`,
			want:  Error{StatusCode: 504, Code: "FLOW-1104-504", Title: "Gateway Timeout"},
			preds: predicates{Retryable: true},
		},
		{
			name: "throttled, HTTP date", status: 429,
			header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}, "X-Request-Id": {"hdr-rid"}},
			body:   `{"error_code":"429001","message":"Too many requests"}`,
			want:   Error{StatusCode: 429, Code: "429001", Title: "Too many requests", RequestID: "hdr-rid", RetryAfter: 90 * time.Second},
			preds:  predicates{Retryable: true},
		},
		{
			name: "HTML gateway page", status: 502, header: http.Header{"Content-Type": {"text/html"}},
			body:  "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>",
			want:  Error{StatusCode: 502, Detail: "502 Bad Gateway 502 Bad Gateway"},
			preds: predicates{Retryable: true},
		},
		{
			name: "empty body", status: 500, body: "",
			want: Error{StatusCode: 500},
		},
		{
			name: "json that is not an object", status: 400, body: `["x"]`,
			want:  Error{StatusCode: 400, Detail: `["x"]`},
			preds: predicates{Invalid: true},
		},
		{
			name: "numeric code, report request id wins over header", status: 409, header: http.Header{"X-Request-Id": {"hdr"}},
			body:  `{"code":1234,"message":"conflict","report":{"request-id":"body-rid"}}`,
			want:  Error{StatusCode: 409, Code: "1234", Title: "conflict", RequestID: "body-rid"},
			preds: predicates{Invalid: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseError(tc.status, tc.header, []byte(tc.body), now)
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			wrapped := fmt.Errorf("get dataflow x: %w", got)
			if diff := cmp.Diff(tc.preds, predicatesOf(wrapped)); diff != "" {
				t.Errorf("predicates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPredicatesOnOtherErrors(t *testing.T) {
	for _, err := range []error{nil, fmt.Errorf("plain")} {
		if got := predicatesOf(err); got != (predicates{}) {
			t.Errorf("%v: predicates %+v, want none", err, got)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{StatusCode: 404, Code: "FLOW-1439-404", Title: "Resource not found", Detail: "gone", RequestID: "rid", RetryAfter: time.Second}
	for _, part := range []string{"404", "FLOW-1439-404", "Resource not found", "gone", "rid"} {
		if !strings.Contains(e.Error(), part) {
			t.Errorf("message %q lacks %q", e.Error(), part)
		}
	}
}

func TestDetailIsBounded(t *testing.T) {
	long := strings.Repeat("é", 2*excerpt.MaxBytes)
	e := parseError(400, nil, []byte(`{"detail":"`+long+`"}`), time.Now())
	if len(e.Detail) > excerpt.MaxBytes+len("…") || !utf8.ValidString(e.Detail) {
		t.Errorf("detail of %d bytes (valid UTF-8: %v)", len(e.Detail), utf8.ValidString(e.Detail))
	}
}

// FuzzParseError checks that any body gives a bounded, printable Error with
// the status it came with.
func FuzzParseError(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{404, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1439-404","title":"Resource not found","status":404,"report":{"detailed-message":"gone","request-id":"r"}}`},
		{401, `{"error_code":"401013","message":"Oauth token is not valid"}`},
		{412, `{"errorMessage":"Supplied version=[x] does not match"}`},
		{400, `{"type":"/placeholder/type/uri","status":400,"title":"BadRequestError","detail":"A valid content-type must be specified"}`},
		{502, "<html><body><h1>502 Bad Gateway</h1></body></html>"},
		{500, ""},
		{500, "\x00\xff\xfe binary"},
		{400, `{"report":"not an object","title":7,"type":["x"]}`},
		{400, `{"code":null,"error_code":{"a":1}}`},
		{503, `null`},
	} {
		f.Add(seed.status, seed.body, "5")
	}
	f.Add(429, `{}`, "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(429, `{}`, "-1")
	f.Add(429, `{}`, "99999999999999999999")
	now := time.Date(2025, 9, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		e := parseError(status, http.Header{"Retry-After": {retryAfter}}, []byte(body), now)
		if e.StatusCode != status {
			t.Fatalf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > 24*time.Hour {
			t.Errorf("RetryAfter = %v", e.RetryAfter)
		}
		for name, s := range map[string]string{"Code": e.Code, "Title": e.Title, "Detail": e.Detail, "RequestID": e.RequestID} {
			if len(s) > excerpt.MaxBytes+len("…") {
				t.Errorf("%s has %d bytes", name, len(s))
			}
			if !utf8.ValidString(s) {
				t.Errorf("%s is not valid UTF-8: %q", name, s)
			}
			if strings.ContainsAny(s, "\n\r\x00") {
				t.Errorf("%s has control characters: %q", name, s)
			}
		}
		_ = e.Error()
		_ = predicatesOf(e)
	})
}
