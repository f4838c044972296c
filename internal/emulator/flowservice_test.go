package emulator

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
)

var quotedUUID = regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)

// forEachValidation runs f without spec validation and with Adobe's specs
// validating every request, so the emulator's happy paths are known to be
// spec-conformant requests.
func forEachValidation(t *testing.T, f func(t *testing.T, opts Options)) {
	t.Run("unvalidated", func(t *testing.T) { f(t, Options{}) })
	t.Run("spec-validated", func(t *testing.T) { f(t, Options{SpecValidator: aepspectest.Validator(t)}) })
}

func TestSpecs(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)

		res := v.do(http.MethodGet, fsPath("/connectionSpecs/"+CapillaryConnectionSpecID), nil)
		mustStatus(t, "GET connection spec", res, http.StatusOK)
		items := res.items()
		if len(items) != 1 {
			t.Fatalf("items = %d, want 1", len(items))
		}
		spec := Object{Doc: items[0]}
		got := map[string]any{
			"name":     spec.Name(),
			"isSource": spec.Field("attributes.isSource"),
			"authSpec": spec.Field("authSpec"),
			"label":    spec.Field("sourceSpec.attributes.uiAttributes.label.text"),
		}
		want := map[string]any{"name": "generic-streaming", "isSource": true, "authSpec": []any{}, "label": "Capillary Streaming Events"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("connection spec (-want +got):\n%s", d)
		}

		res = v.do(http.MethodGet, fsPath("/flowSpecs/"+StreamingFlowSpecID), nil)
		mustStatus(t, "GET flow spec", res, http.StatusOK)
		fspec := Object{Doc: res.items()[0]}
		if fspec.Name() != "GenericStreamingAEP" {
			t.Errorf("flow spec name = %q", fspec.Name())
		}
		if d := cmp.Diff([]any{DataLakeConnectionSpecID}, fspec.Field("targetConnectionSpecIds")); d != "" {
			t.Errorf("targetConnectionSpecIds (-want +got):\n%s", d)
		}

		// The operator picks the flow spec whose sourceConnectionSpecIds holds
		// the Capillary spec.
		res = v.do(http.MethodGet, fsPath("/flowSpecs?property="+url.QueryEscape("sourceConnectionSpecIds[]=="+CapillaryConnectionSpecID)), nil)
		mustStatus(t, "list flow specs", res, http.StatusOK)
		var ids []string
		for _, it := range res.items() {
			ids = append(ids, it["id"].(string))
		}
		if d := cmp.Diff([]string{StreamingFlowSpecID}, ids); d != "" {
			t.Errorf("filtered flow specs (-want +got):\n%s", d)
		}

		res = v.do(http.MethodGet, fsPath("/connectionSpecs/00000000-0000-0000-0000-000000000000"), nil)
		mustStatus(t, "unknown connection spec", res, http.StatusNotFound)
		if res.errorType() != "FLOW-1101-404" {
			t.Errorf("type = %q, want FLOW-1101-404", res.errorType())
		}
	})
}

func TestLifecycle(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		c := v.createAll("Capillary Profile")

		for _, etag := range []string{c.flowETag} {
			if !quotedUUID.MatchString(etag) {
				t.Errorf("etag %q is not a quoted UUID", etag)
			}
		}

		res := v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil)
		mustStatus(t, "GET flow", res, http.StatusOK)
		items := res.items()
		if len(items) != 1 {
			t.Fatalf("GET flow returned %d items, want 1", len(items))
		}
		flow := Object{Doc: items[0]}
		if flow.State() != "enabled" {
			t.Errorf("state = %q, want enabled", flow.State())
		}
		if flow.Field("etag") != c.flowETag || flow.Field("version") != c.flowETag {
			t.Errorf("etag/version = %v/%v, want %s", flow.Field("etag"), flow.Field("version"), c.flowETag)
		}
		for _, f := range []string{"id", "name", "description", "flowSpec", "sourceConnectionIds", "targetConnectionIds",
			"transformations", "createdAt", "updatedAt", "imsOrgId", "sandboxName", "inheritedAttributes"} {
			if flow.Field(f) == nil {
				t.Errorf("flow has no %s", f)
			}
		}
		if flow.Field("imsOrgId") != testOrg || flow.Field("sandboxName") != testSandbox {
			t.Errorf("imsOrgId/sandboxName = %v/%v", flow.Field("imsOrgId"), flow.Field("sandboxName"))
		}
		inlet, _ := flow.Field("options.inletUrl").(string)
		if !strings.HasPrefix(inlet, v.url+CollectionPrefix+"/") {
			t.Fatalf("inletUrl = %q, want it under %s%s/", inlet, v.url, CollectionPrefix)
		}

		// The inlet accepts events.
		req, _ := http.NewRequest(http.MethodPost, inlet, strings.NewReader(`{"header":{},"body":{"loyalty":{"points":10}}}`))
		req.Header.Set("Content-Type", "application/json")
		mustStatus(t, "POST inlet", v.send(req), http.StatusOK)

		for _, p := range []string{"/sourceConnections/" + c.source, "/targetConnections/" + c.target} {
			res := v.do(http.MethodGet, fsPath(p), nil)
			mustStatus(t, "GET "+p, res, http.StatusOK)
			if st := res.items()[0]["state"]; st != "enabled" {
				t.Errorf("%s state = %v", p, st)
			}
		}

		snap := v.emu.Objects()
		if got := []int{len(snap.SourceConnections), len(snap.TargetConnections), len(snap.MappingSets), len(snap.Flows)}; !cmp.Equal(got, []int{1, 1, 1, 1}) {
			t.Errorf("stored objects = %v, want one of each", got)
		}
	})
}

func TestPatch(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		c := v.createAll("patch")
		path := fsPath("/flows/" + c.flow)
		rename := []any{map[string]any{"op": "replace", "path": "/name", "value": "renamed"}}

		res := v.do(http.MethodPatch, path, rename)
		mustStatus(t, "PATCH without If-Match", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1403-400" {
			t.Errorf("type = %q, want FLOW-1403-400", res.errorType())
		}

		res = v.do(http.MethodPatch, path, rename, withHeader("If-Match", `"stale"`))
		mustStatus(t, "PATCH with a stale etag", res, http.StatusPreconditionFailed)
		if res.errorType() != "FLOW-1404-412" {
			t.Errorf("type = %q, want FLOW-1404-412", res.errorType())
		}

		res = v.do(http.MethodPatch, path, rename, withHeader("If-Match", c.flowETag))
		mustStatus(t, "PATCH", res, http.StatusOK)
		etag2, _ := res.json()["etag"].(string)
		if etag2 == c.flowETag || !quotedUUID.MatchString(etag2) {
			t.Fatalf("etag after PATCH = %q (before %q), want a new quoted UUID", etag2, c.flowETag)
		}
		if got := v.do(http.MethodGet, path, nil).items()[0]; got["name"] != "renamed" || got["etag"] != etag2 {
			t.Errorf("after PATCH name/etag = %v/%v", got["name"], got["etag"])
		}

		res = v.do(http.MethodPatch, path, rename, withHeader("If-Match", c.flowETag))
		mustStatus(t, "PATCH with the previous etag", res, http.StatusPreconditionFailed)

		// Adobe's spec prints ops uppercase; both spellings work.
		upper := []any{map[string]any{"op": "REPLACE", "path": "/description", "value": "d2"}}
		res = v.do(http.MethodPatch, path, upper, withHeader("If-Match", etag2))
		mustStatus(t, "uppercase op", res, http.StatusOK)
		etag3, _ := res.json()["etag"].(string)

		cases := []struct {
			name     string
			ops      []any
			wantType string
		}{
			{"read-only field", []any{map[string]any{"op": "replace", "path": "/id", "value": "x"}}, "FLOW-1455-400"},
			{"state through PATCH", []any{map[string]any{"op": "replace", "path": "/state", "value": "disabled"}}, "FLOW-1100-400"},
			{"remove a missing field", []any{map[string]any{"op": "remove", "path": "/nothing", "value": ""}}, "FLOW-1455-400"},
			{"unknown mapping", []any{map[string]any{"op": "replace", "path": "/transformations/0/params/mappingId", "value": "0123456789abcdef0123456789abcdef"}}, "FLOW-1419-400"},
		}
		for _, tc := range cases {
			res := v.do(http.MethodPatch, path, tc.ops, withHeader("If-Match", etag3))
			mustStatus(t, tc.name, res, http.StatusBadRequest)
			if res.errorType() != tc.wantType {
				t.Errorf("%s: type = %q, want %q", tc.name, res.errorType(), tc.wantType)
			}
		}
		if got := v.do(http.MethodGet, path, nil).items()[0]["etag"]; got != etag3 {
			t.Errorf("a refused PATCH changed the etag to %v", got)
		}

		// Connections cannot change spec.
		sc := v.do(http.MethodGet, fsPath("/sourceConnections/"+c.source), nil).items()[0]
		res = v.do(http.MethodPatch, fsPath("/sourceConnections/"+c.source),
			[]any{map[string]any{"op": "replace", "path": "/connectionSpec/id", "value": GenericStreamingConnectionSpecID}},
			withHeader("If-Match", sc["etag"].(string)))
		mustStatus(t, "PATCH connectionSpec", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1414-400" {
			t.Errorf("type = %q, want FLOW-1414-400", res.errorType())
		}
	})
}

func TestDeleteOrder(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		c := v.createAll("delete")

		for _, p := range []string{"/sourceConnections/" + c.source, "/targetConnections/" + c.target} {
			res := v.do(http.MethodDelete, fsPath(p), nil)
			mustStatus(t, "DELETE connection in use "+p, res, http.StatusBadRequest)
			if res.errorType() != "FLOW-1418-400" {
				t.Errorf("type = %q, want FLOW-1418-400", res.errorType())
			}
		}

		mustStatus(t, "DELETE flow", v.do(http.MethodDelete, fsPath("/flows/"+c.flow), nil), http.StatusNoContent)
		res := v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil)
		mustStatus(t, "GET deleted flow", res, http.StatusNotFound)
		body := res.json()
		report, _ := body["report"].(map[string]any)
		if res.errorType() != "FLOW-1439-404" || body["status"] != float64(404) || body["title"] != "Resource not found" ||
			report["type"] != "flows" || report["id"] != c.flow || body["errorMessage"] == nil || body["errorDetails"] == nil {
			t.Errorf("404 body does not have the FLOW-1439-404 shape: %s", res.body)
		}
		mustStatus(t, "DELETE flow again", v.do(http.MethodDelete, fsPath("/flows/"+c.flow), nil), http.StatusNotFound)

		for _, p := range []string{"/sourceConnections/" + c.source, "/targetConnections/" + c.target} {
			mustStatus(t, "DELETE "+p, v.do(http.MethodDelete, fsPath(p), nil), http.StatusNoContent)
			mustStatus(t, "GET deleted "+p, v.do(http.MethodGet, fsPath(p), nil), http.StatusNotFound)
		}

		// Mapping sets have no delete API.
		res = v.do(http.MethodDelete, dpPath("/mappingSets/"+c.mapping), nil)
		if res.status < 400 {
			t.Errorf("DELETE mapping set answered %d, want an error", res.status)
		}
		mustStatus(t, "mapping set survives", v.do(http.MethodGet, dpPath("/mappingSets/"+c.mapping), nil), http.StatusOK)
	})
}

func TestListFilters(t *testing.T) {
	v := newEnv(t, Options{})
	a := v.createAll("alpha")
	b := v.createAll("beta")
	g := v.createAll("gamma")
	flowIDs := func(res response) []string {
		var ids []string
		for _, it := range res.items() {
			ids = append(ids, it["id"].(string))
		}
		return ids
	}
	cases := []struct {
		name  string
		query string
		want  []string
	}{
		{"no filter", "", []string{a.flow, b.flow, g.flow}},
		{"name equals", "property=name==beta", []string{b.flow}},
		{"name not equal", "property=name!=beta", []string{a.flow, g.flow}},
		{"either of two ids", "property=id==" + a.flow + "," + g.flow, []string{a.flow, g.flow}},
		{"array element", "property=sourceConnectionIds[]==" + b.source, []string{b.flow}},
		{"dotted field", "property=flowSpec.id==" + StreamingFlowSpecID + "&property=name==gamma", []string{g.flow}},
		{"nested array path", "property=inheritedAttributes.targetConnections[].id==" + a.target, []string{a.flow}},
		{"no match", "property=state==disabled", nil},
		{"order by name descending", "orderby=-name", []string{g.flow, b.flow, a.flow}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := v.do(http.MethodGet, fsPath("/flows?"+tc.query), nil)
			mustStatus(t, "list", res, http.StatusOK)
			if _, ok := res.json()["_links"]; !ok {
				t.Errorf("list has no _links")
			}
			if d := cmp.Diff(tc.want, flowIDs(res)); d != "" {
				t.Errorf("flows (-want +got):\n%s", d)
			}
		})
	}

	t.Run("source connections by spec", func(t *testing.T) {
		res := v.do(http.MethodGet, fsPath("/sourceConnections?property=connectionSpec.id=="+CapillaryConnectionSpecID), nil)
		if n := len(res.items()); n != 3 {
			t.Errorf("got %d source connections, want 3", n)
		}
	})

	t.Run("count", func(t *testing.T) {
		res := v.do(http.MethodGet, fsPath("/flows?property=name!=alpha&count=true"), nil)
		mustStatus(t, "count", res, http.StatusOK)
		if d := cmp.Diff(map[string]any{"count": float64(2)}, res.json()); d != "" {
			t.Errorf("count (-want +got):\n%s", d)
		}
		res = v.do(http.MethodGet, fsPath("/flows?count=true&limit=1"), nil)
		mustStatus(t, "count with limit", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1401-400" {
			t.Errorf("type = %q, want FLOW-1401-400", res.errorType())
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var got []string
		next := fsPath("/flows?limit=2")
		for i := 0; next != "" && i < 5; i++ {
			res := v.do(http.MethodGet, next, nil)
			mustStatus(t, "page", res, http.StatusOK)
			got = append(got, flowIDs(res)...)
			next = ""
			if links, _ := res.json()["_links"].(map[string]any); links != nil {
				if n, _ := links["next"].(map[string]any); n != nil {
					next = fsPath(n["href"].(string))
				}
			}
		}
		if d := cmp.Diff([]string{a.flow, b.flow, g.flow}, got); d != "" {
			t.Errorf("paged flows (-want +got):\n%s", d)
		}
	})

	t.Run("invalid operator", func(t *testing.T) {
		res := v.do(http.MethodGet, fsPath("/flows?property=name~alpha"), nil)
		mustStatus(t, "invalid operator", res, http.StatusBadRequest)
	})
}

func TestFlowAction(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		c := v.createAll("action")
		path := fsPath("/flows/" + c.flow)

		res := v.do(http.MethodPost, path+"/action?op=disable", nil)
		mustStatus(t, "disable", res, http.StatusOK)
		etag, _ := res.json()["etag"].(string)
		if res.json()["id"] != c.flow || etag == c.flowETag || !quotedUUID.MatchString(etag) {
			t.Errorf("disable answered %s, want {id, new etag}", res.body)
		}
		if st := v.do(http.MethodGet, path, nil).items()[0]["state"]; st != "disabled" {
			t.Errorf("state after disable = %v", st)
		}

		res = v.do(http.MethodPost, path+"/action?op=disable", nil)
		mustStatus(t, "disable a disabled flow", res, http.StatusBadRequest)
		if res.errorType() != "FLOW-1422-400" {
			t.Errorf("type = %q, want FLOW-1422-400", res.errorType())
		}

		mustStatus(t, "enable (uppercase op)", v.do(http.MethodPost, path+"/action?op=ENABLE", nil), http.StatusOK)
		if st := v.do(http.MethodGet, path, nil).items()[0]["state"]; st != "enabled" {
			t.Errorf("state after enable = %v", st)
		}
		mustStatus(t, "action with a stale If-Match", v.do(http.MethodPost, path+"/action?op=disable", nil, withHeader("If-Match", etag)), http.StatusPreconditionFailed)
		mustStatus(t, "action on a missing flow", v.do(http.MethodPost, fsPath("/flows/"+newUUID()+"/action?op=disable"), nil), http.StatusNotFound)
	})
}

func TestFlowReferences(t *testing.T) {
	v := newEnv(t, Options{})
	c := v.createAll("refs")
	otherSchemaTarget := targetConnectionBody("other schema", testDataset)
	otherSchemaTarget["data"].(map[string]any)["schema"].(map[string]any)["id"] = "https://ns.adobe.com/acme/schemas/other"
	otherTarget, _ := v.mustCreate(fsPath("/targetConnections"), otherSchemaTarget)

	mod := func(f func(b map[string]any)) map[string]any {
		b := flowBody("f", c.source, c.target, c.mapping)
		f(b)
		return b
	}
	cases := []struct {
		name     string
		body     map[string]any
		wantType string
	}{
		{"unknown source connection", mod(func(b map[string]any) { b["sourceConnectionIds"] = []string{newUUID()} }), "FLOW-1100-400"},
		{"unknown target connection", mod(func(b map[string]any) { b["targetConnectionIds"] = []string{newUUID()} }), "FLOW-1100-400"},
		{"no source connection", mod(func(b map[string]any) { b["sourceConnectionIds"] = []string{} }), "FLOW-1100-400"},
		{"unknown flow spec", mod(func(b map[string]any) { b["flowSpec"] = map[string]any{"id": newUUID(), "version": "1.0"} }), "FLOW-1413-400"},
		{"flow spec that does not take the source", mod(func(b map[string]any) {
			b["flowSpec"] = map[string]any{"id": RestBatchFlowSpecID, "version": "1.0"}
		}), "FLOW-1413-400"},
		{"unknown mapping", mod(func(b map[string]any) {
			b["transformations"] = []any{map[string]any{"name": "Mapping", "params": map[string]any{"mappingId": newHexID(16), "mappingVersion": 0}}}
		}), "FLOW-1419-400"},
		{"mapping version ahead", mod(func(b map[string]any) {
			b["transformations"] = []any{map[string]any{"name": "Mapping", "params": map[string]any{"mappingId": c.mapping, "mappingVersion": 3}}}
		}), "FLOW-1412-400"},
		{"mapping schema differs from the dataset's", mod(func(b map[string]any) { b["targetConnectionIds"] = []string{otherTarget} }), "FLOW-1425-400"},
		{"state on create", mod(func(b map[string]any) { b["state"] = "enabled" }), "FLOW-1410-400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := v.do(http.MethodPost, fsPath("/flows"), tc.body)
			mustStatus(t, "POST flow", res, http.StatusBadRequest)
			if res.errorType() != tc.wantType {
				t.Errorf("type = %q, want %q (body %s)", res.errorType(), tc.wantType, res.body)
			}
		})
	}
	if n := len(v.emu.Objects().Flows); n != 1 {
		t.Errorf("refused flows were stored: %d flows", n)
	}
}

func TestTerminalRejections(t *testing.T) {
	v := newEnv(t, Options{RejectDatasets: []string{"bad-dataset"}, RejectMappings: []string{"xdm.nowhere"}})

	res := v.do(http.MethodPost, fsPath("/targetConnections"), targetConnectionBody("t", "bad-dataset"))
	mustStatus(t, "rejected dataset", res, http.StatusBadRequest)
	if res.errorType() != "FLOW-1100-400" {
		t.Errorf("type = %q, want FLOW-1100-400", res.errorType())
	}

	res = v.do(http.MethodPost, dpPath("/mappingSets"), mappingSetBody("loyalty.points", "xdm.nowhere"))
	mustStatus(t, "rejected mapping", res, http.StatusBadRequest)

	res = v.do(http.MethodPost, fsPath("/sourceConnections"), map[string]any{
		"name": "with base", "baseConnectionId": newUUID(),
		"connectionSpec": map[string]any{"id": CapillaryConnectionSpecID, "version": "1.0"}, "data": map[string]any{"format": "json"},
	})
	mustStatus(t, "base connection on a streaming source", res, http.StatusBadRequest)
	if res.errorType() != "FLOW-1332-400" {
		t.Errorf("type = %q, want FLOW-1332-400", res.errorType())
	}

	if n := v.emu.Objects().Len(); n != 0 {
		t.Errorf("rejected requests stored %d objects", n)
	}
}

func TestMappingSets(t *testing.T) {
	forEachValidation(t, func(t *testing.T, opts Options) {
		v := newEnv(t, opts)
		res := v.do(http.MethodPost, dpPath("/mappingSets"), mappingSetBody("loyalty.points"))
		mustStatus(t, "create", res, http.StatusOK)
		created := res.json()
		id, _ := created["id"].(string)
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("id %q is not 32 hex characters", id)
		}
		for _, f := range []string{"version", "createdDate", "modifiedDate", "createdBy", "modifiedBy"} {
			if _, ok := created[f]; !ok {
				t.Errorf("create response has no %s", f)
			}
		}
		if created["version"] != float64(0) {
			t.Errorf("version = %v, want 0", created["version"])
		}

		res = v.do(http.MethodGet, dpPath("/mappingSets/"+id), nil)
		mustStatus(t, "get", res, http.StatusOK)
		got := res.json()
		if got["id"] != id || got["xdmSchema"] != testSchema {
			t.Errorf("GET returned %s, want the bare mapping set", res.body)
		}
		if ms, _ := got["mappings"].([]any); len(ms) != 1 {
			t.Errorf("mappings = %v", got["mappings"])
		}

		res = v.do(http.MethodPut, dpPath("/mappingSets/"+id), mappingSetBody("loyalty.points", "loyalty.tier"))
		mustStatus(t, "update", res, http.StatusOK)
		if res.json()["version"] != float64(1) {
			t.Errorf("version after PUT = %v, want 1", res.json()["version"])
		}
		if ms, _ := v.do(http.MethodGet, dpPath("/mappingSets/"+id), nil).json()["mappings"].([]any); len(ms) != 2 {
			t.Errorf("latest mappings = %d, want 2", len(ms))
		}
		if ms, _ := v.do(http.MethodGet, dpPath("/mappingSets/"+id+"?version=0"), nil).json()["mappings"].([]any); len(ms) != 1 {
			t.Errorf("version 0 mappings = %d, want 1", len(ms))
		}
		mustStatus(t, "get unknown", v.do(http.MethodGet, dpPath("/mappingSets/"+newHexID(16)), nil), http.StatusNotFound)
		mustStatus(t, "update unknown", v.do(http.MethodPut, dpPath("/mappingSets/"+newHexID(16)), mappingSetBody("a")), http.StatusNotFound)
	})
}

func TestPartitioning(t *testing.T) {
	v := newEnv(t, Options{})
	c := v.createAll("prod source")
	dev := v.in(testOrg, "dev")
	otherOrg := v.in("1B2C3D4E5F@AdobeOrg", testSandbox)

	for _, other := range []*env{dev, otherOrg} {
		for _, p := range []string{fsPath("/flows/" + c.flow), fsPath("/sourceConnections/" + c.source), fsPath("/targetConnections/" + c.target), dpPath("/mappingSets/" + c.mapping)} {
			mustStatus(t, "GET from "+other.org+"/"+other.sandbox+" "+p, other.do(http.MethodGet, p, nil), http.StatusNotFound)
		}
		if n := len(other.do(http.MethodGet, fsPath("/flows"), nil).items()); n != 0 {
			t.Errorf("%s/%s lists %d flows, want 0", other.org, other.sandbox, n)
		}
		mustStatus(t, "DELETE across partitions", other.do(http.MethodDelete, fsPath("/flows/"+c.flow), nil), http.StatusNotFound)
		// A flow cannot reference another partition's connections.
		res := other.do(http.MethodPost, fsPath("/flows"), flowBody("x", c.source, c.target, ""))
		mustStatus(t, "flow on another partition's connections", res, http.StatusBadRequest)
	}

	d := dev.createAll("dev source")
	snap := v.emu.Objects()
	if n := len(snap.In(testOrg, "dev").Flows); n != 1 {
		t.Errorf("dev flows = %d, want 1", n)
	}
	if o, ok := snap.Find(KindFlow, d.flow); !ok || o.Sandbox != "dev" || o.Org != testOrg {
		t.Errorf("Find(dev flow) = %+v, %v", o, ok)
	}
	if n := len(snap.In(testOrg, testSandbox).Flows); n != 1 {
		t.Errorf("prod flows = %d, want 1", n)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	v := newEnv(t, Options{})
	res := v.do(http.MethodGet, fsPath("/connections/abc/explore"), nil)
	mustStatus(t, "unemulated endpoint", res, http.StatusNotFound)
	if v.emu.Calls().Op(OpUnknown) != 1 {
		t.Errorf("unknown calls = %d, want 1", v.emu.Calls().Op(OpUnknown))
	}
}
