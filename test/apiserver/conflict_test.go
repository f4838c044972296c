package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// TestStatusWriteConflicts: another writer makes every status write of the
// operator conflict (409) for a while, from the middle of a convergence.
// No Adobe ID is lost: what was created meanwhile is found again by name
// afterwards, so no named object is duplicated. A mapping set has no name:
// each pass that created one and could not write its ID leaves it behind.
// They are counted and bounded: a pass after a conflict comes no sooner
// than half the conflict requeue (1s, ±50%), so over the window each source
// makes at most window/500ms + 1 passes, each leaving at most one.
func TestStatusWriteConflicts(t *testing.T) {
	n := localenvtest.Size(10, 30)
	window := localenvtest.Size(5*time.Second, 30*time.Second)
	const leastPass = 500 * time.Millisecond
	ns := suite.NewNamespace(t, "conflict")
	mappingSets := len(suite.Env.Emulator.Objects().Of(emulator.KindMappingSet))
	traffic := &kubeTraffic{}
	startOperator(t, traffic)
	sources := createSources(t, ns, n)

	localenvtest.WaitUntil(t, suite.Timeout, "a third of the sources under way", func(context.Context) (bool, error) {
		return suite.Env.Emulator.Calls().Op(emulator.OpSourceConnectionsCreate) >= n/3, nil
	})
	creates := func() int {
		c := suite.Env.Emulator.Calls()
		return c.OpStatus(emulator.OpSourceConnectionsCreate, 201) + c.OpStatus(emulator.OpTargetConnectionsCreate, 201) +
			c.OpStatus(emulator.OpMappingSetsCreate, 201) + c.OpStatus(emulator.OpFlowsCreate, 201)
	}
	createsBefore := creates()
	traffic.conflicting.Store(true)
	began := time.Now()
	time.Sleep(window)
	traffic.conflicting.Store(false)
	span := time.Since(began)
	conflicts := traffic.conflicts.Load()
	createdDuring := creates() - createsBefore

	waitAll(t, sources, "Ready", localenvtest.IsReady)
	dup, named, orphans := adobeCheck(t, ns, sources, mappingSets)
	bound := n * (int(span/leastPass) + 1)
	if conflicts == 0 {
		t.Fatalf("no status write was refused in the %s window: the scenario proves nothing", span.Round(time.Millisecond))
	}
	if dup != 0 || named != 3*n {
		t.Errorf("%d duplicates, %d named objects; want 0 and %d: an ID was lost", dup, named, 3*n)
	}
	if orphans > bound {
		t.Errorf("%d mapping sets no source names, over the bound %d = %d sources x (%s/%s + 1) passes", orphans, bound, n, span.Round(time.Millisecond), leastPass)
	}
	fmt.Printf("\nstatus writes conflicting for %s from mid-convergence: %d sources\n"+
		"  status writes refused %d; Adobe creates answered meanwhile %d\n"+
		"  named objects        %d (duplicates %d); all Ready after\n"+
		"  orphaned mapping sets %d (bound %d = %d sources x %d passes)\n",
		span.Round(time.Millisecond), n, conflicts, createdDuring, named, dup, orphans, bound, n, int(span/leastPass)+1)
}
