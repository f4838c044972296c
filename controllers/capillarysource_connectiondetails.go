package controllers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete

// Keys of the connection-details ConfigMap (README, "Connection details").
const (
	detailInletURL            = "inletUrl"
	detailDataflowID          = "dataflowId"
	detailSourceConnectionID  = "sourceConnectionId"
	detailOrgID               = "orgId"
	detailSandboxName         = "sandboxName"
	detailInletAuthentication = "inletAuthentication"
)

// writeConnectionDetails keeps the ConfigMap spec.writeConnectionDetailsTo
// names: what a sender needs, never a secret. The manager caches only
// ConfigMaps labelled as connection details, so a steady state costs a
// cache read; a ConfigMap of that name without the label is someone
// else's, and is never overwritten: taking it over could break whatever
// reads it, and the owner can delete it or pick another name.
func (r *CapillarySourceReconciler) writeConnectionDetails(ctx context.Context, s *scope) error {
	cs := s.cs
	if err := r.pruneConnectionDetails(ctx, cs); err != nil {
		return err
	}
	ref := cs.Spec.WriteConnectionDetailsTo
	if ref == nil || cs.Status.InletURL == "" {
		return nil
	}
	want := connectionDetails(cs)
	key := types.NamespacedName{Namespace: cs.Namespace, Name: ref.Name}
	cm := &corev1.ConfigMap{}
	err := r.Get(ctx, key, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		setConnectionDetails(cm, cs, want)
		if err := controllerutil.SetControllerReference(cs, cm, r.Scheme()); err != nil {
			return fmt.Errorf("own the connection details: %w", err)
		}
		if err := r.Create(ctx, cm); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return detailsConflict(ref.Name)
			}
			return kubernetesError(v1alpha1.ConditionReady, "create ConfigMap "+ref.Name, fmt.Errorf("create connection details: %w", err))
		}
		s.event(corev1.EventTypeNormal, "ConnectionDetailsWritten", "Write", "Wrote the connection details to ConfigMap "+ref.Name)
		return nil
	case err != nil:
		return kubernetesError(v1alpha1.ConditionReady, "read ConfigMap "+ref.Name, fmt.Errorf("get connection details: %w", err))
	}
	if !metav1.IsControlledBy(cm, cs) {
		return detailsConflict(ref.Name)
	}
	if maps.Equal(cm.Data, want) && cm.Annotations[v1alpha1.ConnectionDetailsHashAnnotation] == detailsHash(want) {
		return nil
	}
	setConnectionDetails(cm, cs, want)
	if err := r.Update(ctx, cm); err != nil {
		return kubernetesError(v1alpha1.ConditionReady, "update ConfigMap "+ref.Name, fmt.Errorf("update connection details: %w", err))
	}
	s.event(corev1.EventTypeNormal, "ConnectionDetailsWritten", "Write", "Updated the connection details in ConfigMap "+ref.Name)
	return nil
}

func detailsConflict(name string) error {
	return terminal(v1alpha1.ConditionReady, v1alpha1.ReasonConnectionDetailsConflict,
		fmt.Sprintf("ConfigMap %s exists and is not this resource's: delete it, or set spec.writeConnectionDetailsTo.name to another name", name), nil)
}

// pruneConnectionDetails deletes the ConfigMaps this resource wrote under a
// name it no longer asks for (the field changed or went).
func (r *CapillarySourceReconciler) pruneConnectionDetails(ctx context.Context, cs *v1alpha1.CapillarySource) error {
	var keep string
	if ref := cs.Spec.WriteConnectionDetailsTo; ref != nil && cs.DeletionTimestamp.IsZero() {
		keep = ref.Name
	}
	var list corev1.ConfigMapList
	if err := r.List(ctx, &list, client.InNamespace(cs.Namespace), client.MatchingLabels{v1alpha1.ConnectionDetailsSourceLabel: cs.Name}); err != nil {
		return kubernetesError(v1alpha1.ConditionReady, "list connection-details ConfigMaps", fmt.Errorf("list connection details: %w", err))
	}
	for i := range list.Items {
		cm := &list.Items[i]
		if cm.Name == keep || !metav1.IsControlledBy(cm, cs) {
			continue
		}
		if err := r.Delete(ctx, cm, client.Preconditions{UID: &cm.UID}); client.IgnoreNotFound(err) != nil {
			return kubernetesError(v1alpha1.ConditionReady, "delete ConfigMap "+cm.Name, fmt.Errorf("delete connection details: %w", err))
		}
	}
	return nil
}

func connectionDetails(cs *v1alpha1.CapillarySource) map[string]string {
	return map[string]string{
		detailInletURL:            cs.Status.InletURL,
		detailDataflowID:          cs.Status.DataflowID,
		detailSourceConnectionID:  cs.Status.SourceConnectionID,
		detailOrgID:               cs.Spec.OrgID,
		detailSandboxName:         cs.Spec.SandboxName,
		detailInletAuthentication: string(cmp.Or(cs.Status.InletAuthentication, v1alpha1.InletAuthenticationNone)),
	}
}

func setConnectionDetails(cm *corev1.ConfigMap, cs *v1alpha1.CapillarySource, data map[string]string) {
	cm.Data = data
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[v1alpha1.ConnectionDetailsSourceLabel] = cs.Name
	cm.Labels["app.kubernetes.io/managed-by"] = "capillary-operator"
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[v1alpha1.ConnectionDetailsHashAnnotation] = detailsHash(data)
}

// detailsHash is a hash of the data, in key order, for consumers to roll on.
func detailsHash(data map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%s=%s\n", k, data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
