package reliability_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// requestReconcile sets the manual trigger to token and waits until it is
// handled: proof that the operator took the work.
func requestReconcile(t *testing.T, cs *v1alpha1.CapillarySource, token string) *v1alpha1.CapillarySource {
	t.Helper()
	suite.Update(t, cs, func(cs *v1alpha1.CapillarySource) {
		if cs.Annotations == nil {
			cs.Annotations = map[string]string{}
		}
		cs.Annotations[v1alpha1.ReconcileRequestAnnotation] = token
	})
	return suite.WaitFor(t, cs, "handled "+token, func(cs *v1alpha1.CapillarySource) bool {
		return cs.Status.LastHandledReconcileAt == token
	})
}

// unauthorized counts the Platform calls answered 401.
func unauthorized(c emulator.CallCounts) int {
	n := 0
	for _, k := range c.List() {
		if k.Status == 401 && k.Operation != emulator.OpIMSToken {
			n += k.Count
		}
	}
	return n
}

// TestTokenRevoked: IMS revokes a token before it expires. The next call
// gets 401 401013; the operator gets one new token and retries that call
// once. A credential whose new tokens are refused too goes Stalled, and is
// not retried in a loop.
func TestTokenRevoked(t *testing.T) {
	const id, secret = "revoked-client", "revoked-secret-7d1f3b5a9c2e4f60"
	suite.Env.Emulator.AddCredential(id, secret)
	rec.AddSecret("clientSecret", secret)
	ns := localenvtest.NewNamespace(t, suite.Env.Client, "token")
	suite.CreateSecret(t, ns, localenvtest.SecretName, id, secret)
	opts := operatorOptions()
	suite.StartOperator(t, opts)
	sources := createSources(t, ns, "src", 1)
	vanishAfter(t, sources)
	cs := sources[0]
	waitAll(t, sources, suite.Timeout, "Ready", localenvtest.IsReady)

	// Revoked mid-flight: one new token, the call retried once.
	suite.Env.Emulator.ResetCalls()
	suite.Env.Emulator.RevokeTokens(id)
	got := requestReconcile(t, cs, "after-revoke")
	calls := suite.Env.Emulator.Calls()
	tokens, refused := calls.Op(emulator.OpIMSToken), unauthorized(calls)
	if !localenvtest.IsReady(got) {
		t.Errorf("not Ready after a revoked token: %s", describe(cs, got))
	}
	if tokens != 1 || refused != 1 {
		t.Errorf("after the revocation: %d IMS tokens and %d 401s, want 1 and 1", tokens, refused)
	}

	// New tokens refused too: Stalled, then nothing until asked.
	suite.Env.Emulator.ResetCalls()
	suite.Env.Emulator.RefuseTokens(id, true)
	t.Cleanup(func() { suite.Env.Emulator.RefuseTokens(id, false) })
	requestReconcile(t, cs, "refused")
	// The first pass whose new token is refused retries with backoff (a
	// token may be refused in passing); the next one in a row is terminal.
	got = suite.WaitFor(t, cs, "Stalled/InvalidCredentials", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonInvalidCredentials))
	stalled := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(stalled.Message, "Developer Console") {
		t.Errorf("Stalled says %q; want what to check", stalled.Message)
	}
	// A loop at the operator's shortest backoff would make a pass every
	// RetryBaseDelay; the window is fifteen of those, and is closed by a
	// probe the operator must handle.
	time.Sleep(15 * opts.RetryBaseDelay)
	requestReconcile(t, cs, "refused-probe")
	calls = suite.Env.Emulator.Calls()
	tokensRefused, refusedRefused := calls.Op(emulator.OpIMSToken), unauthorized(calls)
	// Three passes (the request, its one retry, the probe): each one token
	// (the first 401 drops the cached one) and two 401s (the call and its
	// one retry with the new token).
	if tokensRefused != 3 || refusedRefused != 6 {
		t.Errorf("with every token refused, over three passes and a %s window: %d IMS tokens and %d 401s, want 3 and 6 (no loop)",
			15*opts.RetryBaseDelay, tokensRefused, refusedRefused)
	}
	if st := suite.Get(t, cs); !localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonInvalidCredentials)(st) {
		t.Errorf("after the probe: %s; want still Stalled/InvalidCredentials", describe(cs, st))
	}

	// Access restored: the next pass (asked for, or the Secret changed) recovers.
	suite.Env.Emulator.RefuseTokens(id, false)
	requestReconcile(t, cs, "restored")
	suite.WaitFor(t, cs, "Ready again", localenvtest.IsReady)

	fmt.Printf("\ntoken revoked mid-flight: %d new IMS token, %d call answered 401 (retried once)\n"+
		"every token refused: one retry, then Stalled/%s; over 3 passes (2 asked for) and a %s idle window: %d IMS tokens, %d 401s (bound 3 and 6)\n",
		tokens, refused, v1alpha1.ReasonInvalidCredentials, 15*opts.RetryBaseDelay, tokensRefused, refusedRefused)
}

// TestNamespaceTeardownKeptTokenRevoked: the kept token is refused once the
// Secret is gone (expired or revoked): nothing can get another, so deletion
// is DeleteBlocked, saying why, and nothing is retried in a loop.
func TestNamespaceTeardownKeptTokenRevoked(t *testing.T) {
	ns := suite.NewNamespace(t, "teardown-revoked")
	suite.StartOperator(t, operatorOptions())
	sources := createSources(t, ns, "src", 2)
	vanishAfter(t, sources)
	waitAll(t, sources, suite.Timeout, "Ready", localenvtest.IsReady)
	tearDownNamespace(t, ns, sources)
	suite.Env.Emulator.RevokeTokens(clientID)
	deleteAll(t, sources)
	waitAll(t, sources, suite.Timeout, "Stalled/DeleteBlocked", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonDeleteBlocked))
	for _, cs := range sources {
		c := meta.FindStatusCondition(suite.Get(t, cs).Status.Conditions, v1alpha1.ConditionStalled)
		if !strings.Contains(c.Message, "refused the token kept") || !strings.Contains(c.Message, "deletionPolicy: Orphan") {
			t.Errorf("%s: DeleteBlocked says %q; want the refused kept token and the way out", cs.Name, c.Message)
		}
	}
	if n := adobeObjectsOf(sources); n != 3*len(sources) {
		t.Errorf("%d Adobe objects while blocked, want %d", n, 3*len(sources))
	}
	for _, cs := range sources {
		suite.Update(t, cs, func(cs *v1alpha1.CapillarySource) { cs.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
		suite.WaitGone(t, cs)
	}
	_ = context.Background
}
