package controllers

import (
	"context"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// A cold create writes to the API server: the finalizer, the create marker
// (createStartedAt) before the first Adobe create, the mapping set's ID at
// once (Adobe cannot find a mapping set by name after a crash), the final
// status, and one event naming every object created (issue 15: at most 4
// writes without a mapping set, 5 with one).
func TestUnitColdCreateWrites(t *testing.T) {
	cases := map[string]struct {
		mutate                    func(*v1alpha1.CapillarySource)
		wantUpdates, wantPatches  int32
		wantEvents                []string
		wantObjectsNamedInCreated int
	}{
		"with mappings":    {wantUpdates: 1, wantPatches: 3, wantEvents: []string{"Normal/Created"}, wantObjectsNamedInCreated: 4},
		"without mappings": {mutate: func(cs *v1alpha1.CapillarySource) { cs.Spec.Mappings = nil }, wantUpdates: 1, wantPatches: 2, wantEvents: []string{"Normal/Created"}, wantObjectsNamedInCreated: 3},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := unitSource()
			if tc.mutate != nil {
				tc.mutate(src)
			}
			var updates, patches atomic.Int32
			h := newHarnessIntercepted(t, interceptor.Funcs{
				// The finalizer: one write to the object itself, whatever the verb.
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					updates.Add(1)
					return c.Update(ctx, obj, opts...)
				},
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
					updates.Add(1)
					return c.Patch(ctx, obj, patch, opts...)
				},
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
					patches.Add(1)
					return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
				},
			}, src, goodSecret())
			h.reconcile()
			got := h.get()
			if got.Status.DataflowID == "" || !isReadyFor(got, v1alpha1.ReasonSucceeded) {
				t.Fatalf("not Ready after one pass: %+v", got.Status)
			}
			if updates.Load() != tc.wantUpdates || patches.Load() != tc.wantPatches {
				t.Errorf("%d writes of the object and %d status patches, want %d and %d", updates.Load(), patches.Load(), tc.wantUpdates, tc.wantPatches)
			}
			checkEvents(t, h, tc.wantEvents)
			if len(h.eventNotes) == 1 {
				if n := countNamed(h.eventNotes[0]); n != tc.wantObjectsNamedInCreated {
					t.Errorf("Created event names %d objects, want %d: %q", n, tc.wantObjectsNamedInCreated, h.eventNotes[0])
				}
			}
		})
	}
}

func countNamed(note string) int {
	n := 1
	for _, c := range note {
		if c == ',' {
			n++
		}
	}
	return n
}

// After a restart (a new reconciler), a settled source's first reconcile
// makes no Adobe call and no write and comes back within one resync
// interval; the next one checks it as usual. A source with something to do
// goes ahead at once.
func TestUnitRestartSpread(t *testing.T) {
	cases := map[string]struct {
		mutate     func(*v1alpha1.CapillarySource)
		wantSpread bool
	}{
		"settled":      {wantSpread: true},
		"spec changed": {mutate: func(cs *v1alpha1.CapillarySource) { cs.Generation++ }},
		"reconcile requested": {mutate: func(cs *v1alpha1.CapillarySource) {
			cs.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "now"}
		}},
		"failing":               {mutate: func(cs *v1alpha1.CapillarySource) { cs.Status.Failures = 1 }},
		"no dataflow on record": {mutate: func(cs *v1alpha1.CapillarySource) { cs.Status.DataflowID = "" }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, unitSource(), goodSecret())
			h.settle()
			if tc.mutate != nil {
				cs := h.get()
				tc.mutate(cs)
				st := cs.Status
				if err := h.c.Update(t.Context(), cs); err != nil {
					t.Fatal(err)
				}
				cs.Status = st
				if err := h.c.Status().Update(t.Context(), cs); err != nil {
					t.Fatal(err)
				}
			}
			// The restart: a new reconciler, with the spread on.
			var writes atomic.Int32
			h.r = &CapillarySourceReconciler{
				Client: interceptor.NewClient(h.c, interceptor.Funcs{
					Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
						writes.Add(1)
						return c.Update(ctx, obj, opts...)
					},
					SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
						writes.Add(1)
						return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
					},
				}),
				APIReader: h.r.APIReader, Recorder: h.r.Recorder, Adobe: h.r.Adobe,
				ResyncInterval: unitResync, StalledRetryInterval: unitStalled, RetryBaseDelay: unitBase, RetryMaxDelay: unitMax,
				Now: h.r.Now, RestartSpread: true,
			}
			h.now = h.now.Add(unitResync)
			res := h.reconcile()
			_, hi := resyncBounds(unitResync)
			if tc.wantSpread {
				checkCalls(t, h.adobe, nil)
				if writes.Load() != 0 {
					t.Errorf("%d writes by the spread first reconcile, want 0", writes.Load())
				}
				within(t, "RequeueAfter", res.RequeueAfter, 0, hi)
				h.reconcile()
				// A new process looks the specs up once, then reads the dataflow.
				checkCalls(t, h.adobe, []string{"CheckCredentials", "GetConnectionSpec", "FlowSpecFor", "GetFlow"})
				return
			}
			if len(h.adobe.Calls()) == 0 {
				t.Errorf("a source with work to do was put off (RequeueAfter %s)", res.RequeueAfter)
			}
		})
	}
}
