package controllers_test

import (
	"strings"
	"testing"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

func TestCreateToReady(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "loyalty")
	suite.Create(t, cs)

	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	st := got.Status
	if st.SourceConnectionID == "" || st.TargetConnectionID == "" || st.MappingSetID == "" || st.DataflowID == "" {
		t.Fatalf("status lacks IDs: %+v", st)
	}
	if !strings.HasPrefix(st.InletURL, suite.Env.AdobeURL+"/collection/") {
		t.Errorf("inletUrl = %q, want one on the emulator", st.InletURL)
	}
	if st.DataflowState != "enabled" {
		t.Errorf("dataflowState = %q, want enabled", st.DataflowState)
	}
	for _, kind := range []emulator.Kind{emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindFlow} {
		if n := len(objectsOf(kind, got)); n != 1 {
			t.Errorf("%d %s objects in Adobe, want 1", n, kind)
		}
	}
	for _, c := range []string{v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
		for _, cond := range st.Conditions {
			if cond.Type == c {
				t.Errorf("condition %s present on a Ready resource: %+v", c, cond)
			}
		}
	}
}
