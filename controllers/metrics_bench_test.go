package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// staticStore is an informer's store holding the sources.
func staticStore(items []v1alpha1.CapillarySource) toolscache.Store {
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	for i := range items {
		_ = store.Add(&items[i])
	}
	return store
}

// BenchmarkScrape is one scrape of the per-source series at 5000 sources:
// its allocations are garbage the moment the scrape is served, but they
// are made at once (go test -bench Scrape -benchmem ./controllers).
func BenchmarkScrape(b *testing.B) {
	items := make([]v1alpha1.CapillarySource, 5000)
	for i := range items {
		items[i].Namespace, items[i].Name = fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("src-%d", i)
		items[i].Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Succeeded"}}
		items[i].Status.InletReadyAt = &metav1.Time{Time: time.Now()}
		items[i].Status.Ingestion = &v1alpha1.Ingestion{RecordsReceived: 3}
	}
	reg := prometheus.NewRegistry()
	c := &sourceCollector{}
	c.leader.Store(storedIn(staticStore(items)))
	reg.MustRegister(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
