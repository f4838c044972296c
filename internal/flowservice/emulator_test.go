package flowservice

import (
	"context"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/emulator/emulatortest"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// TestLifecycleAgainstEmulator drives the CONTRACT.md create, update and
// delete sequence through the real IMS cache against the Adobe emulator, which
// validates every request against Adobe's specs and enforces etags, delete
// order and token validity.
func TestLifecycleAgainstEmulator(t *testing.T) {
	emu, base := emulatortest.Start(t, emulator.Options{SpecValidator: aepspectest.Validator(t)})
	c, err := New(WithBaseURL(base), WithTokenSource(ims.NewCache().Source(base)), WithRateLimit(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := Scope{ClientID: emulatortest.ClientID, ClientSecret: emulatortest.ClientSecret, OrgID: testOrg, SandboxName: testSandbox}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	spec, err := c.Session(s).GetConnectionSpec(ctx, emulator.CapillaryConnectionSpecID)
	must("get connection spec", err)
	if !spec.Attributes.IsSource {
		t.Errorf("connection spec %s is not a source", spec.ID)
	}
	flowSpecs, err := c.Session(s).ListFlowSpecs(ctx, "sourceConnectionSpecIds[]=="+spec.ID)
	must("list flow specs", err)
	flowSpecID := ""
	for _, fs := range flowSpecs {
		if fs.ID == emulator.StreamingFlowSpecID {
			flowSpecID = fs.ID
		}
	}
	if flowSpecID == "" {
		t.Fatalf("no streaming flow spec among %d listed", len(flowSpecs))
	}
	_, err = c.Session(s).GetFlowSpec(ctx, flowSpecID)
	must("get flow spec", err)

	src, err := c.Session(s).CreateSourceConnection(ctx, SourceConnectionInput{
		Name: "capillary-orders", ProviderID: StreamingProviderID,
		ConnectionSpec: SpecRef{ID: spec.ID, Version: DefaultSpecVersion}, Data: SourceData{Format: "json"},
	})
	must("create source connection", err)
	tgt, err := c.Session(s).CreateTargetConnection(ctx, TargetConnectionInput{
		Name:           "capillary-orders",
		ConnectionSpec: SpecRef{ID: DataLakeConnectionSpecID, Version: DefaultSpecVersion},
		Data:           TargetData{Format: "json", Schema: &SchemaRef{ID: testSchema, Version: XDMFullContentType}},
		Params:         TargetParams{DataSetID: "6889f4f89b982b2b90bc1207"},
	})
	must("create target connection", err)
	ms := MappingSet{
		OutputSchema: &OutputSchema{SchemaRef: XDMSchemaRef{ID: testSchema, ContentType: XDMFullContentType}},
		Mappings:     []Mapping{{SourceType: SourceTypeAttribute, Source: "loyalty.points", Destination: "loyalty.points"}},
	}
	msRef, err := c.Session(s).CreateMappingSet(ctx, ms)
	must("create mapping set", err)
	flowRef, err := c.Session(s).CreateFlow(ctx, FlowInput{
		Name: "capillary-orders", FlowSpec: SpecRef{ID: flowSpecID, Version: DefaultSpecVersion},
		SourceConnectionIDs: []string{src.ID}, TargetConnectionIDs: []string{tgt.ID},
		Transformations: []Transformation{{Name: TransformationMapping, Params: TransformationParams{MappingID: msRef.ID, MappingVersion: msRef.Version}}},
	})
	must("create dataflow", err)
	flow, err := c.Session(s).GetFlow(ctx, flowRef.ID)
	must("get dataflow", err)
	if flow.Options.InletURL == "" {
		t.Errorf("dataflow %s has no inlet URL", flow.ID)
	}

	found, err := c.Session(s).ListFlows(ctx, "name==capillary-orders")
	must("list dataflows", err)
	if len(found) != 1 || found[0].ID != flowRef.ID {
		t.Errorf("list by name found %d dataflows", len(found))
	}
	sources, err := c.Session(s).ListSourceConnections(ctx, "name==capillary-orders")
	must("list source connections", err)
	targets, err := c.Session(s).ListTargetConnections(ctx, "name==capillary-orders")
	must("list target connections", err)
	if len(sources) != 1 || len(targets) != 1 {
		t.Errorf("list by name found %d source and %d target connections", len(sources), len(targets))
	}

	// Mapping update, then point the flow at the new version under its etag.
	ms.Mappings = append(ms.Mappings, Mapping{SourceType: SourceTypeAttribute, Source: "loyalty.tier", Destination: "loyalty.tier"})
	updated, err := c.Session(s).UpdateMappingSet(ctx, msRef.ID, ms)
	must("update mapping set", err)
	got, err := c.Session(s).GetMappingSet(ctx, msRef.ID)
	must("get mapping set", err)
	if len(got.Mappings) != 2 {
		t.Errorf("mapping set has %d mappings after update", len(got.Mappings))
	}
	_, err = c.Session(s).PatchFlow(ctx, flow.ID, flow.ETag, []PatchOp{{Op: PatchReplace, Path: "/transformations/0",
		Value: Transformation{Name: TransformationMapping, Params: TransformationParams{MappingID: msRef.ID, MappingVersion: updated.Version}}}})
	must("patch dataflow", err)
	if _, err := c.Session(s).PatchFlow(ctx, flow.ID, flow.ETag, []PatchOp{{Op: PatchReplace, Path: "/description", Value: "stale"}}); !IsPreconditionFailed(err) {
		t.Errorf("PATCH with a stale etag: err = %v, want precondition failed", err)
	}
	_, err = c.Session(s).GetSourceConnection(ctx, src.ID)
	must("get source connection", err)
	_, err = c.Session(s).GetTargetConnection(ctx, tgt.ID)
	must("get target connection", err)

	// A token IMS no longer honours is replaced transparently.
	emu.ExpireTokens()
	_, err = c.Session(s).FlowAction(ctx, flow.ID, ActionDisable)
	must("disable dataflow after token expiry", err)
	flow, err = c.Session(s).GetFlow(ctx, flow.ID)
	must("get dataflow", err)
	if flow.State != StateDisabled {
		t.Errorf("state = %q after disable", flow.State)
	}
	_, err = c.Session(s).FlowAction(ctx, flow.ID, ActionEnable)
	must("enable dataflow", err)

	must("delete dataflow", c.Session(s).DeleteFlow(ctx, flow.ID))
	if _, err := c.Session(s).GetFlow(ctx, flow.ID); !IsNotFound(err) {
		t.Errorf("get deleted dataflow: err = %v, want not found", err)
	}
	must("delete source connection", c.Session(s).DeleteSourceConnection(ctx, src.ID))
	must("delete target connection", c.Session(s).DeleteTargetConnection(ctx, tgt.ID))
	if err := c.Session(s).DeleteFlow(ctx, flow.ID); !IsNotFound(err) {
		t.Errorf("delete deleted dataflow: err = %v, want not found", err)
	}
}

// TestRidesOutEmulatorFaults sends calls through injected 503s, 429s and
// mid-flight token expiries: each is retried (after the server's Retry-After)
// or renewed, and every call succeeds without committing anything twice.
func TestRidesOutEmulatorFaults(t *testing.T) {
	emu, base := emulatortest.Start(t, emulator.Options{
		SpecValidator: aepspectest.Validator(t),
		Faults: emulator.Faults{Seed: 7, Rate503: 0.3, Rate429: 0.2, RateTokenExpiry: 0.05,
			Operations: []string{"connectionSpecs.*", "flows.*", "sourceConnections.*"}},
	})
	sleeps := &sleepRecorder{}
	c, err := New(WithBaseURL(base), WithTokenSource(ims.NewCache().Source(base)), WithRateLimit(0, 0),
		WithSleep(sleeps.sleep), WithRetryPolicy(RetryPolicy{MaxAttempts: 12}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := Scope{ClientID: emulatortest.ClientID, ClientSecret: emulatortest.ClientSecret, OrgID: testOrg, SandboxName: testSandbox}
	for i := range 20 {
		if _, err := c.Session(s).GetConnectionSpec(ctx, emulator.CapillaryConnectionSpecID); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for i := range 5 {
		if _, err := c.Session(s).CreateSourceConnection(ctx, SourceConnectionInput{
			Name: "src", ConnectionSpec: SpecRef{ID: emulator.CapillaryConnectionSpecID, Version: DefaultSpecVersion}, Data: SourceData{Format: "json"},
		}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if got := len(emu.Objects().SourceConnections); got != 5 {
		t.Errorf("source connections = %d, want 5 (no duplicates from retries)", got)
	}
	if len(sleeps.got()) == 0 {
		t.Error("no fault was injected; the test proves nothing")
	}
	for _, d := range sleeps.got() {
		if d != time.Second {
			t.Errorf("waited %v, want the emulator's Retry-After of 1s", d)
		}
	}
}
