package controllers

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// observeTimeToReady observes the time to the first Ready; firstReady marks the
// first successful reconcile of the resource, whatever its generation.
func observeTimeToReady(cs *v1alpha1.CapillarySource, firstReady bool, now time.Time) {
	if firstReady && meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady) != nil {
		timeToReady.Observe(now.Sub(cs.CreationTimestamp.Time).Seconds())
	}
}

// The per-source series are read from the informer cache at scrape time, as
// kube-state-metrics does, rather than kept in gauge vectors: six series a
// source held ~12 MB at 5000 sources between scrapes (docs/performance.md),
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

// sourceSeries is registered with the process; it serves series only while
// a manager of this process leads (a standby's cache would repeat them).
var sourceSeries = &sourceCollector{}

func init() {
	metrics.Registry.MustRegister(sourceSeries)
}

// sourceCollector exports each CapillarySource's Ready condition and
// ingestion figures from its status in the leader's cache.
type sourceCollector struct {
	leader atomic.Pointer[leaderCache]
}

// leaderCache lists the leader's cached sources, read-only.
type leaderCache struct {
	sources func(context.Context) ([]*v1alpha1.CapillarySource, error)
}

// listedBy lists through a reader: the cache's List copies each object
// into the list (not deeply).
func listedBy(r client.Reader) *leaderCache {
	return &leaderCache{sources: func(ctx context.Context) ([]*v1alpha1.CapillarySource, error) {
		var list v1alpha1.CapillarySourceList
		if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		out := make([]*v1alpha1.CapillarySource, len(list.Items))
		for i := range list.Items {
			out[i] = &list.Items[i]
		}
		return out, nil
	}}
}

// storedIn lists the informer's store itself: no copy at all, where List
// would copy 800 bytes a source each scrape.
func storedIn(store toolscache.Store) *leaderCache {
	return &leaderCache{sources: func(context.Context) ([]*v1alpha1.CapillarySource, error) {
		objs := store.List()
		out := make([]*v1alpha1.CapillarySource, 0, len(objs))
		for _, o := range objs {
			if cs, ok := o.(*v1alpha1.CapillarySource); ok {
				out = append(out, cs)
			}
		}
		return out, nil
	}}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourceConditionDesc
	ch <- ingestionRecordsDesc
	ch <- ingestionActivityDesc
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	cached := c.leader.Load()
	if cached == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sources, err := cached.sources(ctx)
	if err != nil {
		for _, d := range []*prometheus.Desc{sourceConditionDesc, ingestionRecordsDesc, ingestionActivityDesc} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	pairs := labelPairs{}
	for _, cs := range sources {
		pairs.collect(ch, cs)
	}
}

// labelPairs hands out the label pairs of one scrape, each value's pair
// made once: a source's namespace and name are shared by its six series,
// a status, reason or outcome by every source. With the store read in
// place, a scrape at 5000 sources allocates 14 MB, against 27 MB with
// prometheus.MustNewConstMetric's own pairs over a listed copy
// (BenchmarkScrape). The registry treats written label pairs as immutable,
// so sharing them is safe.
type labelPairs map[[2]string]*dto.LabelPair

func (p labelPairs) get(name, value string) *dto.LabelPair {
	k := [2]string{name, value}
	if lp, ok := p[k]; ok {
		return lp
	}
	lp := &dto.LabelPair{Name: &name, Value: &value}
	p[k] = lp
	return lp
}

// collect sends one source's series. Label pairs are in the order of their
// names, as the registry expects: name, namespace, then the rest.
func (p labelPairs) collect(ch chan<- prometheus.Metric, cs *v1alpha1.CapillarySource) {
	name := &dto.LabelPair{Name: &labelName, Value: &cs.Name}
	ns := p.get("namespace", cs.Namespace)
	if ready := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady); ready != nil {
		ch <- sample{sourceConditionDesc, []*dto.LabelPair{name, ns, p.get("reason", ready.Reason), p.get("status", string(ready.Status))}, 1}
	}
	ing := cs.Status.Ingestion
	if ing != nil {
		for _, o := range []struct {
			outcome string
			v       int64
		}{{"received", ing.RecordsReceived}, {"ingested", ing.RecordsIngested}, {"failed", ing.RecordsFailed}, {"warnings", ing.RecordsWithWarnings}} {
			ch <- sample{ingestionRecordsDesc, []*dto.LabelPair{name, ns, p.get("outcome", o.outcome)}, float64(o.v)}
		}
	}
	switch {
	case ing != nil && ing.LastRunCompletedAt != nil:
		ch <- sample{ingestionActivityDesc, []*dto.LabelPair{name, ns}, float64(ing.LastRunCompletedAt.Unix())}
	case cs.Status.InletReadyAt != nil:
		ch <- sample{ingestionActivityDesc, []*dto.LabelPair{name, ns}, float64(cs.Status.InletReadyAt.Unix())}
	}
}

var labelName = "name"

// sample is one gauge series with its label pairs.
type sample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (s sample) Desc() *prometheus.Desc { return s.desc }

func (s sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	out.Gauge = &dto.Gauge{Value: &s.value}
	return nil
}

// sourceMetrics points the collector at the manager's cache while the
// manager leads: a runnable that needs leader election. In a process with
// two managers (tests), the last to lead serves.
type sourceMetrics struct {
	cache cache.Cache
}

var _ manager.LeaderElectionRunnable = sourceMetrics{}

func (sourceMetrics) NeedLeaderElection() bool { return true }

func (m sourceMetrics) Start(ctx context.Context) error {
	mine := listedBy(m.cache)
	inf, err := m.cache.GetInformer(ctx, &v1alpha1.CapillarySource{})
	if err != nil {
		return fmt.Errorf("per-source metrics: %w", err)
	}
	// controller-runtime's informers are client-go's shared informers.
	if si, ok := inf.(interface{ GetStore() toolscache.Store }); ok {
		mine = storedIn(si.GetStore())
	}
	sourceSeries.leader.Store(mine)
	<-ctx.Done()
	sourceSeries.leader.CompareAndSwap(mine, nil)
	return nil
}
