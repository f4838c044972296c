package manager

import (
	"slices"
	"unique"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// compactSource is the cache's transform for CapillarySources, the objects
// it holds most of (docs/performance.md, "Memory"). It drops what nothing
// reads: managedFields, and kubectl apply's copy of the whole object in
// last-applied-configuration (every write is a merge patch computed between
// two cached copies, so the annotation is never written back without it).
// It shares the strings that repeat from one source to the next (condition
// types, statuses and reasons, namespaces, specs stamped from one template)
// instead of keeping the decoder's copy of each, and trims the conditions to
// their length (decoding grows a slice by doubling).
func compactSource(in any) (any, error) {
	cs, ok := in.(*v1alpha1.CapillarySource)
	if !ok {
		return in, nil // a tombstone
	}
	cs.ManagedFields = nil
	delete(cs.Annotations, corev1.LastAppliedConfigAnnotation)
	cs.Namespace = intern(cs.Namespace)
	internAll(cs.Finalizers)
	cs.Labels = internMap(cs.Labels, true)
	cs.Annotations = internMap(cs.Annotations, false)

	spec := &cs.Spec
	spec.CredentialsSecretRef.Name = intern(spec.CredentialsSecretRef.Name)
	spec.CredentialsSecretRef.ClientIDKey = intern(spec.CredentialsSecretRef.ClientIDKey)
	spec.CredentialsSecretRef.ClientSecretKey = intern(spec.CredentialsSecretRef.ClientSecretKey)
	if spec.ClusterCredentialRef != nil {
		spec.ClusterCredentialRef.Name = intern(spec.ClusterCredentialRef.Name)
	}
	spec.ManagementPolicy = intern(spec.ManagementPolicy)
	spec.DriftPolicy = intern(spec.DriftPolicy)
	spec.DeletionPolicy = intern(spec.DeletionPolicy)
	spec.OrgID = intern(spec.OrgID)
	spec.SandboxName = intern(spec.SandboxName)
	spec.ConnectionSpecID = intern(spec.ConnectionSpecID)
	spec.Target.DatasetID = intern(spec.Target.DatasetID)
	spec.Target.SchemaID = intern(spec.Target.SchemaID)
	spec.Target.SchemaVersion = intern(spec.Target.SchemaVersion)
	for i := range spec.Mappings {
		m := &spec.Mappings[i]
		m.SourceAttribute = intern(m.SourceAttribute)
		m.DestinationXdmPath = intern(m.DestinationXdmPath)
	}

	st := &cs.Status
	if cap(st.Conditions) > len(st.Conditions) {
		st.Conditions = slices.Clone(st.Conditions)
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type = intern(c.Type)
		c.Status = intern(c.Status)
		c.Reason = intern(c.Reason)
	}
	st.FlowSpecID = intern(st.FlowSpecID)
	st.DataflowState = intern(st.DataflowState)
	st.BaseConnectionSecretVersion = intern(st.BaseConnectionSecretVersion)
	return cs, nil
}

// intern returns the one shared copy of s; unused copies are collected.
func intern[S ~string](s S) S {
	if s == "" {
		return s
	}
	return S(unique.Make(string(s)).Value())
}

func internAll(ss []string) {
	for i, s := range ss {
		ss[i] = intern(s)
	}
}

// internMap shares the keys, and the values too when they repeat (labels);
// annotations' values are mostly one object's own.
func internMap(m map[string]string, values bool) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			v = intern(v)
		}
		out[intern(k)] = v
	}
	return out
}
