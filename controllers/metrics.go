package controllers

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

var (
	timeToReady = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "capillary_source_time_to_ready_seconds",
		Help:    "Time from a CapillarySource's creation to its first Ready.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
	})

	driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capillary_drift_corrections_total",
		Help: "Adobe objects found changed or deleted out of band and put back, by kind.",
	}, []string{"kind"})
)

func init() {
	metrics.Registry.MustRegister(timeToReady, driftCorrections)
}

// recordMetrics observes the time to the first Ready; firstReady marks the
// first successful reconcile of the resource, whatever its generation.
func recordMetrics(cs *v1alpha1.CapillarySource, firstReady bool, now time.Time) {
	if firstReady && meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady) != nil {
		timeToReady.Observe(now.Sub(cs.CreationTimestamp.Time).Seconds())
	}
}

// The per-source series are read from the informer cache at scrape time, as
// kube-state-metrics does, rather than kept in gauge vectors: six series a
// source held ~7 MB at 5000 sources between scrapes (docs/performance.md),
// and a deleted source's series go with it, with nothing to forget.
var (
	// Like Flux's gotk_reconcile_condition.
	sourceConditionDesc = prometheus.NewDesc("capillary_source_condition",
		"Status of the Ready condition of each CapillarySource (1 for the current status and reason).",
		[]string{"namespace", "name", "status", "reason"}, nil)
	ingestionRecordsDesc = prometheus.NewDesc("capillary_source_ingestion_records",
		"Records of the latest run of each CapillarySource's dataflow, by outcome (received, ingested, failed, warnings).",
		[]string{"namespace", "name", "outcome"}, nil)
	ingestionActivityDesc = prometheus.NewDesc("capillary_source_ingestion_last_activity_timestamp_seconds",
		"When each CapillarySource's latest run last moved (its completedAtUTC), or, before any run, when its inlet became ready: the clock of the no-runs alert.",
		[]string{"namespace", "name"}, nil)
)

// scrapeTimeout bounds the cache read of one scrape.
const scrapeTimeout = 10 * time.Second

// sourceCollector exports each CapillarySource's Ready condition and
// ingestion figures from its status.
type sourceCollector struct {
	reader client.Reader
}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourceConditionDesc
	ch <- ingestionRecordsDesc
	ch <- ingestionActivityDesc
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var list v1alpha1.CapillarySourceList
	// Read-only: the cached objects themselves, not 5000 copies a scrape.
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		for _, d := range []*prometheus.Desc{sourceConditionDesc, ingestionRecordsDesc, ingestionActivityDesc} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	for i := range list.Items {
		collectSource(ch, &list.Items[i])
	}
}

func collectSource(ch chan<- prometheus.Metric, cs *v1alpha1.CapillarySource) {
	ns, name := cs.Namespace, cs.Name
	if ready := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady); ready != nil {
		ch <- prometheus.MustNewConstMetric(sourceConditionDesc, prometheus.GaugeValue, 1, ns, name, string(ready.Status), ready.Reason)
	}
	ing := cs.Status.Ingestion
	if ing != nil {
		for _, o := range []struct {
			outcome string
			v       int64
		}{{"received", ing.RecordsReceived}, {"ingested", ing.RecordsIngested}, {"failed", ing.RecordsFailed}, {"warnings", ing.RecordsWithWarnings}} {
			ch <- prometheus.MustNewConstMetric(ingestionRecordsDesc, prometheus.GaugeValue, float64(o.v), ns, name, o.outcome)
		}
	}
	switch {
	case ing != nil && ing.LastRunCompletedAt != nil:
		ch <- prometheus.MustNewConstMetric(ingestionActivityDesc, prometheus.GaugeValue, float64(ing.LastRunCompletedAt.Unix()), ns, name)
	case cs.Status.InletReadyAt != nil:
		ch <- prometheus.MustNewConstMetric(ingestionActivityDesc, prometheus.GaugeValue, float64(cs.Status.InletReadyAt.Unix()), ns, name)
	}
}

// sourceMetrics serves the per-source series while this replica leads (a
// standby's cache would repeat them): a runnable that needs leader
// election registers the collector and removes it when the manager stops.
// A second manager in one process (tests) finds it registered and serves
// none of its own.
type sourceMetrics struct {
	reader client.Reader
}

var _ manager.LeaderElectionRunnable = sourceMetrics{}

func (sourceMetrics) NeedLeaderElection() bool { return true }

func (m sourceMetrics) Start(ctx context.Context) error {
	c := sourceCollector{reader: m.reader}
	if err := metrics.Registry.Register(c); err != nil {
		if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
			logf.FromContext(ctx).V(1).Info("per-source metrics are served by another manager in this process")
			return nil
		}
		return err
	}
	<-ctx.Done()
	metrics.Registry.Unregister(c)
	return nil
}
