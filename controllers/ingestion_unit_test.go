package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// runOf is a run as Adobe reports one.
func runOf(id string, received, ingested, failed int64, errs ...flowservice.RunError) flowservice.Run {
	return flowservice.Run{ID: id, FlowID: fakeDataflowID, Metrics: flowservice.RunMetrics{
		DurationSummary: flowservice.DurationSummary{StartedAtUTC: unitNow.Add(-time.Hour).UnixMilli(), CompletedAtUTC: unitNow.UnixMilli()},
		RecordSummary:   flowservice.RecordSummary{InputRecordCount: received, OutputRecordCount: ingested, FailedRecordCount: failed},
		StatusSummary:   flowservice.StatusSummary{Status: "success", Errors: errs},
	}}
}

// withRun makes the fake's flow report run as its last run, and /runs list it.
func withRun(h *harness, run flowservice.Run) {
	h.adobe.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
		f := h.adobe.happyFlow(id)
		f.LastRunDetails = &flowservice.RunDetails{ID: run.ID, State: "success",
			StartedAtUTC: run.Metrics.DurationSummary.StartedAtUTC, CompletedAtUTC: run.Metrics.DurationSummary.CompletedAtUTC}
		return f, nil
	}
	h.adobe.ListRunsFn = func(context.Context, string) ([]flowservice.Run, error) { return []flowservice.Run{run}, nil }
}

func TestUnitIngestionHealth(t *testing.T) {
	mapperErr := flowservice.RunError{Code: "MAPPER-3700-400", Message: "Source attribute not found", Count: 2}
	cases := map[string]struct {
		limit      int32
		run        flowservice.Run
		want       cond
		wantEvents []string
		wantInMsg  string
	}{
		"records land": {
			run:  runOf("run-1", 10, 10, 0),
			want: isTrue(v1alpha1.ReasonRecordsIngesting),
		},
		"failures above the threshold": {
			run:        runOf("run-1", 10, 8, 2, mapperErr),
			want:       isFalse(v1alpha1.ReasonRecordsFailing),
			wantEvents: []string{"Warning/IngestionFailing"},
			wantInMsg:  "MAPPER-3700-400",
		},
		"failures under the threshold": {
			limit: 20,
			run:   runOf("run-1", 10, 8, 2, mapperErr),
			want:  isTrue(v1alpha1.ReasonRecordsIngesting),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, unitSource(func(cs *v1alpha1.CapillarySource) {
				cs.Spec.Ingestion = &v1alpha1.IngestionPolicy{MaxFailedRecordsPercent: tc.limit}
			}), goodSecret())
			h.settle()
			withRun(h, tc.run)
			h.now = h.now.Add(unitResync)
			h.reconcile()
			checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow", "ListRuns"})
			cs := h.get()
			checkConditionsOf(t, cs, map[string]cond{
				v1alpha1.ConditionIngestionHealthy: tc.want,
				v1alpha1.ConditionReady:            isTrue(v1alpha1.ReasonSucceeded),
			})
			checkEvents(t, h, tc.wantEvents)
			ing := cs.Status.Ingestion
			if ing == nil || ing.LastRunID != tc.run.ID || ing.RecordsReceived != tc.run.Metrics.RecordSummary.InputRecordCount ||
				ing.RecordsFailed != tc.run.Metrics.RecordSummary.FailedRecordCount || ing.LastRunCompletedAt == nil {
				t.Fatalf("status.ingestion = %+v", ing)
			}
			if tc.wantInMsg != "" {
				for _, c := range cs.Status.Conditions {
					if c.Type == v1alpha1.ConditionIngestionHealthy && !strings.Contains(c.Message, tc.wantInMsg) {
						t.Errorf("message %q does not name %s", c.Message, tc.wantInMsg)
					}
				}
			}

			// The next resync: the same run, not moved: one read, no write, no event.
			h.adobe.ResetCalls()
			h.events = nil
			rv := cs.ResourceVersion
			h.now = h.now.Add(unitResync)
			h.reconcile()
			checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow"})
			checkEvents(t, h, nil)
			if h.get().ResourceVersion != rv {
				t.Error("a resync that found nothing new wrote status")
			}
		})
	}
}

func TestUnitIngestionRecoveryAndSuspend(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.settle()
	withRun(h, runOf("run-1", 10, 5, 5, flowservice.RunError{Code: "INGEST-1212-400", Message: "bad record"}))
	h.now = h.now.Add(unitResync)
	h.reconcile()
	checkConditionsOf(t, h.get(), map[string]cond{v1alpha1.ConditionIngestionHealthy: isFalse(v1alpha1.ReasonRecordsFailing)})

	// A new run that ingests everything: recovered, said once.
	h.events = nil
	withRun(h, runOf("run-2", 10, 10, 0))
	h.now = h.now.Add(unitResync)
	h.reconcile()
	checkConditionsOf(t, h.get(), map[string]cond{v1alpha1.ConditionIngestionHealthy: isTrue(v1alpha1.ReasonRecordsIngesting)})
	checkEvents(t, h, []string{"Normal/IngestionRecovered"})

	// Suspended: nothing is ingested, so health is unknown, not failing.
	h.edit(func(cs *v1alpha1.CapillarySource) { cs.Spec.Suspend = true; cs.Generation = 2 })
	h.reconcile()
	checkConditionsOf(t, h.get(), map[string]cond{
		v1alpha1.ConditionIngestionHealthy: {metav1.ConditionUnknown, v1alpha1.ReasonSuspended},
		v1alpha1.ConditionReady:            isTrue(v1alpha1.ReasonSuspended),
	})
}

func TestUnitIngestionRunsUnavailableKeepsReady(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.settle()
	withRun(h, runOf("run-1", 10, 10, 0))
	h.adobe.ListRunsFn = func(context.Context, string) ([]flowservice.Run, error) { return nil, adobeErr(503, "") }
	h.now = h.now.Add(unitResync)
	res := h.reconcile()
	checkConditionsOf(t, h.get(), map[string]cond{
		v1alpha1.ConditionIngestionHealthy: {metav1.ConditionUnknown, v1alpha1.ReasonRunsUnavailable},
		v1alpha1.ConditionReady:            isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionReconciling:      {},
	})
	lo, hi := resyncBounds(unitResync)
	within(t, "RequeueAfter", res.RequeueAfter, lo, hi)
}

func TestUnitInletWarmup(t *testing.T) {
	const warmup = 5 * time.Minute
	h := newHarness(t, unitSource(), goodSecret())
	h.r.InletWarmup = warmup
	created := unitNow
	h.adobe.GetFlowFn = func(_ context.Context, id string) (*flowservice.Flow, error) {
		f := h.adobe.happyFlow(id)
		f.CreatedAt = created.UnixMilli()
		return f, nil
	}
	res := h.reconcile()
	cs := h.get()
	checkConditionsOf(t, cs, map[string]cond{
		v1alpha1.ConditionReady:         isFalse(v1alpha1.ReasonInletWarmingUp),
		v1alpha1.ConditionReconciling:   isTrue(v1alpha1.ReasonInletWarmingUp),
		v1alpha1.ConditionDataflowReady: isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionStalled:       {},
	})
	if cs.Status.InletReadyAt == nil || !cs.Status.InletReadyAt.Time.Equal(created.Add(warmup)) {
		t.Errorf("inletReadyAt = %v, want %v", cs.Status.InletReadyAt, created.Add(warmup))
	}
	if cs.Status.ObservedGeneration != cs.Generation {
		t.Error("a source that only waits for its inlet has not been observed")
	}
	within(t, "RequeueAfter", res.RequeueAfter, warmup, warmup+2*time.Second)

	// The warm-up ends: Ready, with the one read a settled source costs.
	h.adobe.ResetCalls()
	h.now = created.Add(warmup)
	h.reconcile()
	checkCalls(t, h.adobe, []string{"CheckCredentials", "GetFlow"})
	checkConditionsOf(t, h.get(), map[string]cond{
		v1alpha1.ConditionReady:       isTrue(v1alpha1.ReasonSucceeded),
		v1alpha1.ConditionReconciling: {},
	})

	// A mapping change restarts the warm-up for the new mapping, and the
	// source stays Ready: its inlet keeps accepting.
	h.edit(func(cs *v1alpha1.CapillarySource) {
		cs.Spec.Mappings = append(cs.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "tier", DestinationXdmPath: "loyalty.tier"})
		cs.Generation = 2
	})
	h.now = h.now.Add(time.Minute)
	h.reconcile()
	cs = h.get()
	checkConditionsOf(t, cs, map[string]cond{v1alpha1.ConditionReady: isTrue(v1alpha1.ReasonSucceeded)})
	if cs.Status.MappingAppliesAt == nil || !cs.Status.MappingAppliesAt.Time.Equal(h.now.Add(warmup)) {
		t.Errorf("mappingAppliesAt = %v, want %v", cs.Status.MappingAppliesAt, h.now.Add(warmup))
	}
}
