package emulator

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFlowSpecOptionSpec(t *testing.T) {
	v := newEnv(t, Options{})
	res := v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil)
	mustStatus(t, "GET flow spec", res, http.StatusOK)
	spec := Object{Doc: res.items()[0]}
	want := map[string]any{
		"errorDiagnosticsEnabled": map[string]any{"type": "boolean", "default": false},
		"partialIngestionPercent": map[string]any{"type": "number", "exclusiveMinimum": float64(0), "maximum": float64(100)},
	}
	for name, w := range want {
		got := map[string]any{}
		for k := range w.(map[string]any) {
			got[k] = spec.Field("optionSpec.spec.properties." + name + "." + k)
		}
		if d := cmp.Diff(w, got); d != "" {
			t.Errorf("optionSpec %s (-want +got):\n%s", name, d)
		}
	}
}

func TestFlowOptions(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		src, _ := v.mustCreate(fsPath("/sourceConnections"), sourceConnectionBody("s"))
		tgt, _ := v.mustCreate(fsPath("/targetConnections"), targetConnectionBody("t", testDataset))
		withOptions := func(o any) map[string]any {
			b := flowBody("f", src, tgt, "")
			b["options"] = o
			return b
		}
		cases := []struct {
			name     string
			options  any
			wantType string // "" = created
		}{
			{"both options", map[string]any{"errorDiagnosticsEnabled": true, "partialIngestionPercent": 5}, ""},
			{"fractional percent", map[string]any{"partialIngestionPercent": 0.5}, ""},
			{"percent 100", map[string]any{"partialIngestionPercent": 100}, ""},
			{"empty options", map[string]any{}, ""},
			{"percent 0 (exclusive minimum)", map[string]any{"partialIngestionPercent": 0}, "FLOW-1100-400"},
			{"negative percent", map[string]any{"partialIngestionPercent": -1}, "FLOW-1100-400"},
			{"percent above 100", map[string]any{"partialIngestionPercent": 100.5}, "FLOW-1100-400"},
			{"percent as a string", map[string]any{"partialIngestionPercent": "5"}, "FLOW-1100-400"},
			{"diagnostics as a string", map[string]any{"errorDiagnosticsEnabled": "true"}, "FLOW-1100-400"},
			{"an option the flow spec does not offer", map[string]any{"retryCount": 3}, "FLOW-1100-400"},
		}
		for _, tc := range cases {
			expectCreated(t, tc.name, v.do(http.MethodPost, fsPath("/flows"), withOptions(tc.options)), tc.wantType)
		}

		// Stored and returned beside inletUrl; a client-sent inletUrl is
		// replaced by the emulator's.
		id, etag := v.mustCreate(fsPath("/flows"), withOptions(map[string]any{"errorDiagnosticsEnabled": true, "partialIngestionPercent": 5, "inletUrl": "https://elsewhere/collection/x"}))
		get := func() Object {
			res := v.do(http.MethodGet, fsPath("/flows/"+id), nil)
			mustStatus(t, "GET flow", res, http.StatusOK)
			return Object{Doc: res.items()[0]}
		}
		flow := get()
		inlet := flow.Field("options.inletUrl")
		if inlet == "https://elsewhere/collection/x" || inlet == nil {
			t.Errorf("inletUrl = %v", inlet)
		}
		if flow.Field("options.errorDiagnosticsEnabled") != true || flow.Field("options.partialIngestionPercent") != float64(5) {
			t.Errorf("options = %v", flow.Field("options"))
		}

		patches := []struct {
			name     string
			ops      []map[string]any
			wantType string
		}{
			{"replace the percent", []map[string]any{{"op": "replace", "path": "/options/partialIngestionPercent", "value": 10}}, ""},
			{"turn diagnostics off", []map[string]any{{"op": "replace", "path": "/options/errorDiagnosticsEnabled", "value": false}}, ""},
			{"percent out of range", []map[string]any{{"op": "replace", "path": "/options/partialIngestionPercent", "value": 0}}, "FLOW-1100-400"},
			{"an option not offered", []map[string]any{{"op": "add", "path": "/options/retryCount", "value": 3}}, "FLOW-1100-400"},
			{"inletUrl", []map[string]any{{"op": "replace", "path": "/options/inletUrl", "value": "https://elsewhere"}}, "FLOW-1455-400"},
		}
		for _, pc := range patches {
			res := v.do(http.MethodPatch, fsPath("/flows/"+id), pc.ops, withHeader("If-Match", etag))
			if pc.wantType == "" {
				mustStatus(t, "PATCH "+pc.name, res, http.StatusOK)
				etag, _ = res.json()["etag"].(string)
				continue
			}
			mustStatus(t, "PATCH "+pc.name, res, http.StatusBadRequest)
			if res.errorType() != pc.wantType {
				t.Errorf("PATCH %s: type = %q, want %s", pc.name, res.errorType(), pc.wantType)
			}
		}
		flow = get()
		if flow.Field("options.partialIngestionPercent") != float64(10) || flow.Field("options.errorDiagnosticsEnabled") != false || flow.Field("options.inletUrl") != inlet {
			t.Errorf("options after PATCH = %v", flow.Field("options"))
		}
	})
}
