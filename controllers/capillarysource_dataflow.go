package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// maxPatchAttempts bounds the re-read-and-retry loop on etag conflicts.
const maxPatchAttempts = 3

// ensureDataflow makes sure the dataflow exists, points at this resource's
// connections and mapping set, carries its name, and is enabled or disabled
// per spec.suspend; then reports the inlet URL. On a resync this is the one
// Adobe read: GET /flows/{id}.
func (r *CapillarySourceReconciler) ensureDataflow(ctx context.Context, s *scope, adobe Adobe, spec resolvedSpecs, full, lookup bool) error {
	cs := s.cs
	const cond = v1alpha1.ConditionDataflowReady
	name := adobeName(cs, kindDataflow)

	var flow *flowservice.Flow
	if id := cs.Status.DataflowID; id != "" {
		got, err := adobe.GetFlow(ctx, id)
		switch {
		case err == nil:
			flow = got
		case !flowservice.IsNotFound(err):
			return classify(cond, "read the dataflow", err)
		case !full:
			// Gone out of band: check the whole chain before recreating it.
			return errFlowGone
		default:
			r.event(cs, corev1.EventTypeWarning, "DataflowGone", "Recreate", "Dataflow "+id+" was deleted in Adobe; creating a new one")
			driftCorrections.WithLabelValues(kindDataflow).Inc()
			cs.Status.DataflowID = ""
			cs.Status.InletURL = ""
			cs.Status.DataflowState = ""
			lookup = true
		}
	}
	if flow == nil && lookup {
		found, err := adobe.FindFlow(ctx, name)
		if err != nil {
			return classify(cond, "look up the dataflow", err)
		}
		if found != nil {
			flow = found
			cs.Status.DataflowID = found.ID
			if err := r.saveProgress(ctx, s); err != nil {
				return err
			}
		}
	}

	// A dataflow bound to connections this resource no longer owns (they were
	// recreated) is replaced: Adobe advises a new dataflow over rewiring one.
	if flow != nil && !boundTo(flow, cs) {
		if err := adobe.DeleteFlow(ctx, flow.ID); err != nil && !flowservice.IsNotFound(err) {
			return classify(cond, "delete the stale dataflow", err)
		}
		r.changed(s, "Recreated", "Recreate", "Deleted dataflow "+flow.ID+" bound to replaced connections; creating a new one")
		flow = nil
		cs.Status.DataflowID = ""
	}

	if flow == nil {
		s.progressing(cond, "Creating the dataflow")
		if err := r.beginCreate(ctx, s); err != nil {
			return err
		}
		id, err := adobe.CreateFlow(ctx, flowservice.FlowInput{
			Name:                name,
			Description:         description(cs),
			FlowSpec:            flowservice.SpecRef{ID: spec.flow.ID, Version: specVersion(spec.flow.Version)},
			SourceConnectionIDs: []string{cs.Status.SourceConnectionID},
			TargetConnectionIDs: []string{cs.Status.TargetConnectionID},
			Transformations:     transformations(cs),
		})
		if err != nil {
			return classify(cond, "create the dataflow", err)
		}
		cs.Status.DataflowID = id
		cs.Status.FlowSpecID = spec.flow.ID
		r.changed(s, "Created", "Create", "Created dataflow "+id)
		if err := r.saveProgress(ctx, s); err != nil {
			return err
		}
		// Read it back: the inlet URL and the state only come with the flow.
		got, err := adobe.GetFlow(ctx, id)
		if err != nil {
			return classify(cond, "read the new dataflow", err)
		}
		flow = got
	} else if err := r.correctDataflow(ctx, s, adobe, flow, name); err != nil {
		return err
	}

	if err := r.ensureFlowState(ctx, s, adobe, flow); err != nil {
		return err
	}
	if cs.Status.FlowSpecID == "" {
		cs.Status.FlowSpecID = flow.FlowSpec.ID
	}
	cs.Status.DataflowState = flow.State
	cs.Status.InletURL = flow.Options.InletURL
	if flow.Options.InletURL == "" {
		return &stepError{condition: cond, reason: v1alpha1.ReasonProgressing,
			message: "Dataflow " + flow.ID + " has no inlet URL yet; checking again shortly"}
	}
	s.ok(cond, fmt.Sprintf("Dataflow %s is %s", flow.ID, flow.State))
	return nil
}

// correctDataflow patches the name and the mapping of a dataflow that drifted,
// with If-Match; on an etag conflict it reads the flow again and retries.
func (r *CapillarySourceReconciler) correctDataflow(ctx context.Context, s *scope, adobe Adobe, flow *flowservice.Flow, name string) error {
	cs := s.cs
	const cond = v1alpha1.ConditionDataflowReady
	for attempt := 1; ; attempt++ {
		ops := dataflowPatch(cs, flow, name)
		if len(ops) == 0 {
			return nil
		}
		err := adobe.PatchFlow(ctx, flow.ID, flow.ETag, ops)
		if err == nil {
			r.changed(s, "Updated", "Update", "Updated dataflow "+flow.ID+" to match the spec")
			driftCorrections.WithLabelValues(kindDataflow).Inc()
			flow.Name = desiredFlowName(cs, flow, name)
			flow.Transformations = transformations(cs)
			return nil
		}
		if !flowservice.IsPreconditionFailed(err) || attempt == maxPatchAttempts {
			return classify(cond, "update the dataflow", err)
		}
		fresh, gerr := adobe.GetFlow(ctx, flow.ID)
		if gerr != nil {
			return classify(cond, "read the dataflow", gerr)
		}
		*flow = *fresh
	}
}

// dataflowPatch is the JSON Patch that brings flow to the spec; empty when it matches.
func dataflowPatch(cs *v1alpha1.CapillarySource, flow *flowservice.Flow, name string) []flowservice.PatchOp {
	var ops []flowservice.PatchOp
	if want := desiredFlowName(cs, flow, name); flow.Name != want {
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchReplace, Path: "/name", Value: want})
	}
	want := transformations(cs)
	if !slices.Equal(flow.Transformations, want) {
		if want == nil {
			// An empty list rather than remove: Adobe's PatchInstruction requires a value.
			want = []flowservice.Transformation{}
		}
		// add, not replace: replace fails when the flow has no transformations yet.
		ops = append(ops, flowservice.PatchOp{Op: flowservice.PatchAdd, Path: "/transformations", Value: want})
	}
	return ops
}

// desiredFlowName keeps the name of an adopted dataflow: it was named by
// whoever made it.
func desiredFlowName(cs *v1alpha1.CapillarySource, flow *flowservice.Flow, name string) string {
	if adopted(cs) {
		return flow.Name
	}
	return name
}

// ensureFlowState enables or disables the dataflow per spec.suspend.
func (r *CapillarySourceReconciler) ensureFlowState(ctx context.Context, s *scope, adobe Adobe, flow *flowservice.Flow) error {
	cs := s.cs
	want, action := flowservice.StateEnabled, flowservice.ActionEnable
	if cs.Spec.Suspend {
		want, action = flowservice.StateDisabled, flowservice.ActionDisable
	}
	if flow.State == want {
		return nil
	}
	if err := adobe.FlowAction(ctx, flow.ID, action); err != nil {
		// A retried action whose first answer was lost finds the flow already
		// in the wanted state (FLOW-1422-400): read it to tell that apart.
		fresh, gerr := adobe.GetFlow(ctx, flow.ID)
		if gerr != nil || fresh.State != want {
			return classify(v1alpha1.ConditionDataflowReady, string(action)+" the dataflow", err)
		}
	}
	reason := "Resumed"
	if cs.Spec.Suspend {
		reason = "Suspended"
	}
	// A state changed in Adobe by someone else is drift; one we just chose is not.
	if s.before.Status.DataflowState == want {
		driftCorrections.WithLabelValues(kindDataflow).Inc()
	}
	r.changed(s, reason, string(action), fmt.Sprintf("Dataflow %s is now %s", flow.ID, want))
	flow.State = want
	return nil
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

func adopted(cs *v1alpha1.CapillarySource) bool {
	id, ok := cs.Annotations[v1alpha1.AdoptDataflowAnnotation]
	return ok && id != "" && id == cs.Status.DataflowID
}

// adopt takes over the dataflow named by the adopt annotation, with its
// connections and mapping set, when they match the spec. It never adopts
// silently: only the annotation, set by a person, leads here.
func (r *CapillarySourceReconciler) adopt(ctx context.Context, s *scope, adobe Adobe) error {
	cs := s.cs
	const cond = v1alpha1.ConditionDataflowReady
	id, ok := cs.Annotations[v1alpha1.AdoptDataflowAnnotation]
	if !ok || id == "" || cs.Status.DataflowID != "" {
		return nil
	}
	mismatch := func(format string, args ...any) error {
		return terminal(cond, v1alpha1.ReasonAdoptionMismatch,
			fmt.Sprintf("cannot adopt dataflow %s: ", id)+fmt.Sprintf(format, args...)+
				"; fix the spec or remove the annotation "+v1alpha1.AdoptDataflowAnnotation, nil)
	}
	flow, err := adobe.GetFlow(ctx, id)
	if err != nil {
		if flowservice.IsNotFound(err) {
			return mismatch("it does not exist in org %s sandbox %s", cs.Spec.OrgID, cs.Spec.SandboxName)
		}
		return classify(cond, "read the dataflow to adopt", err)
	}
	if len(flow.SourceConnectionIDs) != 1 || len(flow.TargetConnectionIDs) != 1 {
		return mismatch("it has %d source and %d target connections, not one of each", len(flow.SourceConnectionIDs), len(flow.TargetConnectionIDs))
	}
	src, err := adobe.GetSourceConnection(ctx, flow.SourceConnectionIDs[0])
	if err != nil {
		return classify(cond, "read the source connection to adopt", err)
	}
	if src.ConnectionSpec.ID != cs.Spec.ConnectionSpecID {
		return mismatch("its source connection uses connection spec %s, spec.connectionSpecId is %s", src.ConnectionSpec.ID, cs.Spec.ConnectionSpecID)
	}
	tgt, err := adobe.GetTargetConnection(ctx, flow.TargetConnectionIDs[0])
	if err != nil {
		return classify(cond, "read the target connection to adopt", err)
	}
	if tgt.Params.DataSetID != cs.Spec.Target.DatasetID {
		return mismatch("it writes to dataset %s, spec.target.datasetId is %s", tgt.Params.DataSetID, cs.Spec.Target.DatasetID)
	}
	if tgt.Data.Schema == nil || tgt.Data.Schema.ID != cs.Spec.Target.SchemaID {
		return mismatch("its target schema differs from spec.target.schemaId %s", cs.Spec.Target.SchemaID)
	}
	cs.Status.DataflowID = flow.ID
	cs.Status.FlowSpecID = flow.FlowSpec.ID
	cs.Status.SourceConnectionID = src.ID
	cs.Status.TargetConnectionID = tgt.ID
	for _, t := range flow.Transformations {
		if t.Name == flowservice.TransformationMapping && len(cs.Spec.Mappings) > 0 {
			cs.Status.MappingSetID = t.Params.MappingID
			cs.Status.MappingSetVersion = int64(t.Params.MappingVersion)
		}
	}
	r.changed(s, "Adopted", "Adopt", fmt.Sprintf("Adopted dataflow %s with source connection %s and target connection %s", flow.ID, src.ID, tgt.ID))
	return r.saveProgress(ctx, s)
}
