package reliability_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

// operatorOptions: the production defaults on the emulator, with a resync an
// hour away (nothing the scenarios count is a resync) and no pacing.
func operatorOptions() manager.Options {
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	o.ResyncInterval = time.Hour
	o.InletWarmup = 0
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.RetryBaseDelay, o.RetryMaxDelay = 200*time.Millisecond, 5*time.Second
	return o
}

// createSources makes n sources named prefix-NN in ns.
func createSources(t *testing.T, ns, prefix string, n int, opts ...func(*v1alpha1.CapillarySource)) []*v1alpha1.CapillarySource {
	t.Helper()
	out := make([]*v1alpha1.CapillarySource, 0, n)
	for i := range n {
		cs := localenvtest.NewSource(ns, fmt.Sprintf("%s-%02d", prefix, i), opts...)
		suite.Create(t, cs)
		out = append(out, cs)
	}
	return out
}

// waitAll waits until cond holds for every source, or fails with the ones
// it does not hold for.
func waitAll(t *testing.T, sources []*v1alpha1.CapillarySource, timeout time.Duration, what string, cond func(*v1alpha1.CapillarySource) bool) {
	t.Helper()
	var missing []string
	err := localenvtest.Poll(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		missing = missing[:0]
		for _, cs := range sources {
			cur := &v1alpha1.CapillarySource{}
			if err := suite.Env.Client.Get(ctx, types.NamespacedName{Namespace: cs.Namespace, Name: cs.Name}, cur); err != nil || !cond(cur) {
				missing = append(missing, describe(cs, cur))
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("%d/%d sources never became %s within %s:\n%s", len(missing), len(sources), what, timeout, strings.Join(missing, "\n"))
	}
}

func describe(cs, cur *v1alpha1.CapillarySource) string {
	var conds []string
	for _, c := range cur.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("  %s (failures %d, deleting %v): %s", cs.Name, cur.Status.Failures, cur.DeletionTimestamp != nil, strings.Join(conds, "; "))
}

// adobeObjectsOf counts the named Adobe objects (connections, dataflows) of
// the sources.
func adobeObjectsOf(sources []*v1alpha1.CapillarySource) int {
	ix := ownership.NewIndex(suite.Env.Emulator.Objects())
	n := 0
	for _, cs := range sources {
		for _, kind := range ownership.Kinds {
			n += len(ix.Of(cs.UID, kind))
		}
	}
	return n
}

// vanishAfter takes the sources' Adobe objects away when the test ends: the
// emulator outlives it, and the next run of -count=N must find Adobe as this
// one did.
func vanishAfter(t *testing.T, sources []*v1alpha1.CapillarySource) {
	t.Cleanup(func() {
		ix := ownership.NewIndex(suite.Env.Emulator.Objects())
		for _, cs := range sources {
			for _, kind := range ownership.Kinds {
				for _, o := range ix.Of(cs.UID, kind) {
					suite.Env.Emulator.Vanish(kind, o.ID)
				}
			}
		}
	})
}
