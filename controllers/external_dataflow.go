package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

type dataflowAPI interface {
	GetFlow(ctx context.Context, id string) (*flowservice.Flow, error)
	FindFlow(ctx context.Context, name string) (*flowservice.Flow, error)
	CreateFlow(ctx context.Context, in flowservice.FlowInput) (flowservice.Ref, error)
	PatchFlow(ctx context.Context, id, etag string, ops []flowservice.PatchOp) (flowservice.Ref, error)
	FlowAction(ctx context.Context, id string, action flowservice.Action) (flowservice.Ref, error)
	DeleteFlow(ctx context.Context, id string) error
	// ListRuns is the flow's runs, for ingestion health.
	ListRuns(ctx context.Context, flowID string) ([]flowservice.Run, error)
}

// maxPatchAttempts bounds the re-read-and-retry loop on etag conflicts.
const maxPatchAttempts = 3

// dataflow binds the connections and the mapping set, carries its name and
// is enabled or disabled per spec.suspend; it holds the inlet URL. It is
// read on every resync (GET /flows/{id}, the one read a settled source costs).
type dataflow struct {
	s *scope
	// flow is what Get, Find or Create read.
	flow *flowservice.Flow
}

func newDataflow(s *scope) external { return &dataflow{s: s} }

func (*dataflow) kind() kind {
	return kind{name: kindDataflow, title: "dataflow", event: "Dataflow",
		condition: v1alpha1.ConditionDataflowReady, readOnResync: true}
}

func (c *dataflow) id() *string { return &c.s.cs.Status.DataflowID }

func (c *dataflow) Get(ctx context.Context, id string) (observation, error) {
	flow, err := c.s.adobe.GetFlow(ctx, id)
	if flowservice.IsNotFound(err) {
		c.s.cs.Status.InletURL = ""
		c.s.cs.Status.DataflowState = ""
		c.s.cs.Status.InletReadyAt = nil
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	return c.observed(flow), nil
}

func (c *dataflow) Find(ctx context.Context, name string) (observation, error) {
	flow, err := c.s.adobe.FindFlow(ctx, name)
	if err != nil || flow == nil {
		return observation{}, err
	}
	return c.observed(flow), nil
}

// observed compares a flow with the spec. One bound to connections this
// resource no longer owns (they were recreated) is replaced: Adobe advises
// a new dataflow over rewiring one.
func (c *dataflow) observed(flow *flowservice.Flow) observation {
	c.flow = flow
	c.s.flow = flow
	return observation{
		exists:   true,
		id:       flow.ID,
		replace:  !boundTo(flow, c.s.cs),
		upToDate: len(dataflowPatch(c.s.cs, flow)) == 0 && flow.State == wantedState(c.s.cs),
	}
}

// options checks spec.dataflow against the flow spec before anything else:
// an option the flow spec does not offer is a clear condition, not a 400.
func (c *dataflow) options() (map[string]any, error) {
	return dataflowOptions(c.s.cs, c.s.specs.options, c.s.specs.flow.ID)
}

func (c *dataflow) Create(ctx context.Context) (observation, error) {
	cs, spec := c.s.cs, c.s.specs.flow
	options, err := c.options()
	if err != nil {
		return observation{}, err
	}
	ref, err := c.s.adobe.CreateFlow(ctx, flowservice.FlowInput{
		Name:                adobeName(cs, kindDataflow),
		Description:         description(cs),
		FlowSpec:            flowservice.SpecRef{ID: spec.ID, Version: specVersion(spec.Version)},
		SourceConnectionIDs: []string{cs.Status.SourceConnectionID},
		TargetConnectionIDs: []string{cs.Status.TargetConnectionID},
		Transformations:     transformations(cs),
		Options:             options,
	})
	if err != nil {
		return observation{}, err
	}
	cs.Status.FlowSpecID = spec.ID
	// Read it back: the inlet URL and the state only come with the flow.
	flow, err := c.s.adobe.GetFlow(ctx, ref.ID)
	if err != nil {
		return observation{id: ref.ID}, classify(v1alpha1.ConditionDataflowReady, "read the new dataflow", err)
	}
	return c.observed(flow), nil
}

// Update patches the name and the mapping of a dataflow that drifted, with
// If-Match (on an etag conflict it reads the flow again and retries), then
// enables or disables it per spec.suspend.
func (c *dataflow) Update(ctx context.Context) error {
	cs, flow := c.s.cs, c.flow
	if _, err := c.options(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		ops := dataflowPatch(cs, flow)
		if len(ops) == 0 {
			break
		}
		_, err := c.s.adobe.PatchFlow(ctx, flow.ID, flow.ETag, ops)
		if err == nil {
			c.s.changed("Updated", "Update", "Updated dataflow "+flow.ID+" to match the spec")
			if !slices.Equal(flow.Transformations, transformations(cs)) {
				// The inlet keeps accepting; the new mapping applies to
				// events after the warm-up (http.md).
				at := metav1.NewTime(c.s.now.Add(c.s.inletWarmup).Truncate(time.Second))
				cs.Status.MappingAppliesAt = &at
			}
			driftCorrections.WithLabelValues(kindDataflow).Inc()
			flow.Name = desiredFlowName(cs, flow)
			flow.Transformations = transformations(cs)
			flow.Options = desiredFlowOptions(cs, flow.Options)
			break
		}
		if !flowservice.IsPreconditionFailed(err) || attempt == maxPatchAttempts {
			return err
		}
		fresh, gerr := c.s.adobe.GetFlow(ctx, flow.ID)
		if gerr != nil {
			return classify(v1alpha1.ConditionDataflowReady, "read the dataflow", gerr)
		}
		*flow = *fresh
	}
	return c.ensureState(ctx)
}

// ensureState enables or disables the dataflow per spec.suspend.
func (c *dataflow) ensureState(ctx context.Context) error {
	cs, flow := c.s.cs, c.flow
	want := wantedState(cs)
	if flow.State == want {
		return nil
	}
	action := flowservice.ActionEnable
	if cs.Spec.Suspend {
		action = flowservice.ActionDisable
	}
	if _, err := c.s.adobe.FlowAction(ctx, flow.ID, action); err != nil {
		// A retried action whose first answer was lost finds the flow already
		// in the wanted state (FLOW-1422-400): read it to tell that apart.
		// A read that fails says nothing of the action: retry the pass.
		fresh, gerr := c.s.adobe.GetFlow(ctx, flow.ID)
		if gerr != nil {
			return classify(v1alpha1.ConditionDataflowReady, "read the dataflow after "+string(action), gerr)
		}
		if fresh.State != want {
			return classify(v1alpha1.ConditionDataflowReady, string(action)+" the dataflow", err)
		}
	}
	reason := "Resumed"
	if cs.Spec.Suspend {
		reason = "Suspended"
	}
	// A state changed in Adobe by someone else is drift; one we just chose is not.
	if c.s.before.Status.DataflowState == want {
		driftCorrections.WithLabelValues(kindDataflow).Inc()
	}
	c.s.changed(reason, string(action), fmt.Sprintf("Dataflow %s is now %s", flow.ID, want))
	flow.State = want
	return nil
}

func (c *dataflow) Delete(ctx context.Context, id string) error {
	return c.s.adobe.DeleteFlow(ctx, id)
}

// Ready reports the state and the inlet URL, which Capillary sends to.
func (c *dataflow) Ready() (string, error) {
	st, flow := &c.s.cs.Status, c.flow
	if st.FlowSpecID == "" {
		st.FlowSpecID = flow.FlowSpec.ID
	}
	st.DataflowState = flow.State
	st.InletURL = flow.Options.InletURL
	if flow.Options.InletURL == "" {
		return "", &stepError{condition: v1alpha1.ConditionDataflowReady, reason: v1alpha1.ReasonProgressing,
			message: "Dataflow " + flow.ID + " has no inlet URL yet; checking again shortly"}
	}
	c.inletReadiness()
	return fmt.Sprintf("Dataflow %s is %s", flow.ID, flow.State), nil
}

// inletReadiness records when the inlet accepts events: the dataflow's
// creation as Adobe reports it plus the warm-up ("about five minutes" after
// a streaming dataflow is created, http.md). Before that, Ready waits.
func (c *dataflow) inletReadiness() {
	st, flow := &c.s.cs.Status, c.flow
	var ready time.Time
	switch {
	case flow.CreatedAt > 0:
		ready = time.UnixMilli(flow.CreatedAt).Add(c.s.inletWarmup)
	case st.InletReadyAt != nil:
		ready = st.InletReadyAt.Time
	default:
		ready = c.s.now.Add(c.s.inletWarmup)
	}
	// Whole seconds, rounded up: never earlier than the inlet's own clock.
	at := metav1.NewTime(ready.UTC().Add(time.Second - 1).Truncate(time.Second))
	st.InletReadyAt = &at
	if c.s.inletWarmup > 0 && c.s.now.Before(at.Time) {
		c.s.warmingUntil = at.Time
	}
}

func wantedState(cs *v1alpha1.CapillarySource) string {
	if cs.Spec.Suspend {
		return flowservice.StateDisabled
	}
	return flowservice.StateEnabled
}

// dataflowPatch is the JSON Patch that brings flow to the spec; empty when it matches.
func dataflowPatch(cs *v1alpha1.CapillarySource, flow *flowservice.Flow) []flowservice.PatchOp {
	var ops []flowservice.PatchOp
	if want := desiredFlowName(cs, flow); flow.Name != want {
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchReplace, Path: "/name", Value: want})
	}
	want := transformations(cs)
	switch {
	case slices.Equal(flow.Transformations, want):
	case len(want) == 1 && len(flow.Transformations) == 1:
		// The documented form (sources/tutorials/api/update-dataflows.md).
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchReplace, Path: "/transformations/0", Value: want[0]})
	default:
		// No mapping yet, or none any more: the documented form needs an
		// element to replace, so the list is set whole. An empty list rather
		// than remove: Adobe's PatchInstruction requires a value; add, not
		// replace: replace fails when the flow has no transformations yet.
		if want == nil {
			want = []flowservice.Transformation{}
		}
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchAdd, Path: "/transformations", Value: want})
	}
	return append(ops, optionsPatch(cs, flow.Options)...)
}

// optionsPatch sets each option spec.dataflow manages, in place: Adobe's
// optionSpec options are dataflow fields, and no document asks for a new
// dataflow to change them. Without spec.dataflow the options are left as
// they are.
func optionsPatch(cs *v1alpha1.CapillarySource, got flowservice.FlowOptions) []flowservice.PatchOp {
	d := cs.Spec.Dataflow
	if d == nil {
		return nil
	}
	var ops []flowservice.PatchOp
	if got.ErrorDiagnosticsEnabled != d.ErrorDiagnosticsEnabled {
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchAdd, Path: "/options/" + optErrorDiagnostics, Value: d.ErrorDiagnosticsEnabled})
	}
	switch want := d.PartialIngestionPercent; {
	case want == nil && got.PartialIngestionPercent != nil:
		// Adobe's PatchInstruction requires a non-null value even on remove;
		// RFC 6902 ignores it there, so the current value goes along.
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchRemove, Path: "/options/" + optPartialIngestion, Value: *got.PartialIngestionPercent})
	case want != nil && (got.PartialIngestionPercent == nil || *got.PartialIngestionPercent != float64(*want)):
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchAdd, Path: "/options/" + optPartialIngestion, Value: *want})
	}
	return ops
}

// desiredFlowOptions is got with spec.dataflow applied.
func desiredFlowOptions(cs *v1alpha1.CapillarySource, got flowservice.FlowOptions) flowservice.FlowOptions {
	if d := cs.Spec.Dataflow; d != nil {
		got.ErrorDiagnosticsEnabled = d.ErrorDiagnosticsEnabled
		got.PartialIngestionPercent = nil
		if d.PartialIngestionPercent != nil {
			v := float64(*d.PartialIngestionPercent)
			got.PartialIngestionPercent = &v
		}
	}
	return got
}

// desiredFlowName keeps the name of an adopted dataflow: it was named by
// whoever made it.
func desiredFlowName(cs *v1alpha1.CapillarySource, flow *flowservice.Flow) string {
	if adopted(cs) {
		return flow.Name
	}
	return adobeName(cs, kindDataflow)
}

func transformations(cs *v1alpha1.CapillarySource) []flowservice.Transformation {
	if cs.Status.MappingSetID == "" {
		return nil
	}
	return []flowservice.Transformation{{
		Name: flowservice.TransformationMapping,
		Params: flowservice.TransformationParams{
			MappingID:      cs.Status.MappingSetID,
			MappingVersion: int(cs.Status.MappingSetVersion),
		},
	}}
}

func boundTo(flow *flowservice.Flow, cs *v1alpha1.CapillarySource) bool {
	return slices.Equal(flow.SourceConnectionIDs, []string{cs.Status.SourceConnectionID}) &&
		slices.Equal(flow.TargetConnectionIDs, []string{cs.Status.TargetConnectionID})
}
