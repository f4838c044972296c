package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

func operatorOptions() manager.Options {
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	o.ResyncInterval = time.Hour
	o.InletWarmup = 0
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.RetryBaseDelay, o.RetryMaxDelay = 200*time.Millisecond, 5*time.Second
	return o
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// kubeTraffic wraps the operator's requests to the API server: it counts
// the lists of CapillarySources (a reflector lists again after a 410; with
// client-go's watch-list a list is a watch with sendInitialEvents) and,
// while conflicting is set, answers 409 to every status write.
type kubeTraffic struct {
	lists       atomic.Int64
	conflicting atomic.Bool
	conflicts   atomic.Int64
}

func (k *kubeTraffic) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		p := req.URL.Path
		q := req.URL.Query()
		// A list, or a watch that starts with one (client-go's watch-list).
		if req.Method == http.MethodGet && strings.HasSuffix(p, "/capillarysources") && (q.Get("watch") == "" || q.Get("sendInitialEvents") == "true") {
			k.lists.Add(1)
		}
		if k.conflicting.Load() && strings.HasSuffix(p, "/status") && strings.Contains(p, "/capillarysources/") &&
			(req.Method == http.MethodPatch || req.Method == http.MethodPut) {
			k.conflicts.Add(1)
			body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Operation cannot be fulfilled: the object has been modified (another writer)","reason":"Conflict","code":409}`
			return &http.Response{StatusCode: http.StatusConflict, Status: "409 Conflict", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}}, Body: ioNopCloser(body), Request: req}, nil
		}
		return rt.RoundTrip(req)
	})
}

// startOperator runs the operator through traffic until the test ends.
func startOperator(t *testing.T, traffic *kubeTraffic) *localenv.Manager {
	t.Helper()
	cfg := rest.CopyConfig(suite.Env.Config)
	cfg.Wrap(traffic.wrap)
	m, err := suite.Env.StartManagerWithConfig(cfg, operatorOptions())
	if err != nil {
		t.Fatalf("start operator: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	})
	return m
}

func createSources(t *testing.T, ns string, n int) []*v1alpha1.CapillarySource {
	t.Helper()
	out := make([]*v1alpha1.CapillarySource, 0, n)
	for i := range n {
		cs := localenvtest.NewSource(ns, fmt.Sprintf("src-%02d", i))
		suite.Create(t, cs)
		out = append(out, cs)
	}
	t.Cleanup(func() {
		ix := ownership.NewIndex(suite.Env.Emulator.Objects())
		for _, cs := range out {
			for _, kind := range ownership.Kinds {
				for _, o := range ix.Of(cs.UID, kind) {
					suite.Env.Emulator.Vanish(kind, o.ID)
				}
			}
		}
	})
	return out
}

// waitAll waits until cond holds for every source (gone ones count when
// cond is nil: it then waits until every one is gone).
func waitAll(t *testing.T, sources []*v1alpha1.CapillarySource, what string, cond func(*v1alpha1.CapillarySource) bool) {
	t.Helper()
	var missing []string
	err := localenvtest.Poll(context.Background(), suite.Timeout, func(ctx context.Context) (bool, error) {
		missing = missing[:0]
		for _, cs := range sources {
			cur := &v1alpha1.CapillarySource{}
			err := suite.Env.Client.Get(ctx, types.NamespacedName{Namespace: cs.Namespace, Name: cs.Name}, cur)
			switch {
			case cond == nil && err != nil && strings.Contains(err.Error(), "not found"):
			case err != nil || cond == nil || !cond(cur):
				missing = append(missing, describe(cs, cur))
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("%d/%d sources never became %s within %s:\n%s", len(missing), len(sources), what, suite.Timeout, strings.Join(missing, "\n"))
	}
}

func describe(cs, cur *v1alpha1.CapillarySource) string {
	var conds []string
	for _, c := range cur.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("  %s (failures %d, deleting %v): %s", cs.Name, cur.Status.Failures, cur.DeletionTimestamp != nil, strings.Join(conds, "; "))
}

// adobeCheck counts the duplicates among the sources' named objects, the
// named objects left, and the mapping sets no source names (a mapping set has
// no name to be found again by) among those made since before.
func adobeCheck(t *testing.T, ns string, sources []*v1alpha1.CapillarySource, mappingSetsBefore int) (duplicates, named, orphanMappingSets int) {
	t.Helper()
	snap := suite.Env.Emulator.Objects()
	ix := ownership.NewIndex(snap)
	for _, cs := range sources {
		for _, kind := range ownership.Kinds {
			objs := len(ix.Of(cs.UID, kind))
			named += objs
			duplicates += max(objs-1, 0)
		}
	}
	referenced := 0
	for _, cs := range suite.List(t, ns) {
		if cs.Status.MappingSetID != "" {
			if _, ok := snap.Find(emulator.KindMappingSet, cs.Status.MappingSetID); ok {
				referenced++
			}
		}
	}
	orphanMappingSets = len(snap.Of(emulator.KindMappingSet)) - mappingSetsBefore - referenced
	return duplicates, named, orphanMappingSets
}

func ioNopCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
