package aepspec_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
)

func platformRequest(method, target, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, "http://127.0.0.1:9999"+target, nil)
	} else {
		r = httptest.NewRequest(method, "http://127.0.0.1:9999"+target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("x-api-key", "client")
	r.Header.Set("x-gw-ims-org-id", "0A7D42FC5DB9D3360A495FD3@AdobeOrg")
	r.Header.Set("x-sandbox-name", "prod")
	return r
}

// The bodies are Adobe's own examples from aep-api.md; they must pass, and
// requests that break the spec must not.
func TestValidateRequest(t *testing.T) {
	v := aepspectest.Validator(t)
	cases := []struct {
		name    string
		req     *http.Request
		wantErr bool
	}{
		{
			name: "streaming SDK source connection",
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/sourceConnections",
				`{"name":"Capillary Streaming Source Connection","providerId":"521eee4d-8cbe-4906-bb48-fb6bd4450033","description":"d","connectionSpec":{"id":"6360f136-5980-4111-8bdf-15d29eab3b5a","version":"1.0"},"data":{"format":"json"}}`),
		},
		{
			name: "data lake target connection",
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/targetConnections",
				`{"name":"t","connectionSpec":{"id":"c604ff05-7f1a-43c0-8e18-33bf874cb11c","version":"1.0"},"data":{"format":"json","schema":{"id":"https://ns.adobe.com/acme/schemas/1","version":"application/vnd.adobe.xed-full+json;version=1"}},"params":{"dataSetId":"6889f4f89b982b2b90bc1207"}}`),
		},
		{
			name: "flow with a numeric mappingVersion (Adobe's examples send numbers)",
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/flows",
				`{"name":"f","flowSpec":{"id":"e77fde5a-22a8-11ed-861d-0242ac120002","version":"1.0"},"sourceConnectionIds":["s"],"targetConnectionIds":["t"],"transformations":[{"name":"Mapping","params":{"mappingId":"m","mappingVersion":0}}]}`),
		},
		{
			name: "lowercase JSON Patch with a string value",
			req: func() *http.Request {
				r := platformRequest(http.MethodPatch, "/data/foundation/flowservice/flows/abc",
					`[{"op":"replace","path":"/name","value":"new"}]`)
				r.Header.Set("If-Match", `"1a0037e4-0000-0200-0000-602e06f60000"`)
				return r
			}(),
		},
		{
			name:    "PATCH without If-Match",
			wantErr: true,
			req: platformRequest(http.MethodPatch, "/data/foundation/flowservice/flows/abc",
				`[{"op":"replace","path":"/name","value":"new"}]`),
		},
		{
			name: "flow action op=disable",
			req:  platformRequest(http.MethodPost, "/data/foundation/flowservice/flows/abc/action?op=disable", ""),
		},
		{
			name: "mapping set",
			req: platformRequest(http.MethodPost, "/data/foundation/conversion/mappingSets",
				`{"version":0,"xdmSchema":"https://ns.adobe.com/acme/schemas/1","xdmVersion":"1.0","mappings":[{"destinationXdmPath":"loyalty.points","sourceAttribute":"loyalty.points","identity":false,"version":0}]}`),
		},
		{
			name:    "flow with sourceConnectionIds as a string (CAP-API's suspect example)",
			wantErr: true,
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/flows",
				`{"name":"f","flowSpec":{"id":"e77fde5a-22a8-11ed-861d-0242ac120002"},"sourceConnectionIds":"s","targetConnectionIds":["t"]}`),
		},
		{
			name: "base connection (HTTP API tutorial's shape)",
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/connections",
				`{"name":"b","description":"d","connectionSpec":{"id":"6360f136-5980-4111-8bdf-15d29eab3b5a","version":"1.0"},"auth":{"specName":"HMAC Shared Secret","params":{"sharedSecret":"s"}}}`),
		},
		{
			name:    "base connection without auth.specName",
			wantErr: true,
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/connections",
				`{"name":"b","connectionSpec":{"id":"6360f136-5980-4111-8bdf-15d29eab3b5a","version":"1.0"},"auth":{"params":{}}}`),
		},
		{
			name: "base connection JSON Patch without the spec's trailing slash (update.md's form)",
			req: func() *http.Request {
				r := platformRequest(http.MethodPatch, "/data/foundation/flowservice/connections/abc",
					`[{"op":"replace","path":"/auth/params","value":{"sharedSecret":"s"}}]`)
				r.Header.Set("If-Match", `"1a0037e4-0000-0200-0000-602e06f60000"`)
				return r
			}(),
		},
		{
			name: "base connection delete without the trailing slash",
			req:  platformRequest(http.MethodDelete, "/data/foundation/flowservice/connections/abc", ""),
		},
		{
			name: "flow with options (the flow spec's optionSpec)",
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/flows",
				`{"name":"f","flowSpec":{"id":"e77fde5a-22a8-11ed-861d-0242ac120002","version":"1.0"},"sourceConnectionIds":["s"],"targetConnectionIds":["t"],"options":{"errorDiagnosticsEnabled":true,"partialIngestionPercent":5}}`),
		},
		{
			name:    "flow with options that are not an object",
			wantErr: true,
			req: platformRequest(http.MethodPost, "/data/foundation/flowservice/flows",
				`{"name":"f","flowSpec":{"id":"e77fde5a-22a8-11ed-861d-0242ac120002","version":"1.0"},"sourceConnectionIds":["s"],"targetConnectionIds":["t"],"options":"yes"}`),
		},
		{
			name:    "action with an unknown op",
			wantErr: true,
			req:     platformRequest(http.MethodPost, "/data/foundation/flowservice/flows/abc/action?op=explode", ""),
		},
		{
			name:    "missing x-api-key",
			wantErr: true,
			req: func() *http.Request {
				r := platformRequest(http.MethodGet, "/data/foundation/flowservice/flows/abc", "")
				r.Header.Del("x-api-key")
				return r
			}(),
		},
		{
			name:    "unknown path",
			wantErr: true,
			req:     platformRequest(http.MethodGet, "/data/foundation/flowservice/nope/abc", ""),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.ValidateRequest(tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ValidateRequest() error = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
