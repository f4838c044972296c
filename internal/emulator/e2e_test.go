package emulator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/emulator/emulatortest"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

const (
	e2eOrg    = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	e2eSchema = "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168"
)

// TestClientEndToEnd drives the emulator through the operator's own IMS and
// Flow Service clients, in the operator's create and delete order, with
// Adobe's specs validating every request and transient faults on every
// operation the client may retry.
func TestClientEndToEnd(t *testing.T) {
	emu, base := emulatortest.Start(t, emulator.Options{SpecValidator: aepspectest.Validator(t)})
	noSleep := func(context.Context, time.Duration) error { return nil }
	cache := ims.NewCache()
	client, err := flowservice.New(
		flowservice.WithBaseURL(base),
		flowservice.WithTokenSource(cache.Source(base)),
		flowservice.WithSleep(noSleep),
		flowservice.WithRateLimit(0, 0),
		flowservice.WithRetryPolicy(flowservice.RetryPolicy{MaxAttempts: 12}),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := flowservice.Scope{ClientID: emulatortest.ClientID, ClientSecret: emulatortest.ClientSecret, OrgID: e2eOrg, SandboxName: "prod"}
	// 503 and 429 say nothing was done, so the client retries them on every
	// call, creates included. IMS is left alone: its cache has its own rules.
	if err := emu.SetFaults(emulator.Faults{Seed: 11, Rate503: 0.2, Rate429: 0.1, RetryAfter: time.Second,
		Operations: []string{"connectionSpecs.*", "flowSpecs.*", "sourceConnections.*", "targetConnections.*", "flows.*", "mappingSets.*"}}); err != nil {
		t.Fatal(err)
	}

	spec, err := client.Session(s).GetConnectionSpec(ctx, emulator.CapillaryConnectionSpecID)
	if err != nil {
		t.Fatalf("GetConnectionSpec: %v", err)
	}
	if !spec.Attributes.IsSource || len(spec.AuthSpec) != 0 || !strings.HasPrefix(string(spec.SourceSpec.Attributes.UIAttributes.Label), "Capillary") {
		t.Errorf("connection spec = %+v", spec)
	}
	flowSpecs, err := client.Session(s).ListFlowSpecs(ctx, "sourceConnectionSpecIds[]=="+emulator.CapillaryConnectionSpecID)
	if err != nil {
		t.Fatalf("ListFlowSpecs: %v", err)
	}
	if len(flowSpecs) != 1 || flowSpecs[0].ID != emulator.StreamingFlowSpecID {
		t.Fatalf("flow specs = %+v, want only GenericStreamingAEP", flowSpecs)
	}

	src, err := client.Session(s).CreateSourceConnection(ctx, flowservice.SourceConnectionInput{
		Name: "capillary-e2e source", ProviderID: flowservice.StreamingProviderID,
		ConnectionSpec: flowservice.SpecRef{ID: emulator.CapillaryConnectionSpecID, Version: "1.0"},
		Data:           flowservice.SourceData{Format: "json"},
	})
	if err != nil {
		t.Fatalf("CreateSourceConnection: %v", err)
	}
	tgt, err := client.Session(s).CreateTargetConnection(ctx, flowservice.TargetConnectionInput{
		Name:           "capillary-e2e target",
		ConnectionSpec: flowservice.SpecRef{ID: flowservice.DataLakeConnectionSpecID, Version: "1.0"},
		Data:           flowservice.TargetData{Format: "json", Schema: &flowservice.SchemaRef{ID: e2eSchema, Version: flowservice.XDMFullContentType}},
		Params:         flowservice.TargetParams{DataSetID: "6889f4f89b982b2b90bc1207"},
	})
	if err != nil {
		t.Fatalf("CreateTargetConnection: %v", err)
	}
	ms, err := client.Session(s).CreateMappingSet(ctx, flowservice.MappingSet{
		OutputSchema: &flowservice.OutputSchema{SchemaRef: flowservice.XDMSchemaRef{ID: e2eSchema, ContentType: flowservice.XDMFullContentType}},
		Mappings:     []flowservice.Mapping{{SourceType: flowservice.SourceTypeAttribute, Source: "loyalty.points", Destination: "loyalty.points"}},
	})
	if err != nil {
		t.Fatalf("CreateMappingSet: %v", err)
	}
	flowRef, err := client.Session(s).CreateFlow(ctx, flowservice.FlowInput{
		Name:                "capillary-e2e",
		FlowSpec:            flowservice.SpecRef{ID: emulator.StreamingFlowSpecID, Version: "1.0"},
		SourceConnectionIDs: []string{src.ID},
		TargetConnectionIDs: []string{tgt.ID},
		Transformations: []flowservice.Transformation{{Name: flowservice.TransformationMapping,
			Params: flowservice.TransformationParams{MappingID: ms.ID, MappingVersion: ms.Version}}},
	})
	if err != nil {
		t.Fatalf("CreateFlow: %v", err)
	}
	flow, err := client.Session(s).GetFlow(ctx, flowRef.ID)
	if err != nil {
		t.Fatalf("GetFlow: %v", err)
	}
	if flow.State != flowservice.StateEnabled || flow.ETag != flowRef.ETag || !strings.HasPrefix(flow.Options.InletURL, base+"/collection/") {
		t.Errorf("flow = %+v", flow)
	}

	// An expired token is renewed by the client transparently.
	emu.ExpireTokens()
	renamed, err := client.Session(s).PatchFlow(ctx, flowRef.ID, flow.ETag, []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/name", Value: "capillary-e2e v2"}})
	if err != nil {
		t.Fatalf("PatchFlow after token expiry: %v", err)
	}
	if _, err := client.Session(s).PatchFlow(ctx, flowRef.ID, flow.ETag, []flowservice.PatchOp{{Op: flowservice.PatchReplace, Path: "/name", Value: "x"}}); !flowservice.IsPreconditionFailed(err) {
		t.Errorf("PatchFlow with a stale etag: %v, want IsPreconditionFailed", err)
	}
	if _, err := client.Session(s).FlowAction(ctx, flowRef.ID, flowservice.ActionDisable); err != nil {
		t.Fatalf("FlowAction(disable): %v", err)
	}
	if f, err := client.Session(s).GetFlow(ctx, flowRef.ID); err != nil || f.State != flowservice.StateDisabled || f.ETag == renamed.ETag {
		t.Errorf("after disable: %+v, %v", f, err)
	}

	if err := client.Session(s).DeleteSourceConnection(ctx, src.ID); !flowservice.IsInvalid(err) {
		t.Errorf("DeleteSourceConnection while the flow uses it: %v, want IsInvalid", err)
	}
	if err := client.Session(s).DeleteFlow(ctx, flowRef.ID); err != nil {
		t.Fatalf("DeleteFlow: %v", err)
	}
	if _, err := client.Session(s).GetFlow(ctx, flowRef.ID); !flowservice.IsNotFound(err) {
		t.Errorf("GetFlow after delete: %v, want IsNotFound", err)
	}
	if err := client.Session(s).DeleteSourceConnection(ctx, src.ID); err != nil {
		t.Errorf("DeleteSourceConnection: %v", err)
	}
	if err := client.Session(s).DeleteTargetConnection(ctx, tgt.ID); err != nil {
		t.Errorf("DeleteTargetConnection: %v", err)
	}

	snap := emu.Objects()
	if len(snap.Flows)+len(snap.SourceConnections)+len(snap.TargetConnections) != 0 || len(snap.MappingSets) != 1 {
		t.Errorf("left behind: %d flows, %d source and %d target connections, %d mapping sets (want only the mapping set)",
			len(snap.Flows), len(snap.SourceConnections), len(snap.TargetConnections), len(snap.MappingSets))
	}
	calls := emu.Calls()
	if calls.OpStatus(emulator.OpFlowsCreate, http.StatusCreated) != 1 {
		t.Errorf("flows created %d times, want once", calls.OpStatus(emulator.OpFlowsCreate, http.StatusCreated))
	}
	faulted := 0
	for k, n := range calls {
		if k.Status == http.StatusServiceUnavailable || k.Status == http.StatusTooManyRequests {
			faulted += n
		}
		if k.Status == http.StatusBadRequest && k.Operation != emulator.OpSourceConnectionsDelete {
			t.Errorf("%d × %s answered 400: the client sent something the emulator (or Adobe's spec) refuses", n, k.Operation)
		}
	}
	if faulted == 0 {
		t.Errorf("no call met an injected fault; the test does not exercise retries")
	}
}
