package flowservice

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
	"github.com/google/go-cmp/cmp"
)

const (
	capillarySpecID = "6360f136-5980-4111-8bdf-15d29eab3b5a"
	streamingFlowID = "e77fde5a-22a8-11ed-861d-0242ac120002"
	testSchema      = "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168"
	testETag        = `"712a8c08-fda7-41c2-984b-187f823293d8"`
	testInlet       = "https://dcs.adobedc.net/collection/ab65636c31778fb0455c439ffb48a5433a34d443f4c83c4b5beda9c5688797c5"
)

// adobeLike answers each operation with the body shape Adobe documents.
func adobeLike(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	fs := strings.TrimPrefix(p, FlowServicePath)
	switch {
	case strings.HasPrefix(p, DataPrepPath+"/mappingSets"):
		switch r.Method {
		case http.MethodPost:
			writeJSON(w, 200, `{"id":"e7c80e4c0d8f4a98a7d400b4e178b635","version":0,"createdDate":1614901254724,"modifiedDate":1614901254724}`)
		case http.MethodGet, http.MethodPut:
			writeJSON(w, 200, `{"id":"e7c80e4c0d8f4a98a7d400b4e178b635","version":1,"xdmSchema":"`+testSchema+`","xdmVersion":"1.0",
				"createdDate":1614901254724,"mappings":[{"id":"394bec970d54410b98e1d4c55a3843ca","sourceType":"text/x.schema-path",
				"source":"loyalty.points","destination":"loyalty.points","identity":false,"sourceAttribute":"loyalty.points","destinationXdmPath":"loyalty.points"}]}`)
		}
	case strings.HasPrefix(fs, "/connectionSpecs/"):
		writeJSON(w, 200, `{"items":[{"id":"`+capillarySpecID+`","name":"generic-streaming","providerId":"521eee4d-8cbe-4906-bb48-fb6bd4450033",
			"version":"1.0","authSpec":[],"attributes":{"isSource":true,"category":{"key":"loyalty"}},
			"sourceSpec":{"attributes":{"uiAttributes":{"isSource":true,"isBeta":true,"label":{"text":"Capillary Streaming Events"},"category":{"key":"loyalty"}}}}}]}`)
	case strings.HasPrefix(fs, "/flowSpecs"):
		writeJSON(w, 200, `{"items":[{"id":"`+streamingFlowID+`","name":"GenericStreamingAEP","version":"1.0",
			"sourceConnectionSpecIds":["`+capillarySpecID+`"],"targetConnectionSpecIds":["`+DataLakeConnectionSpecID+`"]}]}`)
	case strings.HasSuffix(fs, "/action"):
		writeJSON(w, 200, `{"id":"993f908f-3342-4d9c-9f3c-5aa9a189ca1a","etag":"\"a1011225-0000-0200-0000-63c78ae60000\""}`)
	case r.Method == http.MethodPost:
		w.Header().Set("Location", p+"/new-id")
		writeJSON(w, 201, `{"id":"246d052c-da4a-494a-937f-a0d17b1c6cf5","etag":"\"712a8c08-fda7-41c2-984b-187f823293d8\""}`)
	case r.Method == http.MethodPatch:
		writeJSON(w, 200, `{"id":"246d052c-da4a-494a-937f-a0d17b1c6cf5","etag":"\"2c000802-0000-0200-0000-613976440000\""}`)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(fs, "/flows"):
		writeJSON(w, 200, `{"items":[{"id":"993f908f-3342-4d9c-9f3c-5aa9a189ca1a","name":"capillary-orders",
			"flowSpec":{"id":"`+streamingFlowID+`","version":"1.0"},"state":"enabled","etag":"\"a1011225-0000-0200-0000-63c78ae60000\"",
			"sourceConnectionIds":["246d052c-da4a-494a-937f-a0d17b1c6cf5"],"targetConnectionIds":["7c96c827-3ffd-460c-a573-e9558f72f263"],
			"options":{"errorDiagnosticsEnabled":true,"inletUrl":"`+testInlet+`"},
			"transformations":[{"name":"Mapping","params":{"mappingVersion":0,"mappingId":"bf5286a9c1ad4266baca76ba3adc9366"}}],
			"lastOperation":{"started":0,"updated":0,"operation":"enable"}}]}`)
	case strings.HasPrefix(fs, "/runs"):
		writeJSON(w, 200, `{"items":[{"id":"98fbed6e-f896-4b19-b279-b0d56d732d8d","flowId":"993f908f-3342-4d9c-9f3c-5aa9a189ca1a",
			"metrics":{"durationSummary":{"startedAtUTC":1670284458833,"completedAtUTC":1670284518048},
			"recordSummary":{"inputRecordCount":12,"outputRecordCount":10,"failedRecordCount":2},
			"statusSummary":{"status":"success","errors":[{"code":"MAPPER-3700-400","message":"Mapping failed"}]}}}]}`)
	case strings.HasPrefix(fs, "/connections"):
		writeJSON(w, 200, `{"items":[{"id":"70383d02-2777-4be7-a309-9dd6eea1b46d","name":"capillary-orders-base","state":"enabled",
			"etag":"\"d64c8298-add4-4667-9a49-28195b2e2a84\"","connectionSpec":{"id":"`+capillarySpecID+`","version":"1.0"},
			"auth":{"specName":"OAuth2 Client Credential","params":{"clientId":"abc","clientSecret":"***"}}}]}`)
	case strings.HasPrefix(fs, "/sourceConnections"):
		writeJSON(w, 200, `{"items":[{"id":"246d052c-da4a-494a-937f-a0d17b1c6cf5","name":"capillary-orders","state":"enabled",
			"etag":"\"712a8c08-fda7-41c2-984b-187f823293d8\"","connectionSpec":{"id":"`+capillarySpecID+`","version":"1.0"},"data":{"format":"json"},"createdAt":1670276871555}]}`)
	case strings.HasPrefix(fs, "/targetConnections"):
		writeJSON(w, 200, `{"items":[{"id":"7c96c827-3ffd-460c-a573-e9558f72f263","name":"capillary-orders","state":"enabled",
			"etag":"\"a196f685-f5e8-4c4c-bfbd-136141bb0c6d\"","connectionSpec":{"id":"`+DataLakeConnectionSpecID+`","version":"1.0"},
			"data":{"format":"parquet_xdm","schema":{"id":"`+testSchema+`","version":"`+XDMFullContentType+`"}},"params":{"dataSetId":"6889f4f89b982b2b90bc1207"}}]}`)
	default:
		writeJSON(w, 404, `{"type":"https://ns.adobe.com/aep/errors/FLOW-1101-404","title":"Resource not found","status":404}`)
	}
}

// TestContract runs every client operation against a recording server and
// checks each request the client sent against Adobe's OpenAPI specs, plus the
// wire rules the specs do not state (CONTRACT.md, aep-api.md §2).
func TestContract(t *testing.T) {
	validator := aepspectest.Validator(t)
	env := newEnv(t, adobeLike)
	c, s, ctx := env.client, testScope(), context.Background()

	mappings := MappingSet{
		OutputSchema: &OutputSchema{SchemaRef: XDMSchemaRef{ID: testSchema, ContentType: XDMFullContentType}},
		Mappings: []Mapping{
			{SourceType: SourceTypeAttribute, Source: "loyalty.points", Destination: "loyalty.points"},
			{SourceType: SourceTypeAttribute, Source: "identityMap.email.id", Destination: "identityMap.email[0].id", Identity: true},
		},
	}
	patch := []PatchOp{
		{Op: PatchReplace, Path: "/name", Value: "capillary-orders-v2"},
		{Op: PatchReplace, Path: "/transformations/0", Value: Transformation{Name: TransformationMapping,
			Params: TransformationParams{MappingID: "c5f22f04e09f44498e528901546a83b1", MappingVersion: 2}}},
	}
	const id = "246d052c-da4a-494a-937f-a0d17b1c6cf5"

	// Every exported operation, in the order the reconciler uses them.
	ops := []struct {
		op  string
		run func() error
	}{
		{OpGetConnectionSpec, func() error {
			spec, err := c.Session(s).GetConnectionSpec(ctx, capillarySpecID)
			if err == nil && (!spec.Attributes.IsSource || spec.SourceSpec.Attributes.UIAttributes.Label != "Capillary Streaming Events" || len(spec.AuthSpec) != 0) {
				t.Errorf("connection spec decoded as %+v", spec)
			}
			return err
		}},
		{OpGetFlowSpec, func() error {
			fs, err := c.Session(s).GetFlowSpec(ctx, streamingFlowID)
			if err == nil && !cmp.Equal(fs.SourceConnectionSpecIDs, []string{capillarySpecID}) {
				t.Errorf("flow spec decoded as %+v", fs)
			}
			return err
		}},
		{OpListFlowSpecs, func() error {
			_, err := c.Session(s).ListFlowSpecs(ctx, "sourceConnectionSpecIds[]=="+capillarySpecID)
			return err
		}},
		{OpCreateConnection, func() error {
			_, err := c.Session(s).CreateConnection(ctx, ConnectionInput{
				Name: "capillary-orders-base", Description: "Capillary base connection",
				Auth:           Auth{SpecName: "OAuth2 Client Credential", Params: map[string]any{"clientId": "abc", "clientSecret": "xyz"}},
				ConnectionSpec: SpecRef{ID: capillarySpecID, Version: DefaultSpecVersion},
			})
			return err
		}},
		{OpGetConnection, func() error {
			conn, err := c.Session(s).GetConnection(ctx, "70383d02-2777-4be7-a309-9dd6eea1b46d")
			if err == nil && (conn.Auth == nil || conn.Auth.SpecName != "OAuth2 Client Credential") {
				t.Errorf("base connection decoded as %+v", conn)
			}
			return err
		}},
		{OpListConnections, func() error { _, err := c.Session(s).ListConnections(ctx, "name==capillary-orders-base"); return err }},
		{OpPatchConnection, func() error {
			_, err := c.Session(s).PatchConnection(ctx, "70383d02-2777-4be7-a309-9dd6eea1b46d", testETag,
				[]PatchOp{{Op: PatchReplace, Path: "/auth/params/clientSecret", Value: "new"}})
			return err
		}},
		{OpCreateSourceConnection, func() error {
			ref, err := c.Session(s).CreateSourceConnection(ctx, SourceConnectionInput{
				Name: "capillary-orders", Description: "Capillary Streaming Source Connection",
				ProviderID:     StreamingProviderID,
				ConnectionSpec: SpecRef{ID: capillarySpecID, Version: DefaultSpecVersion},
				Data:           SourceData{Format: "json"},
			})
			if err == nil && ref.ETag != testETag {
				t.Errorf("etag = %s, want %s with its quotes", ref.ETag, testETag)
			}
			return err
		}},
		{OpGetSourceConnection, func() error { _, err := c.Session(s).GetSourceConnection(ctx, id); return err }},
		{OpListSourceConnections, func() error { _, err := c.Session(s).ListSourceConnections(ctx, "name==capillary-orders"); return err }},
		{OpCreateTargetConnection, func() error {
			_, err := c.Session(s).CreateTargetConnection(ctx, TargetConnectionInput{
				Name: "capillary-orders", Description: "Capillary Target Connection",
				ConnectionSpec: SpecRef{ID: DataLakeConnectionSpecID, Version: DefaultSpecVersion},
				Data:           TargetData{Format: "json", Schema: &SchemaRef{ID: testSchema, Version: XDMFullContentType}},
				Params:         TargetParams{DataSetID: "6889f4f89b982b2b90bc1207"},
			})
			return err
		}},
		{OpGetTargetConnection, func() error { _, err := c.Session(s).GetTargetConnection(ctx, id); return err }},
		{OpListTargetConnections, func() error { _, err := c.Session(s).ListTargetConnections(ctx, "name==capillary-orders"); return err }},
		{OpCreateMappingSet, func() error {
			ref, err := c.Session(s).CreateMappingSet(ctx, mappings)
			if err == nil && ref.ID == "" {
				t.Errorf("mapping set ref %+v has no ID", ref)
			}
			return err
		}},
		{OpGetMappingSet, func() error {
			ms, err := c.Session(s).GetMappingSet(ctx, "e7c80e4c0d8f4a98a7d400b4e178b635")
			if err == nil && (len(ms.Mappings) != 1 || ms.Mappings[0].Source != "loyalty.points" || ms.Version != 1) {
				t.Errorf("mapping set decoded as %+v", ms)
			}
			return err
		}},
		{OpUpdateMappingSet, func() error {
			_, err := c.Session(s).UpdateMappingSet(ctx, "e7c80e4c0d8f4a98a7d400b4e178b635", mappings)
			return err
		}},
		{OpCreateFlow, func() error {
			_, err := c.Session(s).CreateFlow(ctx, FlowInput{
				Name: "capillary-orders", Description: "Capillary to Experience Platform",
				FlowSpec:            SpecRef{ID: streamingFlowID, Version: DefaultSpecVersion},
				SourceConnectionIDs: []string{id}, TargetConnectionIDs: []string{"7c96c827-3ffd-460c-a573-e9558f72f263"},
				Transformations: []Transformation{{Name: TransformationMapping,
					Params: TransformationParams{MappingID: "e7c80e4c0d8f4a98a7d400b4e178b635", MappingVersion: 0}}},
			})
			return err
		}},
		{OpGetFlow, func() error {
			f, err := c.Session(s).GetFlow(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a")
			if err == nil && (f.Options.InletURL != testInlet || f.State != StateEnabled || f.Transformations[0].Params.MappingID == "") {
				t.Errorf("flow decoded as %+v", f)
			}
			return err
		}},
		{OpListFlows, func() error { _, err := c.Session(s).ListFlows(ctx, "name==capillary-orders"); return err }},
		{OpPatchFlow, func() error {
			_, err := c.Session(s).PatchFlow(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a", testETag, patch)
			return err
		}},
		{OpFlowAction + "_disable", func() error {
			_, err := c.Session(s).FlowAction(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a", ActionDisable)
			return err
		}},
		{OpFlowAction + "_enable", func() error {
			_, err := c.Session(s).FlowAction(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a", ActionEnable)
			return err
		}},
		{OpDeleteFlow, func() error { return c.Session(s).DeleteFlow(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a") }},
		{OpDeleteSourceConnection, func() error { return c.Session(s).DeleteSourceConnection(ctx, id) }},
		{OpDeleteTargetConnection, func() error { return c.Session(s).DeleteTargetConnection(ctx, "7c96c827-3ffd-460c-a573-e9558f72f263") }},
		{OpListRuns, func() error {
			runs, err := c.Session(s).ListRuns(ctx, "993f908f-3342-4d9c-9f3c-5aa9a189ca1a")
			if err == nil && (len(runs) != 1 || runs[0].Metrics.RecordSummary.FailedRecordCount != 2 || runs[0].Metrics.StatusSummary.Errors[0].Code != "MAPPER-3700-400") {
				t.Errorf("runs decoded as %+v", runs)
			}
			return err
		}},
		{OpDeleteConnection, func() error { return c.Session(s).DeleteConnection(ctx, "70383d02-2777-4be7-a309-9dd6eea1b46d") }},
	}
	for _, o := range ops {
		if err := o.run(); err != nil {
			t.Errorf("%s: %v", o.op, err)
		}
	}

	reqs := env.rec.requests()
	if len(reqs) != len(ops) {
		t.Fatalf("server saw %d requests for %d operations", len(reqs), len(ops))
	}
	for i, r := range reqs {
		name := ops[i].op + ": " + r.req.Method + " " + r.req.URL.RequestURI()
		if err := validator.ValidateRequest(r.req); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		checkWireRules(t, name, r)

		// The check is not vacuous: the same request without its token fails it.
		stripped := r.req.Clone(context.Background())
		stripped.Header.Del("Authorization")
		stripped.Body = io.NopCloser(bytes.NewReader(r.body))
		if err := validator.ValidateRequest(stripped); err == nil {
			t.Errorf("%s: the validator accepted it without Authorization", name)
		}
	}

	// The calls whose wire details matter most, spelled out.
	byOp := func(op string) recorded {
		for i, o := range ops {
			if o.op == op {
				return reqs[i]
			}
		}
		t.Fatalf("no request for %s", op)
		return recorded{}
	}
	if got := byOp(OpPatchFlow).req.Header.Get("If-Match"); got != testETag {
		t.Errorf("PATCH If-Match = %s, want the etag as received, quotes included: %s", got, testETag)
	}
	if got := byOp(OpFlowAction + "_enable").req.URL.RawQuery; got != "op=enable" {
		t.Errorf("enable query = %q, want op=enable", got)
	}
	if got := byOp(OpFlowAction + "_disable").req.URL.RawQuery; got != "op=disable" {
		t.Errorf("disable query = %q, want op=disable", got)
	}
	if got := byOp(OpListFlows).req.URL.Query()["property"]; !cmp.Equal(got, []string{"name==capillary-orders"}) {
		t.Errorf("list property = %q", got)
	}
	var flowBody map[string]any
	if err := json.Unmarshal(byOp(OpCreateFlow).body, &flowBody); err != nil {
		t.Fatal(err)
	}
	for _, forbidden := range []string{"state", "id", "etag", "scheduleParams"} {
		if _, ok := flowBody[forbidden]; ok {
			t.Errorf("create flow body carries %q: %s", forbidden, byOp(OpCreateFlow).body)
		}
	}
	var patchBody []map[string]any
	if err := json.Unmarshal(byOp(OpPatchFlow).body, &patchBody); err != nil {
		t.Fatal(err)
	}
	if patchBody[0]["op"] != "replace" {
		t.Errorf("patch op = %v, want lowercase replace", patchBody[0]["op"])
	}
}

// checkWireRules checks what every Platform request must carry.
func checkWireRules(t *testing.T, name string, r recorded) {
	t.Helper()
	h := r.req.Header
	want := map[string]string{
		"Authorization":   "Bearer eyJ-test-token-1",
		"X-Api-Key":       testClientID,
		"X-Gw-Ims-Org-Id": testOrg,
		"X-Sandbox-Name":  testSandbox,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", name, k, got, v)
		}
	}
	hasBody := len(r.body) > 0
	if ct := h.Get("Content-Type"); hasBody && ct != "application/json" {
		t.Errorf("%s: body sent with Content-Type %q", name, ct)
	} else if !hasBody && ct != "" {
		t.Errorf("%s: Content-Type %q without a body", name, ct)
	}
	if r.req.Method == http.MethodPatch && h.Get("If-Match") == "" {
		t.Errorf("%s: PATCH without If-Match", name)
	}
	for _, secret := range []string{testSecret, "eyJ-test-token"} {
		if strings.Contains(r.req.URL.String(), secret) || strings.Contains(string(r.body), secret) {
			t.Errorf("%s: credential in the URL or body", name)
		}
	}
}

// TestContractMultipleProperties checks that ANDed filters, sent as repeated
// property= parameters as Adobe's sort-and-filter guide shows, pass the spec.
func TestContractMultipleProperties(t *testing.T) {
	validator := aepspectest.Validator(t)
	env := newEnv(t, adobeLike)
	if _, err := env.client.Session(testScope()).ListFlows(context.Background(), "name==capillary-orders", "state==enabled"); err != nil {
		t.Fatal(err)
	}
	r := env.rec.requests()[0]
	if got := r.req.URL.Query()["property"]; !cmp.Equal(got, []string{"name==capillary-orders", "state==enabled"}) {
		t.Errorf("property = %q, want two parameters", got)
	}
	if err := validator.ValidateRequest(r.req); err != nil {
		t.Error(err)
	}
}
