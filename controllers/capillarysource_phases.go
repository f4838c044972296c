package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// errFlowGone: a cheap resync found the dataflow deleted out of band; the
// chain is walked again with every object checked.
var errFlowGone = errors.New("dataflow gone")

// reconcileNormal walks the chain: credentials → connection spec → flow spec
// → source connection → target connection → mapping set → dataflow.
func (r *CapillarySourceReconciler) reconcileNormal(ctx context.Context, s *scope) error {
	cs := s.cs

	adobe, err := r.connect(ctx, s)
	if err != nil {
		return err
	}
	s.ok(v1alpha1.ConditionCredentialsReady, fmt.Sprintf("Adobe IMS issued a token for the credential in Secret %s/%s", cs.Namespace, cs.Spec.CredentialsSecretRef.Name))

	lookup := r.mayExist(cs)

	// A full check reads every object; a resync of a settled resource reads
	// only the dataflow. Settled means Ready too: a terminal failure also
	// sets observedGeneration, and what it left undone (a rejected mapping
	// change, say) must be tried again, not reported Ready unchecked.
	_, requested := s.reconcileRequested()
	full := requested || !s.wasReady || cs.Status.ObservedGeneration != cs.Generation || cs.Status.DataflowID == ""
	err = r.reconcileChain(ctx, s, adobe, full, lookup)
	if errors.Is(err, errFlowGone) {
		err = r.reconcileChain(ctx, s, adobe, true, true)
	}
	return err
}

// connect reads the credentials from the Secret and gets a token from IMS.
func (r *CapillarySourceReconciler) connect(ctx context.Context, s *scope) (Adobe, error) {
	creds, err := r.credentials(ctx, s.cs)
	if err != nil {
		return nil, err
	}
	s.credential = creds.key()
	adobe := r.Adobe.Connect(creds)
	if err := adobe.CheckCredentials(ctx); err != nil {
		return nil, classify(v1alpha1.ConditionCredentialsReady, "issue a token", err)
	}
	return adobe, nil
}

func (r *CapillarySourceReconciler) reconcileChain(ctx context.Context, s *scope, adobe Adobe, full, lookup bool) error {
	spec, err := r.resolveSpecs(ctx, s, adobe)
	if err != nil {
		return err
	}
	if err := r.adopt(ctx, s, adobe); err != nil {
		return err
	}
	srcRecreated, err := r.ensureSourceConnection(ctx, s, adobe, spec, full, lookup)
	if err != nil {
		return err
	}
	tgtRecreated, err := r.ensureTargetConnection(ctx, s, adobe, full, lookup)
	if err != nil {
		return err
	}
	if err := r.ensureMappingSet(ctx, s, adobe, full); err != nil {
		return err
	}
	return r.ensureDataflow(ctx, s, adobe, spec, full, lookup || srcRecreated || tgtRecreated)
}

// resolvedSpecs are the connection spec and the flow spec that holds it.
type resolvedSpecs struct {
	connection *flowservice.ConnectionSpec
	flow       *flowservice.FlowSpec
}

// resolveSpecs checks the connection spec and finds its flow spec. Results
// are shared for an hour by the resources of one credential, org and sandbox:
// what one credential may read says nothing of another, so neither an answer
// nor a failure crosses credentials.
func (r *CapillarySourceReconciler) resolveSpecs(ctx context.Context, s *scope, adobe Adobe) (resolvedSpecs, error) {
	cs := s.cs
	key := specKey{credential: s.credential, org: cs.Spec.OrgID, sandbox: cs.Spec.SandboxName, connectionSpec: cs.Spec.ConnectionSpecID}
	if got, ok := r.specs.get(key, s.now); ok {
		return got, nil
	}
	// Workers that miss the cache together share one lookup. It runs detached
	// from whichever worker started it, under a deadline of its own, so that
	// worker's cancellation does not fail the others; each worker waits only
	// as long as its own context allows (as internal/ims does for tokens).
	detached := context.WithoutCancel(ctx)
	ch := r.specs.flight.DoChan(key.String(), func() (any, error) {
		lookupCtx, cancel := context.WithTimeout(detached, cmp.Or(r.ReconcileTimeout, DefaultReconcileTimeout))
		defer cancel()
		got, err := r.lookUpSpecs(lookupCtx, cs, adobe)
		if err == nil {
			r.specs.put(key, got, s.now)
		}
		return got, err
	})
	select {
	case <-ctx.Done():
		return resolvedSpecs{}, fmt.Errorf("wait for the connection spec lookup: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return resolvedSpecs{}, res.Err
		}
		return res.Val.(resolvedSpecs), nil
	}
}

// lookUpSpecs reads the connection spec and finds the flow spec that holds it.
func (r *CapillarySourceReconciler) lookUpSpecs(ctx context.Context, cs *v1alpha1.CapillarySource, adobe Adobe) (resolvedSpecs, error) {
	conn, err := adobe.GetConnectionSpec(ctx, cs.Spec.ConnectionSpecID)
	if err != nil {
		if flowservice.IsNotFound(err) {
			return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound,
				fmt.Sprintf("Adobe has no connection spec %s in org %s sandbox %s: check spec.connectionSpecId against the Capillary source in the Sources catalogue", cs.Spec.ConnectionSpecID, cs.Spec.OrgID, cs.Spec.SandboxName), err)
		}
		return resolvedSpecs{}, classify(v1alpha1.ConditionSourceConnectionReady, "read the connection spec", err)
	}
	if !conn.Attributes.IsSource && (conn.SourceSpec == nil || !conn.SourceSpec.Attributes.UIAttributes.IsSource) {
		return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound,
			fmt.Sprintf("connection spec %s (%s) is not a source: check spec.connectionSpecId", conn.ID, conn.Name), nil)
	}
	if len(conn.AuthSpec) > 0 {
		return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound,
			fmt.Sprintf("connection spec %s (%s) needs a base connection with credentials; the Capillary streaming source has none: check spec.connectionSpecId", conn.ID, conn.Name), nil)
	}
	flow, err := adobe.FlowSpecFor(ctx, conn.ID)
	if err != nil {
		if flowservice.IsNotFound(err) {
			return resolvedSpecs{}, terminal(v1alpha1.ConditionDataflowReady, v1alpha1.ReasonFlowSpecNotFound,
				fmt.Sprintf("no flow spec in org %s sandbox %s lists connection spec %s in sourceConnectionSpecIds: the source is not enabled for this org", cs.Spec.OrgID, cs.Spec.SandboxName, conn.ID), err)
		}
		return resolvedSpecs{}, classify(v1alpha1.ConditionDataflowReady, "find the flow spec", err)
	}
	return resolvedSpecs{connection: conn, flow: flow}, nil
}

// ensureSourceConnection makes sure the streaming source connection exists.
// It reports whether it had to be recreated.
func (r *CapillarySourceReconciler) ensureSourceConnection(ctx context.Context, s *scope, adobe Adobe, spec resolvedSpecs, full, lookup bool) (bool, error) {
	cs := s.cs
	const cond = v1alpha1.ConditionSourceConnectionReady
	recreated := false
	if id := cs.Status.SourceConnectionID; id != "" {
		if !full {
			s.ok(cond, "Source connection "+id+" exists")
			return false, nil
		}
		_, err := adobe.GetSourceConnection(ctx, id)
		switch {
		case err == nil:
			s.ok(cond, "Source connection "+id+" exists")
			return false, nil
		case !flowservice.IsNotFound(err):
			return false, classify(cond, "read the source connection", err)
		}
		r.event(cs, corev1.EventTypeWarning, "SourceConnectionGone", "Recreate", "Source connection "+id+" was deleted in Adobe; creating a new one")
		cs.Status.SourceConnectionID = ""
		recreated = true
		driftCorrections.WithLabelValues(kindSource).Inc()
	}

	name := adobeName(cs, kindSource)
	if lookup {
		found, err := adobe.FindSourceConnection(ctx, name)
		if err != nil {
			return false, classify(cond, "look up the source connection", err)
		}
		if found != nil {
			cs.Status.SourceConnectionID = found.ID
			s.ok(cond, "Source connection "+found.ID+" exists")
			return recreated, r.saveProgress(ctx, s)
		}
	}
	s.progressing(cond, "Creating the source connection")
	if err := r.beginCreate(ctx, s); err != nil {
		return false, err
	}
	id, err := adobe.CreateSourceConnection(ctx, flowservice.SourceConnectionInput{
		Name:           name,
		Description:    description(cs),
		ProviderID:     spec.connection.ProviderID,
		ConnectionSpec: flowservice.SpecRef{ID: cs.Spec.ConnectionSpecID, Version: specVersion(spec.connection.Version)},
		Data:           flowservice.SourceData{Format: "json"},
	})
	if err != nil {
		return false, classify(cond, "create the source connection", err)
	}
	cs.Status.SourceConnectionID = id
	s.ok(cond, "Source connection "+id+" exists")
	r.changed(s, "Created", "Create", "Created source connection "+id)
	return recreated, r.saveProgress(ctx, s)
}

// ensureTargetConnection makes sure the data lake target connection exists.
func (r *CapillarySourceReconciler) ensureTargetConnection(ctx context.Context, s *scope, adobe Adobe, full, lookup bool) (bool, error) {
	cs := s.cs
	const cond = v1alpha1.ConditionTargetConnectionReady
	recreated := false
	if id := cs.Status.TargetConnectionID; id != "" {
		if !full {
			s.ok(cond, "Target connection "+id+" writes to dataset "+cs.Spec.Target.DatasetID)
			return false, nil
		}
		_, err := adobe.GetTargetConnection(ctx, id)
		switch {
		case err == nil:
			s.ok(cond, "Target connection "+id+" writes to dataset "+cs.Spec.Target.DatasetID)
			return false, nil
		case !flowservice.IsNotFound(err):
			return false, classify(cond, "read the target connection", err)
		}
		r.event(cs, corev1.EventTypeWarning, "TargetConnectionGone", "Recreate", "Target connection "+id+" was deleted in Adobe; creating a new one")
		cs.Status.TargetConnectionID = ""
		recreated = true
		driftCorrections.WithLabelValues(kindTarget).Inc()
	}

	name := adobeName(cs, kindTarget)
	if lookup {
		found, err := adobe.FindTargetConnection(ctx, name)
		if err != nil {
			return false, classify(cond, "look up the target connection", err)
		}
		if found != nil {
			cs.Status.TargetConnectionID = found.ID
			s.ok(cond, "Target connection "+found.ID+" writes to dataset "+cs.Spec.Target.DatasetID)
			return recreated, r.saveProgress(ctx, s)
		}
	}
	s.progressing(cond, "Creating the target connection")
	if err := r.beginCreate(ctx, s); err != nil {
		return false, err
	}
	id, err := adobe.CreateTargetConnection(ctx, flowservice.TargetConnectionInput{
		Name:           name,
		Description:    description(cs),
		ConnectionSpec: flowservice.SpecRef{ID: flowservice.DataLakeConnectionSpecID, Version: flowservice.DefaultSpecVersion},
		Data: flowservice.TargetData{
			Format: "json",
			Schema: &flowservice.SchemaRef{ID: cs.Spec.Target.SchemaID, Version: cs.Spec.Target.SchemaVersion},
		},
		Params: flowservice.TargetParams{DataSetID: cs.Spec.Target.DatasetID},
	})
	if err != nil {
		se := classify(cond, "create the target connection", err)
		if se.terminal && se.reason == v1alpha1.ReasonAdobeRejected {
			se.reason = v1alpha1.ReasonTargetRejected
			se.message += ": check that spec.target.datasetId exists in this sandbox and uses spec.target.schemaId"
		}
		return false, se
	}
	cs.Status.TargetConnectionID = id
	s.ok(cond, "Target connection "+id+" writes to dataset "+cs.Spec.Target.DatasetID)
	r.changed(s, "Created", "Create", "Created target connection "+id)
	return recreated, r.saveProgress(ctx, s)
}

// ensureMappingSet makes sure the Data Prep mapping set holds spec.mappings.
// Mapping sets have no name to look up and no delete API: a create whose
// response is lost leaves an unused mapping set behind, which costs nothing.
func (r *CapillarySourceReconciler) ensureMappingSet(ctx context.Context, s *scope, adobe Adobe, full bool) error {
	cs := s.cs
	const cond = v1alpha1.ConditionMappingReady
	if len(cs.Spec.Mappings) == 0 {
		cs.Status.MappingSetID = ""
		cs.Status.MappingSetVersion = 0
		s.set(cond, metav1.ConditionTrue, v1alpha1.ReasonNotApplicable, "No mappings: the events are ingested as they are, so they must already be XDM")
		return nil
	}
	desired := mappingSetFor(cs)
	if id := cs.Status.MappingSetID; id != "" {
		if !full {
			s.ok(cond, fmt.Sprintf("Mapping set %s version %d holds %d mappings", id, cs.Status.MappingSetVersion, len(cs.Spec.Mappings)))
			return nil
		}
		current, err := adobe.GetMappingSet(ctx, id)
		switch {
		case err == nil && sameMappings(current.Mappings, desired.Mappings):
			cs.Status.MappingSetVersion = int64(current.Version)
			s.ok(cond, fmt.Sprintf("Mapping set %s version %d holds %d mappings", id, current.Version, len(cs.Spec.Mappings)))
			return nil
		case err == nil:
			s.progressing(cond, "Updating the mapping set")
			ref, err := adobe.UpdateMappingSet(ctx, id, desired)
			if err != nil {
				return mappingError(classify(cond, "update the mapping set", err))
			}
			cs.Status.MappingSetVersion = int64(ref.Version)
			s.ok(cond, fmt.Sprintf("Mapping set %s version %d holds %d mappings", id, ref.Version, len(cs.Spec.Mappings)))
			r.changed(s, "Updated", "Update", fmt.Sprintf("Updated mapping set %s to version %d", id, ref.Version))
			return r.saveProgress(ctx, s)
		case !flowservice.IsNotFound(err):
			return classify(cond, "read the mapping set", err)
		}
	}
	s.progressing(cond, "Creating the mapping set")
	if err := r.beginCreate(ctx, s); err != nil {
		return err
	}
	ref, err := adobe.CreateMappingSet(ctx, desired)
	if err != nil {
		return mappingError(classify(cond, "create the mapping set", err))
	}
	cs.Status.MappingSetID = ref.ID
	cs.Status.MappingSetVersion = int64(ref.Version)
	s.ok(cond, fmt.Sprintf("Mapping set %s version %d holds %d mappings", ref.ID, ref.Version, len(cs.Spec.Mappings)))
	r.changed(s, "Created", "Create", "Created mapping set "+ref.ID)
	return r.saveProgress(ctx, s)
}

func mappingError(se *stepError) *stepError {
	if se.terminal && se.reason == v1alpha1.ReasonAdobeRejected {
		se.reason = v1alpha1.ReasonMappingRejected
		se.message += ": fix spec.mappings (each destinationXdmPath must exist in spec.target.schemaId)"
	}
	return se
}

func mappingSetFor(cs *v1alpha1.CapillarySource) flowservice.MappingSet {
	ms := flowservice.MappingSet{
		Version: 0,
		OutputSchema: &flowservice.OutputSchema{SchemaRef: flowservice.XDMSchemaRef{
			ID: cs.Spec.Target.SchemaID, ContentType: cs.Spec.Target.SchemaVersion,
		}},
	}
	for _, m := range cs.Spec.Mappings {
		ms.Mappings = append(ms.Mappings, flowservice.Mapping{
			SourceType:  flowservice.SourceTypeAttribute,
			Source:      m.SourceAttribute,
			Destination: m.DestinationXdmPath,
			Identity:    m.Identity,
		})
	}
	return ms
}

// sameMappings compares what matters of two mapping lists, in any order.
func sameMappings(a, b []flowservice.Mapping) bool {
	key := func(ms []flowservice.Mapping) []string {
		out := make([]string, 0, len(ms))
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%s\x00%s\x00%t", m.Source, m.Destination, m.Identity))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

func specVersion(v string) string {
	if v == "" {
		return flowservice.DefaultSpecVersion
	}
	return v
}

// specKey identifies a connection spec lookup: specs are per org and
// sandbox, and what may be read of them is per credential.
type specKey struct{ credential, org, sandbox, connectionSpec string }

func (k specKey) String() string {
	return k.credential + "\x00" + k.org + "\x00" + k.sandbox + "\x00" + k.connectionSpec
}

type specEntry struct {
	specs   resolvedSpecs
	expires time.Time
}

// specCache shares spec lookups between resources.
type specCache struct {
	flight  singleflight.Group
	mu      sync.Mutex
	entries map[specKey]specEntry
}

func (c *specCache) get(k specKey, now time.Time) (resolvedSpecs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || now.After(e.expires) {
		return resolvedSpecs{}, false
	}
	return e.specs, true
}

func (c *specCache) put(k specKey, v resolvedSpecs, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[specKey]specEntry{}
	}
	c.entries[k] = specEntry{specs: v, expires: now.Add(specCacheTTL)}
}
