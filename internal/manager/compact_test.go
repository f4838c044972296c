package manager

import (
	"encoding/json"
	"fmt"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// decodeSource decodes a source as the informer does, each string its own
// allocation.
func decodeSource(t *testing.T, name string) *v1alpha1.CapillarySource {
	t.Helper()
	raw := fmt.Sprintf(`{
  "metadata": {"name": %q, "namespace": "team-a", "finalizers": ["sources.aepoperator.dev/finalizer"],
    "labels": {"app": "loyalty"},
    "annotations": {%q: "{\"spec\":{}}", "sources.aepoperator.dev/reconcile-requested-at": "t1"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
  "spec": {"credentialsSecretRef": {"name": "adobe"}, "orgId": "ORG@AdobeOrg", "sandboxName": "prod",
    "target": {"datasetId": "ds", "schemaId": "https://ns.adobe.com/x/schemas/y"},
    "mappings": [{"sourceAttribute": "loyalty.points", "destinationXdmPath": "_x.points"}]},
  "status": {"conditions": [
    {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "m1", "lastTransitionTime": "2026-12-02T06:00:00Z"},
    {"type": "CredentialsReady", "status": "True", "reason": "Succeeded", "message": "m2", "lastTransitionTime": "2026-12-02T06:00:00Z"},
    {"type": "DataflowReady", "status": "True", "reason": "Succeeded", "message": "flow `+name+`", "lastTransitionTime": "2026-12-02T06:00:00Z"}],
    "dataflowState": "enabled", "dataflowId": "flow-%s"}
}`, name, corev1.LastAppliedConfigAnnotation, name)
	var cs v1alpha1.CapillarySource
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		t.Fatal(err)
	}
	return &cs
}

func sameBytes(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// The cached source keeps everything the operator reads, drops what it
// never reads, and shares the strings that repeat.
func TestCompactSource(t *testing.T) {
	a, b := decodeSource(t, "a"), decodeSource(t, "b")
	want := a.DeepCopy()
	want.ManagedFields = nil
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
	if sameBytes(a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason) {
		t.Fatal("the decoder already shares strings: the test proves nothing")
	}
	for _, cs := range []*v1alpha1.CapillarySource{a, b} {
		if out, err := compactSource(cs); err != nil || out != cs {
			t.Fatalf("compactSource = %v, %v; want the same object back", out, err)
		}
	}
	if !equality.Semantic.DeepEqual(a, want) {
		t.Errorf("compacted source differs from the decoded one beyond managedFields and last-applied-configuration:\n%+v\n%+v", a, want)
	}
	if got := a.Annotations["sources.aepoperator.dev/reconcile-requested-at"]; got != "t1" {
		t.Errorf("the operator's own annotation was lost: %q", got)
	}
	if len(a.Status.Conditions) != cap(a.Status.Conditions) {
		t.Errorf("conditions: len %d, cap %d; want no spare capacity", len(a.Status.Conditions), cap(a.Status.Conditions))
	}
	for what, pair := range map[string][2]string{
		"namespace":        {a.Namespace, b.Namespace},
		"finalizer":        {a.Finalizers[0], b.Finalizers[0]},
		"condition type":   {a.Status.Conditions[1].Type, b.Status.Conditions[1].Type},
		"condition status": {string(a.Status.Conditions[1].Status), string(b.Status.Conditions[1].Status)},
		"condition reason": {a.Status.Conditions[1].Reason, b.Status.Conditions[1].Reason},
		"org":              {a.Spec.OrgID, b.Spec.OrgID},
		"schema":           {a.Spec.Target.SchemaID, b.Spec.Target.SchemaID},
		"mapping":          {a.Spec.Mappings[0].DestinationXdmPath, b.Spec.Mappings[0].DestinationXdmPath},
		"label value":      {a.Labels["app"], b.Labels["app"]},
		"dataflow state":   {a.Status.DataflowState, b.Status.DataflowState},
	} {
		if !sameBytes(pair[0], pair[1]) {
			t.Errorf("%s %q is kept twice", what, pair[0])
		}
	}
}

func TestCompactSourcePassesTombstones(t *testing.T) {
	tomb := toolscache.DeletedFinalStateUnknown{Key: "team-a/a"}
	if out, err := compactSource(tomb); err != nil || out != any(tomb) {
		t.Errorf("compactSource(tombstone) = %v, %v", out, err)
	}
}

// A cached Secret keeps what the watch reads (name, namespace,
// resourceVersion) and nothing else of note.
func TestStripSecretMetadata(t *testing.T) {
	in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "adobe", Namespace: "team-a", ResourceVersion: "42", UID: "u-1", GenerateName: "adobe-",
		Labels:          map[string]string{"app": "x"},
		Annotations:     map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"clientSecret":"s3cr3t"}}`},
		OwnerReferences: []metav1.OwnerReference{{Name: "owner"}},
		Finalizers:      []string{"example.com/keep"},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	out, err := stripSecretMetadata(in)
	if err != nil {
		t.Fatal(err)
	}
	want := metav1.ObjectMeta{Name: "adobe", Namespace: "team-a", ResourceVersion: "42", UID: "u-1"}
	if got := out.(*metav1.PartialObjectMetadata).ObjectMeta; !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("cached Secret metadata = %+v, want %+v", got, want)
	}
}
