package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// FuzzRequestBuilding drives spec → request building with arbitrary specs
// and Adobe states: the deterministic Adobe names, the Data Prep mapping set,
// the dataflow's transformations and the JSON Patch that corrects a drifted
// dataflow. `go test` runs the seeds; `go test -fuzz FuzzRequestBuilding
// ./controllers` explores. When Adobe's OpenAPI specs are beside the
// repository, every request body a CRD-valid spec leads to is validated
// against them.
func FuzzRequestBuilding(f *testing.F) {
	const email = "identityMap.email.id\x00identityMap.email[0].id"
	// ns, name, uid halves, schemaId, schemaVersion, mappings (pairs split by
	// \x01, source and destination by \x00), identity bits, status mapping
	// set id and version, the flow's name, mapping id and version, adopted,
	// whether the flow has a mapping.
	f.Add("loyalty", "events", uint64(1), uint64(2), "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168",
		"application/vnd.adobe.xed-full+json;version=1", "loyalty.points\x00loyalty.points\x01"+email, uint16(2),
		"c5f22f04e09f44498e528901546a83b1", int64(1), "renamed in the UI", "c5f22f04e09f44498e528901546a83b1", int64(0), false, true)
	f.Add("prod", "no-mappings", uint64(7), uint64(9), "https://ns.adobe.com/acme/schemas/x", "application/vnd.adobe.xed+json", "", uint16(0),
		"", int64(0), "", "old-mapping-set", int64(3), false, true)
	f.Add("team-a", "adopted", uint64(0), uint64(0), "https://ns.adobe.com/acme/schemas/x", "application/vnd.adobe.xed-full+json;version=1.2",
		"a\x00b", uint16(1), "ms-1", int64(4), "made by hand", "", int64(0), true, false)
	f.Add(strings.Repeat("n", 63), strings.Repeat("a.b-", 60), ^uint64(0), ^uint64(0), "https://ns.adobe.com/"+strings.Repeat("s", 400),
		"application/vnd.adobe.xed-full+json", strings.Repeat("x\x00y\x01", 20), ^uint16(0), "ms", int64(1<<40), "", "ms", int64(1<<40), false, true)
	f.Add("ünïcode", "events", uint64(3), uint64(4), "not a schema", "", "\xff\x00\xfe\x01\x00", uint16(1), "ms", int64(-1), "n", "ms", int64(-1), false, false)

	validator := specValidator(f)
	f.Fuzz(func(t *testing.T, ns, name string, uidHi, uidLo uint64, schemaID, schemaVersion, mappings string, identity uint16,
		mappingSetID string, mappingVersion int64, flowName, flowMappingID string, flowMappingVersion int64, adoptedFlow, flowHasMapping bool) {
		// Only what the API server can hold: DNS names, valid UTF-8.
		if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
			return
		}
		for _, s := range []string{schemaID, schemaVersion, mappings, mappingSetID, flowName, flowMappingID} {
			if !utf8.ValidString(s) {
				return
			}
		}
		cs := &v1alpha1.CapillarySource{}
		cs.Namespace, cs.Name = ns, name
		cs.UID = types.UID(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uidHi>>32, uidHi>>16&0xffff, uidHi&0xffff, uidLo>>48, uidLo&0xffffffffffff))
		cs.Spec.OrgID = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
		cs.Spec.Target = v1alpha1.Target{DatasetID: "6889f4f89b982b2b90bc1207", SchemaID: schemaID, SchemaVersion: schemaVersion}
		if mappings != "" {
			for i, pair := range strings.Split(mappings, "\x01") {
				src, dst, _ := strings.Cut(pair, "\x00")
				cs.Spec.Mappings = append(cs.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: src, DestinationXdmPath: dst, Identity: identity&(1<<(i%16)) != 0})
			}
		}
		cs.Status.MappingSetID, cs.Status.MappingSetVersion = mappingSetID, mappingVersion

		checkNames(t, cs)
		checkMappingSet(t, cs, validator)
		checkTransformations(t, cs)

		flow := &flowservice.Flow{ID: "2edc08ac-4df5-4fe6-936f-81a19ce92f5c", Name: flowName, ETag: `"2c000802-0000-0200-0000-613976440000"`}
		if flowHasMapping {
			flow.Transformations = []flowservice.Transformation{{Name: flowservice.TransformationMapping,
				Params: flowservice.TransformationParams{MappingID: flowMappingID, MappingVersion: int(flowMappingVersion)}}}
		}
		if adoptedFlow {
			cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: flow.ID}
			cs.Status.DataflowID = flow.ID
		}
		checkDataflowPatch(t, cs, flow, validator)
	})
}

// checkNames: each kind's name is deterministic, distinct, bounded, ends
// with the UID and the kind (so it cannot be another resource's), and
// survives JSON as sent to Adobe and as used in the name== filter.
func checkNames(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	seen := map[string]bool{}
	maxLen := len("capillary-") + 2*maxNamePart + len(cs.UID) + len(kindDataflow) + 3
	for _, kind := range []string{kindSource, kindTarget, kindDataflow} {
		n := adobeName(cs, kind)
		if n != adobeName(cs, kind) {
			t.Fatalf("adobeName is not deterministic for %s", kind)
		}
		if !strings.HasPrefix(n, "capillary-") || !strings.HasSuffix(n, "-"+string(cs.UID)+"-"+kind) {
			t.Errorf("%s name %q does not end with the UID and the kind", kind, n)
		}
		if len(n) > maxLen {
			t.Errorf("%s name is %d bytes, over %d", kind, len(n), maxLen)
		}
		if seen[n] {
			t.Errorf("two kinds share the name %q", n)
		}
		seen[n] = true
		if back := jsonRoundTrip(t, n); back != n {
			t.Errorf("name %q comes back from JSON as %q", n, back)
		}
		if strings.ContainsAny(n, ",&=") {
			t.Errorf("name %q holds a filter metacharacter", n)
		}
		other := cs.DeepCopy()
		other.UID = types.UID(strings.Repeat("f", 8) + string(cs.UID)[8:])
		if other.UID != cs.UID && adobeName(other, kind) == n {
			t.Errorf("two resources with different UIDs share the name %q", n)
		}
	}
}

// checkMappingSet: the mapping set holds every mapping of the spec, in
// order, and the target schema; it survives JSON; sameMappings ignores order
// and notices a missing mapping; a CRD-valid spec yields a body Adobe's
// Data Prep spec accepts.
func checkMappingSet(t *testing.T, cs *v1alpha1.CapillarySource, v *aepspec.Validator) {
	t.Helper()
	ms := mappingSetFor(cs)
	if len(ms.Mappings) != len(cs.Spec.Mappings) {
		t.Fatalf("%d mappings for %d in the spec", len(ms.Mappings), len(cs.Spec.Mappings))
	}
	for i, m := range cs.Spec.Mappings {
		got := ms.Mappings[i]
		if got.Source != m.SourceAttribute || got.Destination != m.DestinationXdmPath || got.Identity != m.Identity || got.SourceType != flowservice.SourceTypeAttribute {
			t.Errorf("mapping %d = %+v, spec %+v", i, got, m)
		}
	}
	if ms.OutputSchema == nil || ms.OutputSchema.SchemaRef.ID != cs.Spec.Target.SchemaID || ms.OutputSchema.SchemaRef.ContentType != cs.Spec.Target.SchemaVersion {
		t.Errorf("output schema %+v, spec target %+v", ms.OutputSchema, cs.Spec.Target)
	}
	body, err := json.Marshal(ms)
	if err != nil {
		t.Fatalf("encode mapping set: %v", err)
	}
	var back flowservice.MappingSet
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatalf("decode mapping set: %v", err)
	}
	if diff := cmp.Diff(ms, back); diff != "" {
		t.Errorf("mapping set changes through JSON (-sent +read):\n%s", diff)
	}
	reversed := slices.Clone(ms.Mappings)
	slices.Reverse(reversed)
	if !sameMappings(ms.Mappings, reversed) {
		t.Error("sameMappings depends on order")
	}
	if len(ms.Mappings) > 0 && !slices.ContainsFunc(ms.Mappings[1:], func(m flowservice.Mapping) bool { return m == ms.Mappings[0] }) &&
		sameMappings(ms.Mappings, ms.Mappings[1:]) {
		t.Error("sameMappings misses a dropped mapping")
	}
	if v != nil && crdValid(cs) && len(cs.Spec.Mappings) > 0 {
		validate(t, v, http.MethodPost, flowservice.DataPrepPath+"/mappingSets", "", body)
	}
}

func checkTransformations(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	tr := transformations(cs)
	switch {
	case cs.Status.MappingSetID == "" && tr != nil:
		t.Errorf("transformations %+v without a mapping set", tr)
	case cs.Status.MappingSetID != "" && (len(tr) != 1 || tr[0].Name != flowservice.TransformationMapping ||
		tr[0].Params.MappingID != cs.Status.MappingSetID || tr[0].Params.MappingVersion != int(cs.Status.MappingSetVersion)):
		t.Errorf("transformations %+v, status mapping set %s version %d", tr, cs.Status.MappingSetID, cs.Status.MappingSetVersion)
	}
}

// checkDataflowPatch: the patch touches only the name and the mapping,
// never renames an adopted dataflow, applies under RFC 6902's rules (replace
// and remove need the member to exist) and, applied, leaves nothing to
// patch: one PATCH converges.
func checkDataflowPatch(t *testing.T, cs *v1alpha1.CapillarySource, flow *flowservice.Flow, v *aepspec.Validator) {
	t.Helper()
	ops := dataflowPatch(cs, flow)
	paths := map[string]bool{}
	for _, op := range ops {
		if !slices.Contains([]string{"/name", "/transformations", "/transformations/0", "/options/" + optErrorDiagnostics, "/options/" + optPartialIngestion}, op.Path) {
			t.Errorf("patch touches %s", op.Path)
		}
		if paths[op.Path] {
			t.Errorf("two operations on %s", op.Path)
		}
		paths[op.Path] = true
		if op.Path == "/name" && adopted(cs) {
			t.Errorf("an adopted dataflow is renamed to %v", op.Value)
		}
	}
	if len(ops) == 0 {
		if flow.Name != desiredFlowName(cs, flow) || !slices.Equal(flow.Transformations, transformations(cs)) {
			t.Errorf("no patch, yet the flow %+v differs from the spec", flow)
		}
		return
	}
	body, err := json.Marshal(ops)
	if err != nil {
		t.Fatalf("encode patch: %v", err)
	}
	doc := map[string]json.RawMessage{}
	flowJSON, err := json.Marshal(flow)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(flowJSON, &doc); err != nil {
		t.Fatal(err)
	}
	// Adobe's dataflows always have a name (it is required on create).
	doc["name"], _ = json.Marshal(flow.Name)
	flowJSON, _ = json.Marshal(doc)
	patch, err := jsonpatch.DecodePatch(body)
	if err != nil {
		t.Fatalf("patch %s does not decode: %v", body, err)
	}
	// RFC 6902 as written: replace and remove need the member to exist.
	patched, err := patch.Apply(flowJSON)
	if err != nil {
		t.Fatalf("patch %s does not apply to the flow %s: %v", body, flowJSON, err)
	}
	var after flowservice.Flow
	if err := json.Unmarshal(patched, &after); err != nil {
		t.Fatalf("patched flow does not decode: %v", err)
	}
	if again := dataflowPatch(cs, &after); len(again) != 0 {
		t.Errorf("after applying %s the flow still needs %+v", body, again)
	}
	if v != nil && crdValid(cs) {
		validate(t, v, http.MethodPatch, flowservice.FlowServicePath+"/flows/"+flow.ID, flow.ETag, body)
	}
}

func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// The CRD's rules on what reaches request bodies (see the markers in
// api/v1alpha1): only specs the API server admits are checked against
// Adobe's specs.
var (
	schemaIDPattern      = regexp.MustCompile(`^https://ns\.adobe\.com/\S+$`)
	schemaVersionPattern = regexp.MustCompile(`^application/vnd\.adobe\.xed(-full)?\+json(;version=[0-9.]+)?$`)
)

func crdValid(cs *v1alpha1.CapillarySource) bool {
	tg := cs.Spec.Target
	if len(tg.SchemaID) > 512 || !schemaIDPattern.MatchString(tg.SchemaID) ||
		len(tg.SchemaVersion) > 128 || (tg.SchemaVersion != "" && !schemaVersionPattern.MatchString(tg.SchemaVersion)) {
		return false
	}
	dests := map[string]bool{}
	for _, m := range cs.Spec.Mappings {
		if m.SourceAttribute == "" || m.DestinationXdmPath == "" || len(m.SourceAttribute) > 512 || len(m.DestinationXdmPath) > 512 || dests[m.DestinationXdmPath] {
			return false
		}
		dests[m.DestinationXdmPath] = true
	}
	return len(cs.Spec.Mappings) <= 500 && cs.Status.MappingSetVersion >= 0
}

func validate(t *testing.T, v *aepspec.Validator, method, path, ifMatch string, body []byte) {
	t.Helper()
	r, err := http.NewRequest(method, "https://platform.adobe.io"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer token")
	r.Header.Set("x-api-key", "client")
	r.Header.Set("x-gw-ims-org-id", "0A7D42FC5DB9D3360A495FD3@AdobeOrg")
	r.Header.Set("x-sandbox-name", "prod")
	r.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		r.Header.Set("If-Match", ifMatch)
	}
	if err := v.ValidateRequest(r); err != nil {
		t.Errorf("Adobe's spec refuses %s %s with %s: %v", method, path, body, err)
	}
}

// specValidator loads Adobe's specs when they are there (always in CI).
func specValidator(f *testing.F) *aepspec.Validator {
	dir, err := aepspec.Dir()
	if err == nil {
		var v *aepspec.Validator
		if v, err = aepspec.Load(dir); err == nil {
			return v
		}
	}
	if os.Getenv("CI") == "true" || !errors.Is(err, aepspec.ErrNotFound) {
		f.Fatalf("load Adobe's OpenAPI specs: %v", err)
	}
	f.Logf("Adobe's OpenAPI specs not found; request bodies are not checked against them: %v", err)
	return nil
}
