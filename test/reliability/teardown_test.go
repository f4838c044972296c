package reliability_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// tearDownNamespace plays the namespace controller, which envtest does not
// run: the namespace is marked for deletion, its Secrets go first (they have
// no finalizer), and the operator is shown to have seen that (every source
// reports SecretNotFound) before the sources are deleted.
func tearDownNamespace(t *testing.T, ns string, sources []*v1alpha1.CapillarySource) {
	t.Helper()
	ctx := context.Background()
	if err := suite.Env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("delete namespace %s: %v", ns, err)
	}
	if err := suite.Env.Client.DeleteAllOf(ctx, &corev1.Secret{}, &client.DeleteAllOfOptions{ListOptions: client.ListOptions{Namespace: ns}}); err != nil {
		t.Fatalf("delete the Secrets of %s: %v", ns, err)
	}
	waitAll(t, sources, suite.Timeout, "Stalled/SecretNotFound", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonSecretNotFound))
}

func deleteAll(t *testing.T, sources []*v1alpha1.CapillarySource) {
	t.Helper()
	for _, cs := range sources {
		if err := suite.Env.Client.Delete(context.Background(), cs); err != nil {
			t.Fatalf("delete %s: %v", cs.Name, err)
		}
	}
}

// TestNamespaceTeardown: deleting a namespace removes its Secrets at once,
// so the Secret going before its sources is the normal case. The operator
// deletes the Adobe objects of every source with policy Delete anyway, with
// the token it kept from the last good pass, and releases the finalizers.
func TestNamespaceTeardown(t *testing.T) {
	n := localenvtest.Size(10, 30)
	ns := suite.NewNamespace(t, "teardown")
	suite.StartOperator(t, operatorOptions())
	sources := createSources(t, ns, "src", n)
	vanishAfter(t, sources)
	waitAll(t, sources, suite.Timeout, "Ready", localenvtest.IsReady)
	before := adobeObjectsOf(sources)
	if before != 3*n {
		t.Fatalf("%d Adobe objects for %d sources, want %d", before, n, 3*n)
	}
	tokensBefore := suite.Env.Emulator.Calls().Op(emulator.OpIMSToken)

	tearDownNamespace(t, ns, sources)
	deleteAll(t, sources)
	for _, cs := range sources {
		suite.WaitGone(t, cs)
	}
	left := adobeObjectsOf(sources)
	tokens := suite.Env.Emulator.Calls().Op(emulator.OpIMSToken) - tokensBefore
	fmt.Printf("\nnamespace teardown: %d sources (deletionPolicy Delete), Secret deleted first\n"+
		"  Adobe objects       %d before, %d after\n"+
		"  finalizers released %d of %d\n"+
		"  IMS tokens asked    %d (the kept token served the deletes)\n", n, before, left, n, n, tokens)
	if left != 0 {
		t.Errorf("%d Adobe objects left after the namespace went, want 0", left)
	}
	if tokens != 0 {
		t.Errorf("%d IMS token requests during the teardown, want 0: the Secret is gone", tokens)
	}
}

// TestNamespaceTeardownAfterRestart: the kept token lives in memory only. An
// operator restarted after the Secret went has none, so deletion shows
// DeleteBlocked with its way out, deletes nothing, and deletionPolicy Orphan
// lets the resources go.
func TestNamespaceTeardownAfterRestart(t *testing.T) {
	n := localenvtest.Size(3, 10)
	ns := suite.NewNamespace(t, "teardown-restart")
	op := suite.StartOperator(t, operatorOptions())
	sources := createSources(t, ns, "src", n)
	vanishAfter(t, sources)
	waitAll(t, sources, suite.Timeout, "Ready", localenvtest.IsReady)

	tearDownNamespace(t, ns, sources)
	op.Restart()
	deleteAll(t, sources)
	waitAll(t, sources, suite.Timeout, "Stalled/DeleteBlocked", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonDeleteBlocked))
	for _, cs := range sources {
		c := meta.FindStatusCondition(suite.Get(t, cs).Status.Conditions, v1alpha1.ConditionStalled)
		if !strings.Contains(c.Message, "deletionPolicy: Orphan") || !strings.Contains(c.Message, "Secret") {
			t.Errorf("%s: DeleteBlocked says %q; want the missing Secret and the way out (deletionPolicy: Orphan)", cs.Name, c.Message)
		}
	}
	blocked := adobeObjectsOf(sources)
	if blocked != 3*n {
		t.Errorf("%d Adobe objects while blocked, want all %d kept", blocked, 3*n)
	}
	for _, cs := range sources {
		suite.Update(t, cs, func(cs *v1alpha1.CapillarySource) { cs.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
	}
	for _, cs := range sources {
		suite.WaitGone(t, cs)
	}
	fmt.Printf("\nnamespace teardown after a restart lost the kept token: %d sources\n"+
		"  DeleteBlocked       %d of %d, with the way out in the message\n"+
		"  Adobe objects kept  %d (then released with deletionPolicy Orphan)\n", n, n, n, blocked)
}
