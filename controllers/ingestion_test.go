package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// testClock is a clock the test moves; it starts at the real time.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Events Capillary would send for localenvtest.NewSource's mappings.
var (
	goodEvent = `{"loyalty":{"points":120},"identityMap":{"email":{"id":"ana@example.com"}}}`
	// A number where the schema has one: Adobe's mapper refuses the record.
	badEvent = `{"loyalty":{"points":"lots"},"identityMap":{"email":{"id":"ana@example.com"}}}`
)

func postEvents(t *testing.T, cs *v1alpha1.CapillarySource, body string, n int) {
	t.Helper()
	for range n {
		if code := post(t, cs.Status.InletURL, map[string]string{"x-adobe-flow-id": cs.Status.DataflowID}, []byte(body)); code != http.StatusOK {
			t.Fatalf("post an event: HTTP %d", code)
		}
	}
}

// look asks the operator for a pass (the manual trigger) and waits until it
// was handled: the resync interval is minutes, the test is seconds.
func look(t *testing.T, cs *v1alpha1.CapillarySource) *v1alpha1.CapillarySource {
	t.Helper()
	token := fmt.Sprintf("look-%d", time.Now().UnixNano())
	requestReconcile(t, cs, token)
	return suite.WaitFor(t, cs, "pass "+token, func(c *v1alpha1.CapillarySource) bool { return c.Status.LastHandledReconcileAt == token })
}

func ingestionIs(status metav1.ConditionStatus, reason string) func(*v1alpha1.CapillarySource) bool {
	return func(cs *v1alpha1.CapillarySource) bool {
		c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionIngestionHealthy)
		return c != nil && c.Status == status && c.Reason == reason
	}
}

// eventsOf counts the times an event with this reason was recorded for cs:
// a repeat folded into an existing Event's series counts too.
func eventsOf(t *testing.T, cs *v1alpha1.CapillarySource, reason string) int {
	t.Helper()
	var evs eventsv1.EventList
	if err := suite.Env.Client.List(context.Background(), &evs, client.InNamespace(cs.Namespace)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Regarding.Name == cs.Name && e.Reason == reason {
			n += max(int(e.DeprecatedCount), 1)
		}
	}
	return n
}

// Ingestion health follows Adobe's runs: no runs, healthy, failing under and
// above the threshold, recovered in a new run, suspended; and the runs are
// read only when the flow's lastRunDetails moved.
func TestIngestionHealth(t *testing.T) {
	clock := &testClock{}
	emu := startEmulator(t, func(o *emulator.Options) { o.Clock = clock.Now })
	startOperator(t, fastRetries, atEmulator(emu))
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "ingest", func(cs *v1alpha1.CapillarySource) {
		cs.Spec.Ingestion = &v1alpha1.IngestionPolicy{MaxFailedRecordsPercent: 30}
	})
	suite.Create(t, cs)
	ready := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	if !ingestionIs(metav1.ConditionUnknown, v1alpha1.ReasonNoRunsYet)(ready) {
		t.Errorf("before any event: %v, want IngestionHealthy Unknown/NoRunsYet", ready.Status.Conditions)
	}

	postEvents(t, ready, goodEvent, 4)
	got := look(t, cs)
	if got.Status.Ingestion == nil || got.Status.Ingestion.RecordsIngested != 4 || !ingestionIs(metav1.ConditionTrue, v1alpha1.ReasonRecordsIngesting)(got) {
		t.Fatalf("4 good records: %+v, %v; want 4 ingested and IngestionHealthy True", got.Status.Ingestion, got.Status.Conditions)
	}
	firstRun := got.Status.Ingestion.LastRunID

	// 1 of 5 failed: 20%, under the 30% allowed.
	postEvents(t, got, badEvent, 1)
	got = look(t, cs)
	if got.Status.Ingestion.RecordsFailed != 1 || !ingestionIs(metav1.ConditionTrue, v1alpha1.ReasonRecordsIngesting)(got) {
		t.Errorf("20%% failed, 30%% allowed: %+v, %v; want IngestionHealthy True", got.Status.Ingestion, got.Status.Conditions)
	}

	// 4 of 8 failed: 50%, above.
	postEvents(t, got, badEvent, 3)
	got = look(t, cs)
	if !ingestionIs(metav1.ConditionFalse, v1alpha1.ReasonRecordsFailing)(got) {
		t.Fatalf("50%% failed: %v, want IngestionHealthy False/RecordsFailing", got.Status.Conditions)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionIngestionHealthy)
	if len(got.Status.Ingestion.Errors) == 0 || !strings.Contains(c.Message, got.Status.Ingestion.Errors[0].Code) {
		t.Errorf("message %q does not name the top error of %+v", c.Message, got.Status.Ingestion.Errors)
	}
	if !localenvtest.IsReady(got) {
		t.Error("failing ingestion made the source unready")
	}
	if n := eventsOf(t, got, "IngestionFailing"); n != 1 {
		t.Errorf("%d IngestionFailing events, want 1", n)
	}
	// The leader's /metrics shows the same, read from the cache at scrape time.
	waitSeries(t, "capillary_source_ingestion_records", map[string]string{"namespace": ns, "name": cs.Name, "outcome": "failed"}, 4)
	waitSeries(t, "capillary_source_condition", map[string]string{"namespace": ns, "name": cs.Name, "status": "True", "reason": v1alpha1.ReasonSucceeded}, 1)

	// The budget: a pass reads the runs only when the run moved.
	before := emu.Calls()
	got = look(t, cs) // nothing moved
	postEvents(t, got, goodEvent, 2)
	got = look(t, cs) // the run moved
	after := emu.Calls()
	if runs := after.Op(emulator.OpRunsList) - before.Op(emulator.OpRunsList); runs != 1 {
		t.Errorf("%d runs reads over two passes, one of which found the run moved: want 1", runs)
	}
	if got.Status.Ingestion.RecordsReceived != 10 {
		t.Errorf("recordsReceived = %d, want 10", got.Status.Ingestion.RecordsReceived)
	}

	// A new run (the next hour) that ingests everything: recovered.
	clock.Advance(time.Hour)
	postEvents(t, got, goodEvent, 3)
	got = look(t, cs)
	if got.Status.Ingestion.LastRunID == firstRun || !ingestionIs(metav1.ConditionTrue, v1alpha1.ReasonRecordsIngesting)(got) {
		t.Errorf("a new healthy run: %+v, %v", got.Status.Ingestion, got.Status.Conditions)
	}
	if n := eventsOf(t, got, "IngestionRecovered"); n != 1 {
		t.Errorf("%d IngestionRecovered events, want 1", n)
	}

	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.Suspend = true })
	suite.WaitFor(t, cs, "suspended", ingestionIs(metav1.ConditionUnknown, v1alpha1.ReasonSuspended))
	waitSeries(t, "capillary_source_condition", map[string]string{"namespace": ns, "name": cs.Name, "status": "True", "reason": v1alpha1.ReasonSuspended}, 1)

	// A deleted source's series go with it.
	suite.DeleteAndWait(t, cs)
	waitSeries(t, "capillary_source_ingestion_records", map[string]string{"namespace": ns, "name": cs.Name, "outcome": "failed"}, -1)
	waitSeries(t, "capillary_source_condition", map[string]string{"namespace": ns, "name": cs.Name}, -1)
}

// waitSeries waits until the registry serves a series of name whose labels
// include want with value v; v < 0 waits until there is no such series.
func waitSeries(t *testing.T, name string, want map[string]string, v float64) {
	t.Helper()
	var got []float64
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		families, err := crmetrics.Registry.Gather()
		if err != nil {
			return false, err
		}
		got = nil
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		metric:
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				for k, v := range want {
					if labels[k] != v {
						continue metric
					}
				}
				got = append(got, m.GetGauge().GetValue())
			}
		}
		if v < 0 {
			return len(got) == 0, nil
		}
		return len(got) == 1 && got[0] == v, nil
	})
	if err != nil {
		t.Fatalf("%s%v: got %v, want %v (-1: none): %v", name, want, got, v, err)
	}
}

// Ready waits for the inlet's warm-up; a later mapping change restarts it
// for the new mapping without making the source unready.
func TestInletWarmup(t *testing.T) {
	const warmup = 2 * time.Second
	emu := startEmulator(t, func(o *emulator.Options) { o.InletWarmup = warmup })
	startOperator(t, fastRetries, atEmulator(emu), func(o *manager.Options) { o.InletWarmup = warmup })
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "warm")
	suite.Create(t, cs)
	warming := suite.WaitFor(t, cs, "warming up", func(c *v1alpha1.CapillarySource) bool {
		r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Reason == v1alpha1.ReasonInletWarmingUp
	})
	if warming.Status.InletReadyAt == nil || !meta.IsStatusConditionTrue(warming.Status.Conditions, v1alpha1.ConditionReconciling) {
		t.Fatalf("warming: inletReadyAt %v, conditions %v", warming.Status.InletReadyAt, warming.Status.Conditions)
	}
	ready := suite.WaitFor(t, cs, "Ready after the warm-up", localenvtest.IsReady)
	if time.Now().Before(ready.Status.InletReadyAt.Time) {
		t.Errorf("Ready before inletReadyAt %s", ready.Status.InletReadyAt)
	}
	postEvents(t, ready, goodEvent, 1)
	if recs := emu.Records(ready.Status.DataflowID); len(recs) != 1 || recs[0].Outcome != emulator.OutcomeIngested {
		t.Fatalf("an event after the warm-up: %+v, want ingested", recs)
	}

	// Mapping change: Ready holds throughout; the new mapping applies later.
	var mu sync.Mutex
	unready := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			cur := &v1alpha1.CapillarySource{}
			// The Ready condition itself (a new generation is not observed
			// yet for a moment, whatever the change).
			if err := suite.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(cs), cur); err == nil &&
				!meta.IsStatusConditionTrue(cur.Status.Conditions, v1alpha1.ConditionReady) {
				mu.Lock()
				unready++
				mu.Unlock()
			}
		}
	}()
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) {
		c.Spec.Mappings = append(c.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "tier", DestinationXdmPath: "loyalty.tier"})
	})
	changed := suite.WaitFor(t, cs, "mapping applied", func(c *v1alpha1.CapillarySource) bool {
		return c.Status.ObservedGeneration == c.Generation && c.Status.MappingAppliesAt != nil
	})
	close(stop)
	<-done
	if unready != 0 {
		t.Errorf("the source read unready %d times during a mapping change", unready)
	}
	if !changed.Status.MappingAppliesAt.After(time.Now().Add(-time.Second)) {
		t.Errorf("mappingAppliesAt %s is not after the change", changed.Status.MappingAppliesAt)
	}
}
