package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

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
	// A shared credential reaches every dataflow of the org, other teams'
	// included: its owner decides whether its users may adopt at all.
	if cred := s.clusterCredential; cred != nil && cred.Spec.Adoption != v1alpha1.AdoptionAllowed {
		return terminal(cond, v1alpha1.ReasonAdoptionRefused,
			fmt.Sprintf("cannot adopt or observe dataflow %s: ClusterAdobeCredential %s does not allow adoption (spec.adoption: Refused); remove the annotation %s, or ask the platform team", id, cred.Name, v1alpha1.AdoptDataflowAnnotation), nil)
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
	if s.clusterCredential != nil {
		if err := ownedElsewhere(cs, id, flow.Name, src.Name); err != nil {
			return err
		}
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
	// The base connection goes with its source connection: without it on
	// record, the chain would make a second one.
	cs.Status.BaseConnectionID = src.BaseConnectionID
	for _, t := range flow.Transformations {
		if t.Name == flowservice.TransformationMapping && len(cs.Spec.Mappings) > 0 {
			cs.Status.MappingSetID = t.Params.MappingID
			cs.Status.MappingSetVersion = int64(t.Params.MappingVersion)
		}
	}
	if s.observeOnly() {
		s.event(corev1.EventTypeNormal, "Observing", "Observe", fmt.Sprintf("Observing dataflow %s with source connection %s and target connection %s; nothing is changed in Adobe (managementPolicy: ObserveOnly)", flow.ID, src.ID, tgt.ID))
	} else {
		s.changed("Adopted", "Adopt", fmt.Sprintf("Adopted dataflow %s with source connection %s and target connection %s", flow.ID, src.ID, tgt.ID))
	}
	return r.saveProgress(ctx, s)
}

// ownedElsewhere refuses a dataflow (or its source connection) that carries
// another CapillarySource's name: the operator's names hold the owner's
// UID, so through a shared credential one tenant cannot take over, or read,
// another's.
func ownedElsewhere(cs *v1alpha1.CapillarySource, id string, names ...string) error {
	for _, n := range names {
		if uid, ok := ownerUID(n); ok && uid != cs.UID {
			return terminal(v1alpha1.ConditionDataflowReady, v1alpha1.ReasonAdoptionRefused,
				fmt.Sprintf("cannot adopt or observe dataflow %s: it belongs to another CapillarySource (its name %q carries that resource's UID); remove the annotation %s", id, n, v1alpha1.AdoptDataflowAnnotation), nil)
		}
	}
	return nil
}
