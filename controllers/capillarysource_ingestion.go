package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// DefaultInletWarmup is how long a new or updated streaming dataflow needs
// before its inlet ingests: "about five minutes"
// (help/sources/tutorials/api/create/streaming/http.md).
const DefaultInletWarmup = 5 * time.Minute

// maxIngestionErrors bounds status.ingestion.errors.
const maxIngestionErrors = 5

var (
	ingestionRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capillary_ingestion_runs_total",
		Help: "Dataflow runs the operator has seen, by their state when first seen.",
	}, []string{"state"})
)

func init() {
	metrics.Registry.MustRegister(ingestionRuns)
}

// observeIngestion reports whether Capillary's records land in the dataset,
// from the latest run of the dataflow. The flow the dataflow step read
// carries lastRunDetails, so a resync reads /runs only when a new run began
// or the open one moved on; nothing changed in Adobe costs nothing more.
// It never fails the reconcile: ingestion health does not change Ready.
func (r *CapillarySourceReconciler) observeIngestion(ctx context.Context, s *scope) error {
	cs, flow := s.cs, s.flow
	if flow == nil {
		return nil
	}
	const cond = v1alpha1.ConditionIngestionHealthy
	if cs.Spec.Suspend {
		s.set(cond, metav1.ConditionUnknown, v1alpha1.ReasonSuspended, "The dataflow is disabled (spec.suspend): nothing is ingested")
		return nil
	}
	last := flow.LastRunDetails
	if last == nil || last.ID == "" {
		s.set(cond, metav1.ConditionUnknown, v1alpha1.ReasonNoRunsYet,
			"No run yet: nothing has been ingested; Capillary sends its events to status.inletUrl")
		return nil
	}
	if runMoved(cs.Status.Ingestion, last) {
		runs, err := s.adobe.ListRuns(ctx, flow.ID)
		if err != nil {
			logf.FromContext(ctx).Info("could not read the dataflow's runs", "error", err.Error())
			s.set(cond, metav1.ConditionUnknown, v1alpha1.ReasonRunsUnavailable,
				"Could not read the dataflow's runs from Adobe; trying again at the next resync")
			return nil
		}
		run := latestRun(runs, last.ID)
		if run == nil {
			s.set(cond, metav1.ConditionUnknown, v1alpha1.ReasonRunsUnavailable,
				"Adobe lists no run "+last.ID+" for the dataflow yet; trying again at the next resync")
			return nil
		}
		if cs.Status.Ingestion == nil || cs.Status.Ingestion.LastRunID != run.ID {
			ingestionRuns.WithLabelValues(runState(run, last)).Inc()
		}
		cs.Status.Ingestion = ingestionOf(run, last)
	}
	r.judgeIngestion(s)
	return nil
}

// runMoved: a new run, or the open one completed later than status says.
func runMoved(ing *v1alpha1.Ingestion, last *flowservice.RunDetails) bool {
	if ing == nil || ing.LastRunID != last.ID {
		return true
	}
	return ing.LastRunCompletedAt == nil || last.CompletedAtUTC > ing.LastRunCompletedAt.UnixMilli()
}

func latestRun(runs []flowservice.Run, id string) *flowservice.Run {
	var latest *flowservice.Run
	for i := range runs {
		switch {
		case runs[i].ID == id:
			return &runs[i]
		case latest == nil || runs[i].Metrics.DurationSummary.StartedAtUTC > latest.Metrics.DurationSummary.StartedAtUTC:
			latest = &runs[i]
		}
	}
	return latest
}

func runState(run *flowservice.Run, last *flowservice.RunDetails) string {
	if st := run.Metrics.StatusSummary.Status; st != "" {
		return st
	}
	return last.State
}

func epochMillis(ms int64) *metav1.MicroTime {
	if ms <= 0 {
		return nil
	}
	t := metav1.NewMicroTime(time.UnixMilli(ms).UTC())
	return &t
}

// ingestionOf is status.ingestion for a run: its counts and its most
// frequent errors, the run's and its activities' (monitor.md).
func ingestionOf(run *flowservice.Run, last *flowservice.RunDetails) *v1alpha1.Ingestion {
	m := run.Metrics
	ing := &v1alpha1.Ingestion{
		LastRunID:           run.ID,
		LastRunState:        runState(run, last),
		LastRunStartedAt:    epochMillis(m.DurationSummary.StartedAtUTC),
		LastRunCompletedAt:  epochMillis(max(m.DurationSummary.CompletedAtUTC, last.CompletedAtUTC)),
		RecordsReceived:     m.RecordSummary.InputRecordCount,
		RecordsIngested:     m.RecordSummary.OutputRecordCount,
		RecordsFailed:       m.RecordSummary.FailedRecordCount,
		RecordsWithWarnings: m.RecordSummary.WarningRecordCount,
	}
	seen := map[string]int{}
	add := func(errs []flowservice.RunError) {
		for _, e := range errs {
			if e.Code == "" {
				continue
			}
			if i, ok := seen[e.Code]; ok {
				// The same error listed twice (the run's summary and an
				// activity's): keep the count that says most, and a message.
				ing.Errors[i].Count = max(ing.Errors[i].Count, e.Records())
				if ing.Errors[i].Message == "" {
					ing.Errors[i].Message = e.Message
				}
				continue
			}
			seen[e.Code] = len(ing.Errors)
			ing.Errors = append(ing.Errors, v1alpha1.IngestionError{Code: e.Code, Message: e.Message, Count: e.Records()})
		}
	}
	add(m.StatusSummary.Errors)
	for _, a := range run.Activities {
		add(a.StatusSummary.Errors)
		if a.StatusSummary.Extensions != nil {
			add(a.StatusSummary.Extensions.Errors)
		}
	}
	// Most frequent first; Adobe's order among equals.
	slices.SortStableFunc(ing.Errors, func(a, b v1alpha1.IngestionError) int { return cmp.Compare(b.Count, a.Count) })
	if len(ing.Errors) > maxIngestionErrors {
		ing.Errors = ing.Errors[:maxIngestionErrors]
	}
	return ing
}

// judgeIngestion sets IngestionHealthy from status.ingestion and the
// threshold and records the transition as an event (the counts are exported
// from status at scrape time: sourceCollector).
func (r *CapillarySourceReconciler) judgeIngestion(s *scope) {
	cs := s.cs
	ing := cs.Status.Ingestion
	limit := int32(0)
	if cs.Spec.Ingestion != nil {
		limit = cs.Spec.Ingestion.MaxFailedRecordsPercent
	}
	const cond = v1alpha1.ConditionIngestionHealthy
	was := meta.FindStatusCondition(s.before.Status.Conditions, cond)
	if ing.RecordsFailed > 0 && ing.RecordsFailed*100 > int64(limit)*max(ing.RecordsReceived, ing.RecordsFailed) {
		msg := fmt.Sprintf("%d of %d records failed in run %s, more than spec.ingestion.maxFailedRecordsPercent (%d%%)",
			ing.RecordsFailed, ing.RecordsReceived, ing.LastRunID, limit)
		if len(ing.Errors) > 0 {
			msg += fmt.Sprintf("; most frequent error %s: %s", ing.Errors[0].Code, likelyCause(ing.Errors[0].Code))
		}
		s.set(cond, metav1.ConditionFalse, v1alpha1.ReasonRecordsFailing, msg)
		if was == nil || was.Status != metav1.ConditionFalse {
			s.warn("IngestionFailing", "Ingest", msg)
		}
	} else {
		s.set(cond, metav1.ConditionTrue, v1alpha1.ReasonRecordsIngesting, fmt.Sprintf(
			"%d of %d records ingested in run %s", ing.RecordsIngested, ing.RecordsReceived, ing.LastRunID))
		if was != nil && was.Status == metav1.ConditionFalse {
			s.event(corev1.EventTypeNormal, "IngestionRecovered", "Ingest", fmt.Sprintf("Records land again: run %s", ing.LastRunID))
		}
	}
}

// likelyCause is what an error code's family usually means
// (help/sources/tutorials/api/monitor.md, the ingestion error pages).
func likelyCause(code string) string {
	switch c := strings.ToUpper(code); {
	case strings.HasPrefix(c, "MAPPER-"):
		return "a mapping failed: check spec.mappings against the attributes Capillary's events carry"
	case strings.Contains(c, "IDENTITY") || strings.HasPrefix(c, "IDN-"):
		return "an identity is missing or invalid: check the mappings marked identity"
	case strings.HasPrefix(c, "INGEST-"), strings.HasPrefix(c, "XDM-"):
		return "records do not fit the dataset's XDM schema: check value types and required fields against spec.target.schemaId"
	}
	return "see Adobe's monitoring page for this dataflow"
}
