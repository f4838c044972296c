package controllers

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// The policies decide what a reconcile may write to Adobe; the chain's
// steps are the same under each, only ensure's answer to a difference
// changes:
//
//	managementPolicy ObserveOnly: nothing is created, changed or deleted;
//	  the objects on record (or named by the adopt annotation) are read and
//	  reported, and their differences from the spec listed in Drifted.
//	driftPolicy Report: a new generation of the spec is applied as usual;
//	  a difference found later (someone changed Adobe) is listed in Drifted
//	  and left as it is.
//
// An object on record that is gone from Adobe is not made again under
// either: the resource stalls with NotFoundInAdobe, since its inlet no
// longer works as status says.

func (s *scope) observeOnly() bool {
	return s.cs.Spec.ManagementPolicy == v1alpha1.ManagementPolicyObserveOnly
}

// correcting says whether a difference found in Adobe is put back: under
// driftPolicy Report only while a new generation of the spec is applied.
func (s *scope) correcting() bool {
	if s.observeOnly() {
		return false
	}
	return s.cs.Spec.DriftPolicy != v1alpha1.DriftPolicyReport || s.cs.Status.ObservedGeneration != s.cs.Generation
}

// mayCorrect says whether ensure may bring this object to the spec. A
// rotated Secret is its owner's change, not drift: under driftPolicy Report
// the base connection still gets the new params.
func (s *scope) mayCorrect(c external) bool {
	if s.correcting() {
		return true
	}
	v, ok := c.(versioned)
	return ok && v.outdated() && !s.observeOnly()
}

// reportsDrift: the Drifted condition is kept for this resource.
func (s *scope) reportsDrift() bool {
	return s.observeOnly() || s.cs.Spec.DriftPolicy == v1alpha1.DriftPolicyReport
}

// differ is a kind that can say field by field how its object differs
// from the spec.
type differ interface {
	drift() []string
}

// drifted records how the object differs, instead of correcting it.
func (s *scope) drifted(c external) {
	if d, ok := c.(differ); ok {
		if found := d.drift(); len(found) > 0 {
			s.drift = append(s.drift, found...)
			return
		}
	}
	s.drift = append(s.drift, c.kind().title+" differs from the spec")
}

// notFound is an object on record gone from Adobe, under a policy that does
// not make it again.
func (s *scope) notFound(k kind, id string) error {
	s.drift = append(s.drift, fmt.Sprintf("%s %s not found", k.title, id))
	way := "set driftPolicy: Correct to make it again"
	if s.observeOnly() {
		way = "set managementPolicy: Full to make it again, or name another dataflow to observe"
	}
	return terminal(k.condition, v1alpha1.ReasonNotFoundInAdobe,
		fmt.Sprintf("%s %s was deleted in Adobe and %s leaves Adobe as it is: %s", capitalize(k.title), id, s.policyName(), way), nil)
}

func (s *scope) policyName() string {
	if s.observeOnly() {
		return "managementPolicy ObserveOnly"
	}
	return "driftPolicy Report"
}

// reportDrift keeps the Drifted condition: True with the differences, or
// False; one event per change of the difference. Under Correct and Full it
// is not kept. It does not change Ready: the resource is as its owner asked.
func (s *scope) reportDrift() {
	const cond = v1alpha1.ConditionDrifted
	if !s.reportsDrift() {
		s.remove(cond)
		return
	}
	old := meta.FindStatusCondition(s.before.Status.Conditions, cond)
	if len(s.drift) == 0 {
		s.set(cond, metav1.ConditionFalse, v1alpha1.ReasonNoDrift, "Adobe matches the spec")
		if old != nil && old.Status == metav1.ConditionTrue {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonNoDrift, "Observe", "Adobe matches the spec again")
		}
		return
	}
	msg := "Adobe differs from the spec (" + s.policyName() + " leaves it): " + strings.Join(s.drift, "; ")
	s.set(cond, metav1.ConditionTrue, v1alpha1.ReasonDriftDetected, msg)
	if old == nil || old.Status != metav1.ConditionTrue || old.Message != msg {
		s.warn(v1alpha1.ReasonDriftDetected, "Observe", msg)
	}
}

// drift lists how the dataflow differs from the spec, field by field.
func (c *dataflow) drift() []string {
	cs, flow := c.s.cs, c.flow
	var out []string
	if want := desiredFlowName(cs, flow); flow.Name != want {
		out = append(out, fmt.Sprintf("dataflow name is %q, declared %q", flow.Name, want))
	}
	if want := wantedState(cs); flow.State != want {
		out = append(out, fmt.Sprintf("dataflow state is %s, declared %s (spec.suspend)", flow.State, want))
	}
	if want := transformations(cs); !slices.Equal(flow.Transformations, want) {
		out = append(out, fmt.Sprintf("dataflow mapping is %s, declared %s", mappingOf(flow.Transformations), mappingOf(want)))
	}
	if got, want := flow.SourceConnectionIDs, []string{cs.Status.SourceConnectionID}; !slices.Equal(got, want) {
		out = append(out, fmt.Sprintf("dataflow source connections are %v, declared %v", got, want))
	}
	if got, want := flow.TargetConnectionIDs, []string{cs.Status.TargetConnectionID}; !slices.Equal(got, want) {
		out = append(out, fmt.Sprintf("dataflow target connections are %v, declared %v", got, want))
	}
	for _, op := range optionsPatch(cs, flow.Options) {
		out = append(out, fmt.Sprintf("dataflow option %s differs from spec.dataflow", strings.TrimPrefix(op.Path, "/options/")))
	}
	return out
}

func mappingOf(ts []flowservice.Transformation) string {
	for _, t := range ts {
		if t.Name == flowservice.TransformationMapping {
			return fmt.Sprintf("mapping set %s version %d", t.Params.MappingID, t.Params.MappingVersion)
		}
	}
	return "none"
}

func (c mappingSet) drift() []string {
	return []string{fmt.Sprintf("mapping set %s holds other mappings than spec.mappings", *c.id())}
}

func (c *baseConnection) drift() []string {
	return []string{fmt.Sprintf("base connection %s holds params from an older version of the credential's Secret", *c.id())}
}
