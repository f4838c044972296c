package controllers

// Regression tests for the defects of issue 11, each written against the
// code before its fix.

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// addSource stores a second CapillarySource beside the harness's own.
func (h *harness) addSource(name string, mutate ...func(*v1alpha1.CapillarySource)) types.NamespacedName {
	h.t.Helper()
	cs := unitSource(append([]func(*v1alpha1.CapillarySource){func(cs *v1alpha1.CapillarySource) {
		cs.Name = name
		cs.UID = types.UID("uid-" + name)
	}}, mutate...)...)
	if err := h.c.Create(h.t.Context(), cs); err != nil {
		h.t.Fatal(err)
	}
	return client.ObjectKeyFromObject(cs)
}

func (h *harness) getKey(key types.NamespacedName) *v1alpha1.CapillarySource {
	h.t.Helper()
	cs := &v1alpha1.CapillarySource{}
	if err := h.c.Get(h.t.Context(), key, cs); err != nil {
		h.t.Fatalf("get %s: %v", key, err)
	}
	return cs
}

// blockedSpecLookup makes a's connection spec read wait until release is
// closed (or its ctx ends), then answer with err; entered is closed on entry.
func blockedSpecLookup(a *fakeAdobe, err error) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	a.GetConnectionSpecFn = func(ctx context.Context, id string) (*flowservice.ConnectionSpec, error) {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, err
	}
	return entered, release
}

// Defect 1: the spec lookup shared between workers was keyed by org, sandbox
// and spec only, so a credential that is not entitled decided the outcome for
// another credential's source in the same org.
func TestUnitDefectSpecLookupIsPerCredential(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	// The harness's source uses a credential that is not entitled (403);
	// the second source, in the same org and sandbox, uses an entitled one.
	unentitled := newFakeAdobe(unitSource())
	entered, release := blockedSpecLookup(unentitled, adobeErr(403, "FLOW-1003-403"))
	entitledKey := h.addSource("entitled", func(cs *v1alpha1.CapillarySource) {
		cs.Spec.CredentialsSecretRef.Name = "adobe-other"
	})
	other := unitSecret(map[string]string{"clientId": "other-client", "clientSecret": "other-secret-1234"})
	other.Name = "adobe-other"
	if err := h.c.Create(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	entitled := newFakeAdobe(h.getKey(entitledKey))
	h.conn.ConnectFn = func(creds Credentials) Adobe {
		if creds.ClientID == "other-client" {
			return entitled
		}
		return unentitled
	}

	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		_, _ = h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key})
	}()
	<-entered

	secondDone := make(chan struct{})
	go func() {
		defer close(secondDone)
		_, _ = h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: entitledKey})
	}()
	select {
	case <-secondDone:
	case <-time.After(10 * time.Second):
		t.Error("the entitled source waited for the other credential's spec lookup")
		close(release)
		<-secondDone
	}
	select {
	case <-release:
	default:
		close(release)
	}
	<-firstDone

	got := h.getKey(entitledKey)
	checkConditionsOf(t, got, map[string]cond{v1alpha1.ConditionReady: isTrue(v1alpha1.ReasonSucceeded)})
	if n := count(entitled.Calls(), "GetConnectionSpec"); n != 1 {
		t.Errorf("the entitled credential read the connection spec %d times, want 1 (its own)", n)
	}
	checkConditionsOf(t, h.get(), map[string]cond{v1alpha1.ConditionStalled: isTrue(v1alpha1.ReasonNotEntitled)})
}

// Defect 1, the waiting half: a worker that joins a shared lookup waits no
// longer than its own context, and a leader whose context ends does not end
// the lookup for the others.
func TestUnitDefectSpecLookupWaitsWithOwnContext(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	key2 := h.addSource("second")
	entered, release := make(chan struct{}), make(chan struct{})
	var calls int
	h.adobe.GetConnectionSpecFn = func(ctx context.Context, id string) (*flowservice.ConnectionSpec, error) {
		calls++
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &flowservice.ConnectionSpec{ID: id, Name: "capillary-streaming", ProviderID: fakeProviderID, Version: "1.0",
			Attributes: flowservice.ConnectionSpecAttributes{IsSource: true}}, nil
	}

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		_, _ = h.r.Reconcile(leaderCtx, ctrl.Request{NamespacedName: h.key})
	}()
	<-entered

	// A follower with a short deadline returns when its deadline passes.
	shortCtx, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	followerDone := make(chan struct{})
	go func() {
		defer close(followerDone)
		_, _ = h.r.Reconcile(shortCtx, ctrl.Request{NamespacedName: key2})
	}()
	select {
	case <-followerDone:
	case <-time.After(10 * time.Second):
		t.Error("a follower waited past its own context's deadline")
	}

	// The leader gives up; the shared lookup goes on for whoever waits.
	cancelLeader()
	<-leaderDone
	key3 := h.addSource("third")
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		_, _ = h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key3})
	}()
	close(release)
	select {
	case <-waiterDone:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never returned")
	}
	<-followerDone
	checkConditionsOf(t, h.getKey(key3), map[string]cond{v1alpha1.ConditionReady: isTrue(v1alpha1.ReasonSucceeded)})
	if calls != 1 {
		t.Errorf("connection spec read %d times, want 1 shared lookup", calls)
	}
}

func count(calls []string, method string) int {
	n := 0
	for _, c := range calls {
		if c == method {
			n++
		}
	}
	return n
}

// Defect 2: a failed Kubernetes write mid-chain is not an Adobe outage: it
// has its own reason and does not count in the Adobe backoff.
func TestUnitDefectKubernetesErrorIsNotAnAdobeOutage(t *testing.T) {
	failed := false
	funcs := interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			// The write that records the new source connection's ID fails once.
			if cs, ok := obj.(*v1alpha1.CapillarySource); ok && !failed && cs.Status.SourceConnectionID != "" {
				failed = true
				return apierrors.NewServiceUnavailable("etcdserver: request timed out")
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
	h := newHarnessIntercepted(t, funcs, unitSource(), goodSecret())
	_, err := h.r.Reconcile(t.Context(), ctrl.Request{NamespacedName: h.key})
	if !failed {
		t.Fatal("the status write was never attempted")
	}
	cs := h.get()
	checkConditionsOf(t, cs, map[string]cond{
		v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonKubernetesAPIError),
		v1alpha1.ConditionReconciling: isTrue(v1alpha1.ReasonKubernetesAPIError),
	})
	if cs.Status.Failures != 0 {
		t.Errorf("status.failures = %d after a Kubernetes error, want 0 (it is not an Adobe failure)", cs.Status.Failures)
	}
	if err == nil {
		t.Error("Reconcile returned no error: a Kubernetes error is retried by the workqueue's backoff")
	}
}

// Defect 3: a reconcile has a deadline; when it passes, status is still
// written, with its own transient reason.
func TestUnitDefectReconcileDeadline(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.r.ReconcileTimeout = 100 * time.Millisecond
	h.adobe.CreateFlowFn = func(ctx context.Context, in flowservice.FlowInput) (string, error) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Second):
			return "", errors.New("the reconcile's context had no deadline")
		}
	}
	h.reconcile()
	cs := h.get()
	checkConditionsOf(t, cs, map[string]cond{
		v1alpha1.ConditionReady:       isFalse(v1alpha1.ReasonReconcileTimeout),
		v1alpha1.ConditionReconciling: isTrue(v1alpha1.ReasonProgressingWithRetry),
		v1alpha1.ConditionStalled:     {},
	})
	// What was done before the deadline is on record.
	if cs.Status.SourceConnectionID != fakeSourceID || cs.Status.TargetConnectionID != fakeTargetID {
		t.Errorf("IDs created before the deadline are not in status: %+v", cs.Status)
	}
}

// Defect 4: the finalizer is dropped with an optimistic lock, so another
// controller's finalizer added meanwhile is not lost.
func TestUnitDefectFinalizerRemovalIsLocked(t *testing.T) {
	const other = "example.com/other-controller"
	var h *harness
	raced := false
	funcs := interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if !raced && obj.GetDeletionTimestamp() != nil {
				// Another controller adds its finalizer just before our patch.
				raced = true
				cur := &v1alpha1.CapillarySource{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
					return err
				}
				cur.Finalizers = append(cur.Finalizers, other)
				if err := c.Update(ctx, cur); err != nil {
					return err
				}
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}
	h = newHarnessIntercepted(t, funcs, unitSource(func(cs *v1alpha1.CapillarySource) {
		cs.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	}), goodSecret())
	h.settle()
	if err := h.c.Delete(t.Context(), h.get()); err != nil {
		t.Fatal(err)
	}
	_, _ = h.r.Reconcile(t.Context(), ctrl.Request{NamespacedName: h.key})
	if !raced {
		t.Fatal("the finalizer patch was never attempted")
	}
	cs, ok := h.tryGet()
	if !ok {
		t.Fatalf("the resource is gone: the other controller's finalizer %s was dropped", other)
	}
	found := false
	for _, f := range cs.Finalizers {
		found = found || f == other
	}
	if !found {
		t.Errorf("finalizers = %v: the other controller's finalizer was dropped", cs.Finalizers)
	}
}

// Defect 5: a source that never created anything (its credential is not
// entitled: every call 403) is deleted without asking Adobe.
func TestUnitDefectNeverCreatedDeletesWithoutAdobe(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	forbidden := adobeErr(403, "FLOW-1003-403")
	h.adobe.GetConnectionSpecFn = func(context.Context, string) (*flowservice.ConnectionSpec, error) { return nil, forbidden }
	h.adobe.FindFlowFn = func(context.Context, string) (*flowservice.Flow, error) { return nil, forbidden }
	h.adobe.FindSourceConnectionFn = func(context.Context, string) (*flowservice.SourceConnection, error) { return nil, forbidden }
	h.adobe.FindTargetConnectionFn = func(context.Context, string) (*flowservice.TargetConnection, error) { return nil, forbidden }
	h.reconcile()
	stalled := h.get()
	checkConditionsOf(t, stalled, map[string]cond{v1alpha1.ConditionStalled: isTrue(v1alpha1.ReasonNotEntitled)})

	// Deleted by this process, and by a restarted one that has only status to go by.
	for _, restarted := range []bool{false, true} {
		if restarted {
			h = newHarness(t, stalled, goodSecret())
			h.adobe.FindFlowFn = func(context.Context, string) (*flowservice.Flow, error) { return nil, forbidden }
		}
		h.adobe.ResetCalls()
		if err := h.c.Delete(t.Context(), h.get()); err != nil {
			t.Fatal(err)
		}
		h.reconcile()
		if cs, exists := h.tryGet(); exists {
			t.Errorf("restarted=%t: the resource stays, with %v; calls %v", restarted, conds(cs), h.adobe.Calls())
		}
		checkCalls(t, h.adobe, nil)
	}
}

// Defect 6: lastSyncTime is stamped by a resync that changed something in
// Adobe, even when status reads the same after it.
func TestUnitDefectLastSyncTimeOnResyncCorrection(t *testing.T) {
	h := newHarness(t, unitSource(), goodSecret())
	h.settle()
	h.now = h.now.Add(unitResync)
	h.adobe.GetFlowFn = func(ctx context.Context, id string) (*flowservice.Flow, error) {
		f := h.adobe.happyFlow(id)
		f.State = flowservice.StateDisabled // disabled by someone in Adobe's UI
		return f, nil
	}
	h.reconcile()
	if count(h.adobe.Calls(), "FlowAction") != 1 {
		t.Fatalf("calls %v: the resync did not re-enable the flow", h.adobe.Calls())
	}
	if got := h.get().Status.LastSyncTime; got == nil || !got.Time.Equal(h.now) {
		t.Errorf("lastSyncTime = %v, want %v (the resync changed the dataflow)", got, h.now)
	}
}

// Defect 6: the time-to-Ready histogram counts the first Ready of every
// source, also one whose spec was edited before it got there.
func TestUnitDefectTimeToReadyCountsEditedSources(t *testing.T) {
	before := histogramCount(t)
	h := newHarness(t, unitSource(func(cs *v1alpha1.CapillarySource) { cs.Generation = 2 }), goodSecret())
	h.reconcile()
	checkConditionsOf(t, h.get(), map[string]cond{v1alpha1.ConditionReady: isTrue(v1alpha1.ReasonSucceeded)})
	if got := histogramCount(t); got != before+1 {
		t.Errorf("time-to-Ready observations went %d → %d, want one more", before, got)
	}
	// A later Ready of the same source is not a first Ready.
	h.edit(func(cs *v1alpha1.CapillarySource) { cs.Spec.Suspend = true; cs.Generation = 3 })
	h.reconcile()
	if got := histogramCount(t); got != before+1 {
		t.Errorf("time-to-Ready observations went %d → %d after a later Ready, want no more", before+1, got)
	}
}

func histogramCount(t *testing.T) uint64 {
	t.Helper()
	m := &dto.Metric{}
	if err := timeToReady.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
