package controllers

import (
	"context"
	"fmt"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

func adopted(cs *v1alpha1.CapillarySource) bool {
	id, ok := cs.Annotations[v1alpha1.AdoptDataflowAnnotation]
	return ok && id != "" && id == cs.Status.DataflowID
}

// adopt takes over the dataflow named by the adopt annotation, with its
// connections and mapping set, when they match the spec. It never adopts
// silently: only the annotation, set by a person, leads here.
func (r *CapillarySourceReconciler) adopt(ctx context.Context, s *scope) error {
	cs, adobe := s.cs, s.adobe
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
	s.changed("Adopted", "Adopt", fmt.Sprintf("Adopted dataflow %s with source connection %s and target connection %s", flow.ID, src.ID, tgt.ID))
	return r.saveProgress(ctx, s)
}
