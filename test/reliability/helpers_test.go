package reliability_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

// full says whether the full forms run (CHAOS_FULL=1, make test-chaos).
func full() bool { return os.Getenv("CHAOS_FULL") == "1" }

// size is the short or the full figure.
func size[T any](short, long T) T {
	if full() {
		return long
	}
	return short
}

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

// operator is the manager under test, restartable.
type operator struct {
	t    *testing.T
	opts manager.Options
	m    *localenv.Manager
}

func startOperator(t *testing.T, opts manager.Options) *operator {
	t.Helper()
	o := &operator{t: t, opts: opts}
	o.start()
	t.Cleanup(o.stop)
	return o
}

func (o *operator) start() {
	o.t.Helper()
	m, err := suite.Env.StartManager(o.opts)
	if err != nil {
		o.t.Fatalf("start operator: %v", err)
	}
	o.m = m
}

func (o *operator) stop() {
	if o.m == nil {
		return
	}
	if err := o.m.Stop(); err != nil {
		o.t.Errorf("operator stopped with an error: %v", err)
	}
	o.m = nil
}

func (o *operator) restart() {
	o.t.Helper()
	o.stop()
	o.start()
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
