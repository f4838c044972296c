package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// The per-source series come from each source's status as it stands.
func TestUnitSourceCollector(t *testing.T) {
	at := func(unix int64) *metav1.Time { return &metav1.Time{Time: time.Unix(unix, 0)} }
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{
			{Type: v1alpha1.ConditionDataflowReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded},
			{Type: v1alpha1.ConditionReady, Status: status, Reason: reason},
		}
	}
	source := func(name string, st v1alpha1.CapillarySourceStatus) *v1alpha1.CapillarySource {
		return &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}, Status: st}
	}
	cases := map[string]struct {
		sources []client.Object
		want    string
	}{
		"no sources, no series": {},
		"new, no condition yet: nothing": {
			sources: []client.Object{source("new", v1alpha1.CapillarySourceStatus{})},
		},
		"ready, no runs: the condition and the inlet's ready time": {
			sources: []client.Object{source("a", v1alpha1.CapillarySourceStatus{
				Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded), InletReadyAt: at(1000)})},
			want: `
capillary_source_condition{name="a",namespace="team-a",reason="Succeeded",status="True"} 1
capillary_source_ingestion_last_activity_timestamp_seconds{name="a",namespace="team-a"} 1000
`,
		},
		"ingesting: the counts and the run's completion": {
			sources: []client.Object{source("b", v1alpha1.CapillarySourceStatus{
				Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded), InletReadyAt: at(1000),
				Ingestion: &v1alpha1.Ingestion{LastRunID: "run-1", LastRunCompletedAt: &metav1.MicroTime{Time: time.Unix(2000, 0)},
					RecordsReceived: 10, RecordsIngested: 6, RecordsFailed: 4, RecordsWithWarnings: 1}})},
			want: `
capillary_source_condition{name="b",namespace="team-a",reason="Succeeded",status="True"} 1
capillary_source_ingestion_last_activity_timestamp_seconds{name="b",namespace="team-a"} 2000
capillary_source_ingestion_records{name="b",namespace="team-a",outcome="failed"} 4
capillary_source_ingestion_records{name="b",namespace="team-a",outcome="ingested"} 6
capillary_source_ingestion_records{name="b",namespace="team-a",outcome="received"} 10
capillary_source_ingestion_records{name="b",namespace="team-a",outcome="warnings"} 1
`,
		},
		"stalled, never ingested: the condition alone": {
			sources: []client.Object{source("c", v1alpha1.CapillarySourceStatus{
				Conditions: ready(metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)})},
			want: `
capillary_source_condition{name="c",namespace="team-a",reason="SecretNotFound",status="False"} 1
`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			_ = v1alpha1.AddToScheme(scheme)
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.sources...).
				WithStatusSubresource(&v1alpha1.CapillarySource{}).Build()
			want := ""
			if tc.want != "" {
				want = `
# HELP capillary_source_condition Status of the Ready condition of each CapillarySource (1 for the current status and reason).
# TYPE capillary_source_condition gauge
# HELP capillary_source_ingestion_last_activity_timestamp_seconds When each CapillarySource's latest run last moved (its completedAtUTC), or, before any run, when its inlet became ready: the clock of the no-runs alert.
# TYPE capillary_source_ingestion_last_activity_timestamp_seconds gauge
# HELP capillary_source_ingestion_records Records of the latest run of each CapillarySource's dataflow, by outcome (received, ingested, failed, warnings).
# TYPE capillary_source_ingestion_records gauge
` + tc.want
			}
			if err := testutil.CollectAndCompare(collectorOf(c), strings.NewReader(want)); err != nil {
				t.Error(err)
			}
		})
	}
}

// A cache that cannot be read fails the scrape rather than showing no
// sources.
func TestUnitSourceCollectorReadError(t *testing.T) {
	_, err := testutil.CollectAndLint(collectorOf(failingReader{}))
	if err == nil {
		t.Fatal("a failed read gave a clean scrape")
	}
}

// A replica that does not lead serves no per-source series.
func TestUnitSourceCollectorNotLeading(t *testing.T) {
	if n := testutil.CollectAndCount(&sourceCollector{}); n != 0 {
		t.Errorf("%d series from a replica that does not lead", n)
	}
}

func collectorOf(r client.Reader) *sourceCollector {
	c := &sourceCollector{}
	c.leader.Store(listedBy(r))
	return c
}

type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("cache not started")
}
