package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

func setFaults(t *testing.T, f emulator.Faults) {
	t.Helper()
	if err := suite.Env.Emulator.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) })
}

func assertOneOfEach(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	for _, kind := range []emulator.Kind{emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindFlow} {
		if n := len(objectsOf(kind, cs)); n != 1 {
			t.Errorf("%d %s objects in Adobe for %s, want exactly 1", n, kind, cs.Name)
		}
	}
}

// A create whose response is lost (committed, then answered 500) must not
// leave a duplicate: the next pass finds the object by its name.
func TestLostCreateResponsesLeaveNoDuplicates(t *testing.T) {
	setFaults(t, emulator.Faults{Seed: 1, RateLostResponse: 1, Operations: []string{
		emulator.OpSourceConnectionsCreate, emulator.OpTargetConnectionsCreate, emulator.OpFlowsCreate,
	}})
	startOperator(t, fastRetries)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "lossy")
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	assertOneOfEach(t, got)
	calls := suite.Env.Emulator.Calls()
	for _, op := range []string{emulator.OpSourceConnectionsCreate, emulator.OpTargetConnectionsCreate, emulator.OpFlowsCreate} {
		if calls.OpStatus(op, 500) == 0 {
			t.Errorf("no lost response was injected on %s", op)
		}
	}
	if got.Status.DataflowID != objectsOf(emulator.KindFlow, got)[0].ID {
		t.Errorf("status.dataflowId %s is not the flow in Adobe", got.Status.DataflowID)
	}
}

// An operator stopped between creates resumes where it was, without duplicates.
func TestRestartMidChainResumes(t *testing.T) {
	ns := newNamespace(t)
	// Make the dataflow create fail for now, so the chain stops after the
	// connections and the mapping set.
	setFaults(t, emulator.Faults{Seed: 2, Rate503: 1, RetryAfter: time.Second, Operations: []string{emulator.OpFlowsCreate}})
	m := startOperator(t, fastRetries)
	cs := localenvtest.NewSource(ns, "resume")
	suite.Create(t, cs)
	mid := suite.WaitFor(t, cs, "half-created", func(c *v1alpha1.CapillarySource) bool {
		return c.Status.TargetConnectionID != "" && c.Status.MappingSetID != ""
	})
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	_ = suite.Env.Emulator.SetFaults(emulator.Faults{})
	startOperator(t, fastRetries)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	assertOneOfEach(t, got)
	if got.Status.SourceConnectionID != mid.Status.SourceConnectionID || got.Status.TargetConnectionID != mid.Status.TargetConnectionID {
		t.Errorf("connections changed across the restart: %s/%s then %s/%s", mid.Status.SourceConnectionID, mid.Status.TargetConnectionID, got.Status.SourceConnectionID, got.Status.TargetConnectionID)
	}
}

func TestSuspendAndResume(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "suspend")
	cs.Spec.Suspend = true
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready and suspended", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.DataflowState == "disabled"
	})
	if r := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Reason; r != v1alpha1.ReasonSuspended {
		t.Errorf("Ready reason = %s, want %s", r, v1alpha1.ReasonSuspended)
	}
	if s := flowState(t, got); s != "disabled" {
		t.Errorf("flow state in Adobe = %s, want disabled", s)
	}
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.Suspend = false })
	got = suite.WaitFor(t, cs, "resumed", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.DataflowState == "enabled"
	})
	if s := flowState(t, got); s != "enabled" {
		t.Errorf("flow state in Adobe = %s, want enabled", s)
	}
}

func flowState(t *testing.T, cs *v1alpha1.CapillarySource) string {
	t.Helper()
	for _, o := range suite.Env.Emulator.Objects().Of(emulator.KindFlow) {
		if o.ID == cs.Status.DataflowID {
			return o.State()
		}
	}
	t.Fatalf("flow %s not in Adobe", cs.Status.DataflowID)
	return ""
}

func requestReconcile(t *testing.T, cs *v1alpha1.CapillarySource, token string) {
	t.Helper()
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[v1alpha1.ReconcileRequestAnnotation] = token
	})
}

// Drift is corrected: a dataflow deleted in Adobe comes back; a dataflow
// disabled in Adobe is enabled again; a renamed one gets its name back.
func TestDriftIsCorrected(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "drift")
	suite.Create(t, cs)
	first := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)

	suite.Env.Emulator.Modify(emulator.KindFlow, first.Status.DataflowID, func(doc map[string]any) {
		doc["state"] = "disabled"
		doc["name"] = "renamed by hand"
	})
	requestReconcile(t, cs, "state-drift")
	suite.WaitFor(t, cs, "handled", func(c *v1alpha1.CapillarySource) bool { return c.Status.LastHandledReconcileAt == "state-drift" })
	if s := flowState(t, first); s != "enabled" {
		t.Errorf("flow state after correction = %s, want enabled", s)
	}
	if n := objectsOf(emulator.KindFlow, first); len(n) != 1 || !strings.HasSuffix(n[0].Name(), "-dataflow") {
		t.Errorf("flow name not restored: %+v", n)
	}

	suite.Env.Emulator.Vanish(emulator.KindFlow, first.Status.DataflowID)
	requestReconcile(t, cs, "deleted")
	got := suite.WaitFor(t, cs, "Ready with a new dataflow", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.LastHandledReconcileAt == "deleted" && c.Status.DataflowID != first.Status.DataflowID
	})
	assertOneOfEach(t, got)
	if got.Status.SourceConnectionID != first.Status.SourceConnectionID {
		t.Errorf("source connection was replaced although it still existed")
	}
}

// Mapping changes update the mapping set (a new version) and the dataflow.
func TestMappingChangeUpdatesInPlace(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "mapping")
	suite.Create(t, cs)
	first := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) {
		c.Spec.Mappings = append(c.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "loyalty.tier", DestinationXdmPath: "loyalty.tier"})
	})
	got := suite.WaitFor(t, cs, "Ready with the new mapping", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.MappingSetVersion > first.Status.MappingSetVersion
	})
	if got.Status.MappingSetID != first.Status.MappingSetID || got.Status.DataflowID != first.Status.DataflowID {
		t.Errorf("mapping set or dataflow replaced, want updated in place")
	}
	flow := objectsOf(emulator.KindFlow, got)[0]
	tr, _ := flow.Field("transformations").([]any)
	if len(tr) != 1 || fmt.Sprint(tr[0].(map[string]any)["params"].(map[string]any)["mappingVersion"]) != fmt.Sprint(got.Status.MappingSetVersion) {
		t.Errorf("flow transformations = %v, want mapping version %d", tr, got.Status.MappingSetVersion)
	}
}

// Mappings added to a source created without any, then removed again.
func TestMappingsAddedAndRemoved(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "nomap")
	cs.Spec.Mappings = nil
	suite.Create(t, cs)
	first := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	if first.Status.MappingSetID != "" {
		t.Fatalf("mapping set %s created without mappings", first.Status.MappingSetID)
	}
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) {
		c.Spec.Mappings = []v1alpha1.Mapping{{SourceAttribute: "a", DestinationXdmPath: "b"}}
	})
	got := suite.WaitFor(t, cs, "Ready with a mapping", func(c *v1alpha1.CapillarySource) bool { return localenvtest.IsReady(c) && c.Status.MappingSetID != "" })
	if tr, _ := objectsOf(emulator.KindFlow, got)[0].Field("transformations").([]any); len(tr) != 1 {
		t.Errorf("flow transformations = %v, want the mapping", tr)
	}
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.Mappings = nil })
	got = suite.WaitFor(t, cs, "Ready without a mapping", func(c *v1alpha1.CapillarySource) bool { return localenvtest.IsReady(c) && c.Status.MappingSetID == "" })
	if tr, _ := objectsOf(emulator.KindFlow, got)[0].Field("transformations").([]any); len(tr) != 0 {
		t.Errorf("flow transformations = %v, want none", tr)
	}
}

// A Secret created after the resource, and a rotated Secret, take effect
// without touching the resource.
func TestSecretLateAndRotated(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "late")
	cs.Spec.CredentialsSecretRef.Name = "late-secret"
	suite.Create(t, cs)
	stalled := suite.WaitFor(t, cs, "stalled on the missing Secret", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonSecretNotFound))
	if msg := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, ns+"/late-secret") {
		t.Errorf("message %q does not name the Secret", msg)
	}
	if stalled.Status.ObservedGeneration != stalled.Generation {
		t.Errorf("observedGeneration = %d on a Stalled resource, want %d", stalled.Status.ObservedGeneration, stalled.Generation)
	}
	suite.CreateSecret(t, ns, "late-secret", clientID, "wrong-secret-value")
	suite.WaitFor(t, cs, "stalled on bad credentials", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonInvalidCredentials))

	// Rotation: the right value arrives in the same Secret.
	sec := &corev1.Secret{}
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "late-secret"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["clientSecret"] = []byte(clientSecret)
	if err := suite.Env.Client.Update(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, cs, "Ready after rotation", localenvtest.IsReady)
}

// Bad credentials stall the resource without a hot loop: while nothing
// changes, token requests follow the stalled-retry schedule. The interval is
// short here so that the operator does retry within the window (proof that
// it had the chance to act), and the count is bounded by the schedule.
func TestBadCredentialsStallWithoutHotLoop(t *testing.T) {
	const stalledRetry = 500 * time.Millisecond
	startOperator(t, fastRetries, func(o *manager.Options) { o.StalledRetryInterval = stalledRetry })
	ns := newNamespace(t)
	// A client ID of this run's own: resources left by earlier runs (-count)
	// are reconciled by this operator too, with their own credential.
	client := "unknown-client-" + ns
	suite.CreateSecret(t, ns, "bad", client, "nope")
	cs := localenvtest.NewSource(ns, "bad-creds")
	cs.Spec.CredentialsSecretRef.Name = "bad"
	suite.Env.Emulator.ResetCalls()
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "stalled", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonInvalidCredentials))

	before, start := suite.Env.Emulator.Calls().Client(client), time.Now()
	// Wait until the operator retried at least twice on its own.
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return suite.Env.Emulator.Calls().Client(client) >= before+2, nil
	}); err != nil {
		t.Fatalf("the operator did not retry the stalled source within 30s (%d IMS requests): %v", suite.Env.Emulator.Calls().Client(client)-before, err)
	}
	window := time.Since(start)
	retries := suite.Env.Emulator.Calls().Client(client) - before
	// At most one retry per stalled interval, jittered -10%, plus one in flight.
	if most := int(window/(stalledRetry*9/10)) + 1; retries > most {
		t.Errorf("%d IMS requests in %v for a refused credential, want at most %d (one per stalled-retry interval)", retries, window, most)
	}
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if ready.Status != "False" || ready.Reason != v1alpha1.ReasonInvalidCredentials {
		t.Errorf("Ready = %s/%s, want False/%s", ready.Status, ready.Reason, v1alpha1.ReasonInvalidCredentials)
	}
	if meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReconciling) != nil {
		t.Errorf("Reconciling present on a Stalled resource")
	}
}

func TestDeletionPolicies(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyOrphan} {
		t.Run(string(policy), func(t *testing.T) {
			cs := localenvtest.NewSource(ns, "del-"+strings.ToLower(string(policy)))
			cs.Spec.DeletionPolicy = policy
			suite.Create(t, cs)
			got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
			if err := suite.Env.Client.Delete(context.Background(), got); err != nil {
				t.Fatal(err)
			}
			suite.WaitGone(t, got)
			want := 0
			if policy == v1alpha1.DeletionPolicyOrphan {
				want = 1
			}
			for _, kind := range []emulator.Kind{emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindFlow} {
				if n := len(objectsOf(kind, got)); n != want {
					t.Errorf("%d %s left in Adobe, want %d", n, kind, want)
				}
			}
		})
	}
}

// Deleting with the credentials gone does not hang silently: the condition
// says what to do, and switching to Orphan lets the resource go.
// The operator keeps, in memory, the token of the last good pass for
// deletion (test/reliability shows a namespace teardown); an operator
// restarted after the Secret went has none, and says what to do.
func TestDeleteWithoutCredentialsSaysWhatToDo(t *testing.T) {
	m := startOperator(t)
	ns := newNamespace(t)
	suite.CreateSecret(t, ns, "temp", clientID, clientSecret)
	cs := localenvtest.NewSource(ns, "orphan-me")
	cs.Spec.CredentialsSecretRef.Name = "temp"
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	if err := suite.Env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metaOf(ns, "temp")}); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, cs, "Stalled/SecretNotFound", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonSecretNotFound))
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	startOperator(t)
	if err := suite.Env.Client.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	blocked := suite.WaitFor(t, cs, "delete blocked", localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonDeleteBlocked))
	msg := meta.FindStatusCondition(blocked.Status.Conditions, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "deletionPolicy: Orphan") || !strings.Contains(msg, ns+"/temp") {
		t.Errorf("message %q does not give the way out", msg)
	}
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
	suite.WaitGone(t, got)
}

func TestAdoptExistingDataflow(t *testing.T) {
	m := startOperator(t)
	ns := newNamespace(t)
	// Make a dataflow the way someone else would: through another resource
	// with policy Orphan, then delete that resource.
	orig := localenvtest.NewSource(ns, "original")
	orig.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	suite.Create(t, orig)
	made := suite.WaitFor(t, orig, "Ready", localenvtest.IsReady)
	if err := suite.Env.Client.Delete(context.Background(), made); err != nil {
		t.Fatal(err)
	}
	suite.WaitGone(t, made)
	_ = m

	// A mismatching spec is refused with a clear condition.
	bad := localenvtest.NewSource(ns, "adopter-bad")
	bad.Spec.Target.DatasetID = "someotherdataset"
	bad.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: made.Status.DataflowID}
	suite.Create(t, bad)
	suite.WaitFor(t, bad, "adoption refused", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonAdoptionMismatch))

	good := localenvtest.NewSource(ns, "adopter")
	good.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: made.Status.DataflowID}
	suite.Create(t, good)
	got := suite.WaitFor(t, good, "Ready", localenvtest.IsReady)
	if got.Status.DataflowID != made.Status.DataflowID || got.Status.SourceConnectionID != made.Status.SourceConnectionID || got.Status.TargetConnectionID != made.Status.TargetConnectionID {
		t.Errorf("adopted IDs %+v, want those of %+v", got.Status, made.Status)
	}
	if n := len(objectsOf(emulator.KindFlow, got)); n != 0 {
		t.Errorf("%d new dataflows were created for the adopter, want 0", n)
	}
	if n := len(objectsOf(emulator.KindFlow, made)); n != 1 {
		t.Errorf("%d dataflows of the original in Adobe, want the 1 adopted", n)
	}
}

func TestManualTriggerIsRecorded(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "trigger")
	suite.Create(t, cs)
	suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	suite.Env.Emulator.ResetCalls()
	requestReconcile(t, cs, "2026-11-28T12:00:00Z")
	got := suite.WaitFor(t, cs, "handled", func(c *v1alpha1.CapillarySource) bool {
		return c.Status.LastHandledReconcileAt == "2026-11-28T12:00:00Z"
	})
	if suite.Env.Emulator.Calls().Op(emulator.OpFlowsGet) == 0 {
		t.Errorf("the manual trigger made no Adobe call")
	}
	if _, ok := got.Annotations[v1alpha1.ReconcileRequestAnnotation]; !ok {
		t.Errorf("the operator removed the user's annotation")
	}
}

// kstatus reads InProgress for a new resource, Current when Ready, and Failed
// when Stalled.
func TestKstatusVerdicts(t *testing.T) {
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "kstatus")
	suite.Create(t, cs)
	if s := kstatus(t, suite.Get(t, cs)); s != status.InProgressStatus {
		t.Errorf("new resource before the controller saw it: %s, want InProgress", s)
	}
	startOperator(t)
	if s := kstatus(t, suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)); s != status.CurrentStatus {
		t.Errorf("Ready resource: %s, want Current", s)
	}
	bad := localenvtest.NewSource(ns, "kstatus-bad")
	bad.Spec.CredentialsSecretRef.Name = "missing"
	suite.Create(t, bad)
	if s := kstatus(t, suite.WaitFor(t, bad, "stalled", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonSecretNotFound))); s != status.FailedStatus {
		t.Errorf("Stalled resource: %s, want Failed", s)
	}
}

func kstatus(t *testing.T, cs *v1alpha1.CapillarySource) status.Status {
	t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: raw})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

func metaOf(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func fastRetries(o *manager.Options) {
	o.RetryBaseDelay = 200 * time.Millisecond
	o.AdobeMaxAttempts = 1
}
