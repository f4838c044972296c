package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// downtime is how long kube-apiserver stays away each time.
const downtime = 3 * time.Second

// outage stops kube-apiserver, compacts etcd while it is away (so every
// watch resumed from before answers 410 Gone), and starts it again.
func outage(t *testing.T) int64 {
	t.Helper()
	cp := suite.Env.ControlPlane
	if err := cp.StopAPIServer(); err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	time.Sleep(downtime)
	rev, err := cp.CompactEtcd(context.Background())
	if err != nil {
		t.Fatalf("compact etcd: %v", err)
	}
	if err := cp.StartAPIServer(); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	return rev
}

// TestAPIServerRestart stops kube-apiserver in the middle of a convergence
// and again in the middle of a deletion, compacting etcd each time. Nothing
// is duplicated in Adobe, no finalizer is lost (every Adobe object of a
// deleted source is gone), everything converges once it is back, and the
// watches resumed from before the compaction recover (410 Gone, a new list).
func TestAPIServerRestart(t *testing.T) {
	n := localenvtest.Size(10, 30)
	ctx := context.Background()
	ns := suite.NewNamespace(t, "restart")
	var before v1alpha1.CapillarySourceList
	if err := suite.Env.Client.List(ctx, &before, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	mappingSets := len(suite.Env.Emulator.Objects().Of(emulator.KindMappingSet))
	traffic := &kubeTraffic{}
	startOperator(t, traffic)
	log, err := localenvtest.RecordStatus(suite.Env.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(log.Stop)

	sources := createSources(t, ns, n)
	// Mid-convergence: once a third of the sources have begun in Adobe.
	localenvtest.WaitUntil(t, suite.Timeout, "a third of the sources under way", func(context.Context) (bool, error) {
		return suite.Env.Emulator.Calls().Op(emulator.OpSourceConnectionsCreate) >= n/3, nil
	})
	ready := 0
	for _, cs := range suite.List(t, ns) {
		if localenvtest.IsReady(&cs) {
			ready++
		}
	}
	listsBefore := traffic.lists.Load()
	rev := outage(t)
	waitAll(t, sources, "Ready", localenvtest.IsReady)
	relists := traffic.lists.Load() - listsBefore

	// The API server answers 410 to a watch from before the compaction:
	// what the operator's reflectors met.
	w, err := client.NewWithWatch(suite.Env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	gone := false
	if wi, err := w.Watch(ctx, &v1alpha1.CapillarySourceList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: before.ResourceVersion}}); err != nil {
		gone = apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
	} else {
		// The first event answers: an ERROR with 410 Gone, or the watch went on.
		if ev, ok := <-wi.ResultChan(); ok {
			if st := apierrors.FromObject(ev.Object); ev.Type == "ERROR" && (apierrors.IsResourceExpired(st) || apierrors.IsGone(st)) {
				gone = true
			}
		}
		wi.Stop()
	}
	if !gone {
		t.Errorf("a watch from resource version %s, before the compaction at %d, was not answered 410 Gone", before.ResourceVersion, rev)
	}
	if relists == 0 {
		t.Errorf("the operator did not list CapillarySources again after the restart")
	}
	dup, named, orphans := adobeCheck(t, ns, sources, mappingSets)
	if dup != 0 || named != 3*n {
		t.Errorf("after converging through the restart: %d duplicates, %d named objects; want 0 and %d", dup, named, 3*n)
	}
	// A mapping set whose create answer came back while its ID could not be
	// written is left behind: at most one per source in flight at the stop.
	if orphans > n {
		t.Errorf("%d mapping sets no source names, over the bound of %d (one per source)", orphans, n)
	}

	// A new source after the restart: the watches work.
	late := localenvtest.NewSource(ns, "late")
	suite.Create(t, late)
	suite.WaitFor(t, late, "Ready", localenvtest.IsReady)
	sources = append(sources, late)
	createCleanup(t, late)

	// Mid-deletion.
	for _, cs := range sources {
		if err := suite.Env.Client.Delete(ctx, cs); err != nil {
			t.Fatalf("delete %s: %v", cs.Name, err)
		}
	}
	localenvtest.WaitUntil(t, suite.Timeout, "a third of the sources deleted", func(context.Context) (bool, error) {
		return len(suite.List(t, ns)) <= len(sources)*2/3, nil
	})
	left := len(suite.List(t, ns))
	outage(t)
	waitAll(t, sources, "gone", nil)
	_, namedAfter, _ := adobeCheck(t, ns, sources, mappingSets)
	if namedAfter != 0 {
		t.Errorf("%d Adobe objects of deleted sources left: a finalizer was lost", namedAfter)
	}
	fmt.Printf("\nkube-apiserver stopped for %s twice (etcd compacted each time)\n"+
		"  mid-convergence     at %d/%d Ready; all Ready after; duplicates %d, orphaned mapping sets %d (bound %d)\n"+
		"  watches             410 Gone from before the compaction: %v; the operator listed CapillarySources %d times after; the test's own watch relisted %d times\n"+
		"  mid-deletion        at %d/%d left; all gone after; Adobe objects left %d\n",
		downtime, ready, n, dup, orphans, n, gone, relists, log.Relists(), left, len(sources), namedAfter)
}

func createCleanup(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Cleanup(func() {
		_ = suite.Env.Client.Delete(context.Background(), cs)
	})
}
