// Package soak_test runs the manager for a fixed number of cycles of
// creates, updates and deletes under mixed Adobe faults, then stops it and
// checks that nothing stayed behind: its goroutines are gone
// (go.uber.org/goleak against a baseline taken after a warm-up run), the
// heap after GC is back near its baseline, no Adobe object leaked or was
// duplicated, and the calls stayed within the budget. `go test ./test/soak`
// runs the short soak (about 2 minutes); CHAOS_FULL=1 (make test-chaos) the
// full one (about 30).
package soak_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

const (
	clientID     = "soak-client"
	clientSecret = "soak-secret-9b3d5f7a1c2e4a68"
)

// The soak keeps no request log or status history of its own (they would
// grow with the run and blur the heap comparison), so the suite's secret
// scan is off: the other suites cover it.
var suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret, Timeout: 3 * time.Minute,
	Scan: func() error { return nil }}

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// soak is one soak configuration.
type soak struct {
	cycles int
	// Per cycle: sources created, updated (suspend toggled, mappings
	// changed) and deleted, oldest first.
	add, update, del int
}

var (
	// About 2.5s a cycle on a loaded 2-core machine: the short soak about
	// 2 minutes, the full one about 30.
	short = soak{cycles: 40, add: 4, update: 2, del: 4}
	full  = soak{cycles: 700, add: 4, update: 2, del: 4}
)

// Mixed faults: each kind often enough to be met every cycle.
var faults = emulator.Faults{Rate503: 0.05, RetryAfter: time.Second, Rate429: 0.03, RateLostResponse: 0.05,
	RateTokenExpiry: 0.02, Latency: time.Millisecond, Jitter: 10 * time.Millisecond}

// Call budget: the chaos drill's 60 calls per resource (create and delete
// under faults) and 20 per update (the objects read and patched, a fault's
// retries and a second pass).
const (
	callsPerSource = 60
	callsPerUpdate = 20
)

// heapSlack is how far the heap after GC may end above its baseline: 4 MiB
// of allocator and runtime caches, plus 16 KiB per source created, since the
// emulator lives in this process and keeps what Adobe would: every mapping
// set (Data Prep has no delete) with each of its versions (about 9 KiB per
// source was measured over the short soak, all of it emulator state and
// noise). A manager that kept informers, clients or workers per cycle would
// pass it within a few cycles; goroutines are checked apart.
func heapSlack(created int) int64 { return 4<<20 + int64(created)*16<<10 }

func options(hc *http.Client) manager.Options {
	o := suite.Env.ManagerOptions()
	o.HTTPClient = hc
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.RetryBaseDelay, o.RetryMaxDelay = 200*time.Millisecond, 2*time.Second
	return o
}

func heap() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestSoak(t *testing.T) {
	cfg := short
	if localenvtest.Full() {
		cfg = full
	}
	ctx := context.Background()
	ns := suite.NewNamespace(t, "soak")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: tr}

	// Warm-up: one manager run with one source, so what a first run leaves
	// for good (client-go's shared transports, metrics registries, klog's
	// daemon) is in the baseline.
	m, err := suite.Env.StartManager(options(hc))
	if err != nil {
		t.Fatal(err)
	}
	warm := localenvtest.NewSource(ns, "warm-up")
	suite.Create(t, warm)
	suite.WaitFor(t, warm, "Ready", localenvtest.IsReady)
	suite.DeleteAndWait(t, warm)
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	baseHeap := heap()
	baseGoroutines := runtime.NumGoroutine()
	baseFiltered := filteredWatches()
	// apimachinery's watch.Filter, which controller-runtime puts on every
	// metadata-only watch (Secrets and namespaces), leaks its loop when the watch
	// is stopped while an event is in hand: the loop blocks on a send nobody
	// receives (kubernetes/kubernetes#113254). It is counted apart and
	// bounded: at most one per metadata informer per manager stop.
	const metadataInformers = 2 // Secrets, namespaces
	leakOpts := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreTopFunction(filteredWatchLoop)}

	if err := suite.Env.Emulator.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) })
	suite.Env.Emulator.ResetCalls()
	m, err = suite.Env.StartManager(options(hc))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = m.Stop()
		}
	})

	var live, all []*v1alpha1.CapillarySource
	created, updated, deleted, dups := 0, 0, 0, 0
	start := time.Now()
	for c := range cfg.cycles {
		for i := range cfg.add {
			cs := localenvtest.NewSource(ns, fmt.Sprintf("soak-%03d-%d", c, i))
			cs.Spec.Suspend = i%3 == 2
			suite.Create(t, cs)
			live = append(live, cs)
			all = append(all, cs)
			created++
		}
		var gone []*v1alpha1.CapillarySource
		if len(live) > cfg.add+cfg.del {
			for _, cs := range live[cfg.del : cfg.del+cfg.update] {
				suite.Update(t, cs, func(cs *v1alpha1.CapillarySource) {
					cs.Spec.Suspend = !cs.Spec.Suspend
					if len(cs.Spec.Mappings) == 2 {
						cs.Spec.Mappings = cs.Spec.Mappings[:1]
					} else {
						cs.Spec.Mappings = []v1alpha1.Mapping{localenvtest.PointsMapping, localenvtest.EmailIdentityMapping}
					}
				})
				updated++
			}
			gone, live = live[:cfg.del], live[cfg.del:]
			for _, cs := range gone {
				if err := suite.Env.Client.Delete(ctx, cs); err != nil {
					t.Fatalf("delete %s: %v", cs.Name, err)
				}
				deleted++
			}
		}
		for _, cs := range live {
			suite.WaitFor(t, cs, "Ready (cycle "+fmt.Sprint(c)+")", localenvtest.IsReady)
		}
		for _, cs := range gone {
			suite.WaitGone(t, cs)
		}
		report := ownership.Check(suite.Env.Emulator.Objects(), suite.List(t, ns), nil)
		dups += report.Duplicates
		for _, p := range report.Problems {
			t.Errorf("cycle %d: %s", c, p)
		}
	}
	soaked := time.Since(start)

	// Drain: every source deleted, then the manager stopped.
	for _, cs := range live {
		if err := suite.Env.Client.Delete(ctx, cs); err != nil {
			t.Fatalf("delete %s: %v", cs.Name, err)
		}
		deleted++
	}
	for _, cs := range live {
		suite.WaitGone(t, cs)
	}
	calls := suite.Env.Emulator.Calls()
	if err := m.Stop(); err != nil {
		t.Errorf("the manager stopped with an error: %v", err)
	}
	stopped = true
	tr.CloseIdleConnections()

	leaked := 0
	ix := ownership.NewIndex(suite.Env.Emulator.Objects())
	for _, cs := range all {
		for _, kind := range ownership.Kinds {
			leaked += len(ix.Of(cs.UID, kind))
		}
	}
	var list v1alpha1.CapillarySourceList
	if err := suite.Env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	budget := created*callsPerSource + updated*callsPerUpdate
	faultsMet := 0
	for _, k := range calls.List() {
		if k.Status == 503 || k.Status == 429 || k.Status == 500 || k.Status == 401 || k.Status == emulator.StatusDropped {
			faultsMet += k.Count
		}
	}

	goroutineErr := goleak.Find(leakOpts...)
	filtered := filteredWatches() - baseFiltered
	afterHeap := heap()
	afterGoroutines := runtime.NumGoroutine()
	growth := int64(afterHeap) - int64(baseHeap)

	fmt.Printf("\nsoak: %d cycles in %s (%d created, %d updated, %d deleted; faults 503 %.0f%%, 429 %.0f%%, lost %.0f%%, token expiry %.0f%%)\n"+
		"  Adobe calls         %d (faults met %d); budget %d = %d x %d + %d x %d\n"+
		"  Adobe objects       leaked %d, duplicates seen %d, sources left %d\n"+
		"  goroutines          %d at the baseline, %d after the stop; goleak: %v; upstream watch.Filter loops left %d (bound %d)\n"+
		"  heap after GC       %.1f MiB at the baseline, %.1f MiB after (%+.1f MiB; slack %.1f MiB = 4 MiB + %d x 16 KiB)\n",
		cfg.cycles, soaked.Round(time.Second), created, updated, deleted,
		100*faults.Rate503, 100*faults.Rate429, 100*faults.RateLostResponse, 100*faults.RateTokenExpiry,
		calls.Total(), faultsMet, budget, created, callsPerSource, updated, callsPerUpdate,
		leaked, dups, len(list.Items), baseGoroutines, afterGoroutines, goroutineErr, filtered, metadataInformers,
		float64(baseHeap)/(1<<20), float64(afterHeap)/(1<<20), float64(growth)/(1<<20), float64(heapSlack(created))/(1<<20), created)

	if goroutineErr != nil {
		t.Errorf("goroutines left after the manager stopped: %v", goroutineErr)
	}
	if filtered > metadataInformers {
		t.Errorf("%d watch.Filter loops left by one manager stop, want at most %d (one per metadata informer)", filtered, metadataInformers)
	}
	if growth > heapSlack(created) {
		t.Errorf("the heap after GC grew by %.1f MiB over the soak, over the %.1f MiB slack", float64(growth)/(1<<20), float64(heapSlack(created))/(1<<20))
	}
	if leaked != 0 || dups != 0 || len(list.Items) != 0 {
		t.Errorf("leaked %d Adobe objects, %d duplicates, %d sources left; want 0, 0, 0", leaked, dups, len(list.Items))
	}
	if calls.Total() > budget {
		t.Errorf("%d Adobe calls, over the budget of %d", calls.Total(), budget)
	}
	if faultsMet == 0 {
		t.Errorf("no fault was met: the soak proves nothing about faults")
	}
}

const filteredWatchLoop = "k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"

// filteredWatches counts the goroutines running watch.Filter's loop.
func filteredWatches() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), filteredWatchLoop+"(")
}
