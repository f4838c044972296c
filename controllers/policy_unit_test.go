package controllers

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// allowedNamespaces: names and selector are a union; an empty selector
// selects every namespace; neither selects none.
func TestNamespaceAllowedUnit(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"team": "a"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b", Labels: map[string]string{"team": "b"}}},
	).Build()
	r := &CapillarySourceReconciler{Client: c}
	byLabel := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	cases := []struct {
		name    string
		allowed *v1alpha1.AllowedNamespaces
		ns      string
		want    bool
	}{
		{"neither names nor selector", nil, "team-a", false},
		{"empty allowedNamespaces", &v1alpha1.AllowedNamespaces{}, "team-a", false},
		{"listed by name", &v1alpha1.AllowedNamespaces{Names: []string{"team-b"}}, "team-b", true},
		{"not listed", &v1alpha1.AllowedNamespaces{Names: []string{"team-b"}}, "team-a", false},
		{"empty selector: every namespace", &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}}, "team-b", true},
		{"selected by label", &v1alpha1.AllowedNamespaces{Selector: byLabel}, "team-a", true},
		{"not selected", &v1alpha1.AllowedNamespaces{Selector: byLabel}, "team-b", false},
		{"union: by name though not selected", &v1alpha1.AllowedNamespaces{Names: []string{"team-b"}, Selector: byLabel}, "team-b", true},
		{"union: selected though not named", &v1alpha1.AllowedNamespaces{Names: []string{"team-b"}, Selector: byLabel}, "team-a", true},
		{"a namespace that does not exist", &v1alpha1.AllowedNamespaces{Selector: byLabel}, "gone", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cred := &v1alpha1.ClusterAdobeCredential{Spec: v1alpha1.ClusterAdobeCredentialSpec{AllowedNamespaces: tc.allowed}}
			got, err := r.namespaceAllowed(context.Background(), cred, tc.ns)
			if err != nil || got != tc.want {
				t.Errorf("namespaceAllowed(%s) = %v, %v; want %v", tc.ns, got, err, tc.want)
			}
		})
	}
}

// ownerUID reads back the UID adobeName put in: another source's object is
// told apart from one made by hand.
func TestOwnerUIDUnit(t *testing.T) {
	cs := &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "loyalty-events", UID: "0f6d4a52-7f0c-4c44-8d36-bd1e6a0c1b2e"}}
	cases := []struct {
		name string
		in   string
		want types.UID
		ok   bool
	}{
		{"dataflow", adobeName(cs, kindDataflow), cs.UID, true},
		{"source connection", adobeName(cs, kindSource), cs.UID, true},
		{"made by hand", "Capillary loyalty events", "", false},
		{"capillary- prefix without a UID", "capillary-team-a-loyalty-dataflow", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ownerUID(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ownerUID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// What each policy lets ensure correct.
func TestCorrectingUnit(t *testing.T) {
	cases := []struct {
		management v1alpha1.ManagementPolicy
		drift      v1alpha1.DriftPolicy
		handled    bool // the generation was handled before
		want       bool
	}{
		{v1alpha1.ManagementPolicyFull, v1alpha1.DriftPolicyCorrect, true, true},
		{v1alpha1.ManagementPolicyFull, v1alpha1.DriftPolicyCorrect, false, true},
		{v1alpha1.ManagementPolicyFull, v1alpha1.DriftPolicyReport, true, false},
		{v1alpha1.ManagementPolicyFull, v1alpha1.DriftPolicyReport, false, true}, // a spec change is applied
		{v1alpha1.ManagementPolicyObserveOnly, v1alpha1.DriftPolicyCorrect, false, false},
		{v1alpha1.ManagementPolicyObserveOnly, v1alpha1.DriftPolicyReport, true, false},
	}
	for _, tc := range cases {
		cs := &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
		cs.Spec.ManagementPolicy, cs.Spec.DriftPolicy = tc.management, tc.drift
		cs.Status.ObservedGeneration = 1
		if tc.handled {
			cs.Status.ObservedGeneration = 2
		}
		if got := (&scope{cs: cs}).correcting(); got != tc.want {
			t.Errorf("%s/%s handled=%v: correcting = %v, want %v", tc.management, tc.drift, tc.handled, got, tc.want)
		}
	}
}

// The dataflow's differences, field by field.
func TestDataflowDriftUnit(t *testing.T) {
	cs := &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "src", UID: "0f6d4a52-7f0c-4c44-8d36-bd1e6a0c1b2e"}}
	cs.Status.SourceConnectionID, cs.Status.TargetConnectionID = "src-1", "tgt-1"
	cs.Status.MappingSetID, cs.Status.MappingSetVersion = "map-1", 2
	matching := func() *flowservice.Flow {
		return &flowservice.Flow{
			ID: "flow-1", Name: adobeName(cs, kindDataflow), State: flowservice.StateEnabled,
			SourceConnectionIDs: []string{"src-1"}, TargetConnectionIDs: []string{"tgt-1"},
			Transformations: transformations(cs),
		}
	}
	cases := []struct {
		name   string
		change func(f *flowservice.Flow)
		want   []string
	}{
		{"as declared", func(*flowservice.Flow) {}, nil},
		{"renamed and disabled", func(f *flowservice.Flow) { f.Name, f.State = "by hand", flowservice.StateDisabled }, []string{
			`dataflow name is "by hand", declared "` + adobeName(cs, kindDataflow) + `"`,
			"dataflow state is disabled, declared enabled (spec.suspend)",
		}},
		{"older mapping version", func(f *flowservice.Flow) { f.Transformations[0].Params.MappingVersion = 1 }, []string{
			"dataflow mapping is mapping set map-1 version 1, declared mapping set map-1 version 2",
		}},
		{"rewired", func(f *flowservice.Flow) { f.SourceConnectionIDs = []string{"src-2"} }, []string{
			"dataflow source connections are [src-2], declared [src-1]",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := matching()
			tc.change(f)
			d := &dataflow{s: &scope{cs: cs}, flow: f}
			if diff := cmp.Diff(tc.want, d.drift()); diff != "" {
				t.Errorf("drift (-want +got):\n%s", diff)
			}
		})
	}
}
