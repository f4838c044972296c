package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

var (
	// sourceCondition is 1 for the current status of each CapillarySource's
	// Ready condition, like Flux's gotk_reconcile_condition.
	sourceCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "capillary_source_condition",
		Help: "Status of the Ready condition of each CapillarySource (1 for the current status and reason).",
	}, []string{"namespace", "name", "status", "reason"})

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
	metrics.Registry.MustRegister(sourceCondition, timeToReady, driftCorrections)
}

// readySeries remembers the label set last exported per resource, so a
// change of status or reason replaces the old series.
var readySeries sync.Map // types.NamespacedName → []string

// recordMetrics exports the Ready condition; firstReady marks the first
// successful reconcile of the resource, whatever its generation.
func recordMetrics(cs *v1alpha1.CapillarySource, firstReady bool, now time.Time) {
	ready := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil {
		return
	}
	key := types.NamespacedName{Namespace: cs.Namespace, Name: cs.Name}
	labels := []string{cs.Namespace, cs.Name, string(ready.Status), ready.Reason}
	if old, ok := readySeries.Swap(key, labels); ok {
		if prev := old.([]string); prev[2] != labels[2] || prev[3] != labels[3] {
			sourceCondition.DeleteLabelValues(prev...)
		}
	}
	sourceCondition.WithLabelValues(labels...).Set(1)
	if firstReady {
		timeToReady.Observe(now.Sub(cs.CreationTimestamp.Time).Seconds())
	}
}

func forgetMetrics(key types.NamespacedName) {
	if old, ok := readySeries.LoadAndDelete(key); ok {
		sourceCondition.DeleteLabelValues(old.([]string)...)
	}
}
