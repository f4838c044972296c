package reliability_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// platformOps are every Platform operation (IMS keeps working: an outage of
// Experience Platform, not of Adobe's login).
var platformOps = []string{"connectionSpecs.*", "flowSpecs.*", "connections.*", "sourceConnections.*",
	"targetConnections.*", "flows.*", "runs.*", "mappingSets.*"}

// passBound is the most passes one source can make over a span of failures:
// the first at once, and each next one no sooner than minPass (a pass's own
// waits: the client waits Retry-After between its tries, exactly, not
// jittered) plus the shortest jittered backoff after the k-th failure,
// 0.8 × min(base·2^(k-1), max). Nothing else wakes a source here: the test
// changes neither the sources nor their Secret during the outage, and status
// writes do not requeue.
func passBound(base, maxDelay, minPass, span time.Duration) int {
	passes, elapsed := 1, time.Duration(0)
	for k := 0; ; k++ {
		d := maxDelay
		if k < 30 {
			d = min(base<<k, maxDelay)
		}
		elapsed += minPass + d*8/10
		if elapsed > span {
			return passes
		}
		passes++
	}
}

// ceilingSteps is the number of failures after which the backoff is at its
// ceiling.
func ceilingSteps(base, maxDelay time.Duration) int32 {
	n := int32(1)
	for d := base; d < maxDelay; d *= 2 {
		n++
	}
	return n
}

// TestLongAdobeOutage: every Platform call answers 503 (Retry-After 1s) for
// a long period while sources are created. The operator's backoff reaches
// its ceiling (short retry-delay flags: workqueue delays cannot be faked) and
// the calls stay within the schedule's count; the sources say Adobe is
// unavailable, without flapping; after the outage every one becomes Ready,
// with nothing duplicated.
func TestLongAdobeOutage(t *testing.T) {
	n := localenvtest.Size(5, 20)
	outage := localenvtest.Size(30*time.Second, 5*time.Minute)
	const retryAfter = time.Second
	opts := operatorOptions()
	opts.RetryBaseDelay, opts.RetryMaxDelay = localenvtest.Size(250*time.Millisecond, time.Second), localenvtest.Size(2*time.Second, 30*time.Second)
	attempts := opts.AdobeMaxAttempts
	if attempts != flowservice.DefaultRetryPolicy.MaxAttempts {
		t.Fatalf("AdobeMaxAttempts %d; the bound below assumes the default %d", attempts, flowservice.DefaultRetryPolicy.MaxAttempts)
	}

	ns := suite.NewNamespace(t, "outage")
	log, err := localenvtest.RecordStatus(suite.Env.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(log.Stop)
	suite.Env.Emulator.ResetCalls()
	if err := suite.Env.Emulator.SetFaults(emulator.Faults{Rate503: 1, RetryAfter: retryAfter, Operations: platformOps}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) })
	began := time.Now()
	suite.StartOperator(t, opts)
	sources := createSources(t, ns, "src", n)
	vanishAfter(t, sources)
	waitAll(t, sources, suite.Timeout, "Ready=False/AdobeUnavailable", localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonAdobeUnavailable))
	time.Sleep(outage - time.Since(began))
	if err := suite.Env.Emulator.SetFaults(emulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	span := time.Since(began)
	during := suite.Env.Emulator.Calls()
	var failures []int32
	steps := ceilingSteps(opts.RetryBaseDelay, opts.RetryMaxDelay)
	for _, cs := range sources {
		failures = append(failures, suite.Get(t, cs).Status.Failures)
	}

	waitAll(t, sources, suite.Timeout, "Ready", localenvtest.IsReady)
	log.Stop()

	unavailable := during.OpStatus(emulator.OpConnectionSpecsGet, 503)
	platform := during.Total() - during.Op(emulator.OpIMSToken)
	minPass := time.Duration(attempts-1) * retryAfter
	passes := passBound(opts.RetryBaseDelay, opts.RetryMaxDelay, minPass, span)
	bound := n * passes * attempts
	if platform > bound {
		t.Errorf("%d Platform calls over the %s outage, over the schedule's bound %d = %d sources x %d passes x %d tries",
			platform, span.Round(time.Second), bound, n, passes, attempts)
	}
	// Each pass that fails adds one to status.failures: the passes a source
	// made, against the schedule's count.
	if most := slices.Max(failures); int(most) > passes {
		t.Errorf("a source made %d passes over the outage (failures %v), over the schedule's %d", most, failures, passes)
	}
	if tokens := during.Op(emulator.OpIMSToken); tokens > 1 {
		t.Errorf("%d IMS tokens during the outage, want at most 1 (IMS was up; the token is shared)", tokens)
	}
	// The operator had the chance to act: every source kept failing until
	// its backoff reached the ceiling.
	if minFailures := slices.Min(failures); minFailures < steps {
		t.Errorf("a source failed only %d times over the outage (failures %v), want at least %d (the backoff at its ceiling): the operator did not keep trying", minFailures, failures, steps)
	}

	// No flapping: Ready is False/AdobeUnavailable with one message through
	// the outage, then (creating, Progressing) True; it never goes back to a
	// state it left, and the resource is never Stalled.
	flaps := 0
	for _, cs := range sources {
		runs := slices.DeleteFunc(log.ReadyRuns(cs.Name), func(s string) bool { return s == "" })
		ok := len(runs) >= 2 && runs[0] == "False/"+v1alpha1.ReasonAdobeUnavailable && runs[len(runs)-1] == "True/"+v1alpha1.ReasonSucceeded
		for i, r := range runs {
			if slices.Index(runs, r) != i || (i > 0 && i < len(runs)-1 && r != "False/"+v1alpha1.ReasonProgressing) {
				ok = false
			}
		}
		if !ok {
			flaps++
			t.Errorf("%s: Ready went %v, want False/AdobeUnavailable, then False/Progressing at most once, then True/Succeeded", cs.Name, runs)
		}
		msgs := map[string]bool{}
		for _, v := range log.Versions(cs.Name) {
			if c := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonAdobeUnavailable {
				msgs[c.Message] = true
			}
			if meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionStalled) != nil {
				t.Errorf("%s: Stalled during an outage", cs.Name)
			}
		}
		if len(msgs) > 1 {
			t.Errorf("%s: the AdobeUnavailable message changed %d times: %v", cs.Name, len(msgs)-1, msgs)
		}
	}
	if objs := adobeObjectsOf(sources); objs != 3*n {
		t.Errorf("%d Adobe objects after recovery, want %d (no duplicates)", objs, 3*n)
	}
	ceilingPeriod := opts.RetryMaxDelay * 8 / 10
	fmt.Printf("\nlong Adobe outage: %d sources created into %s of 503 (Retry-After 1s) on every Platform call\n"+
		"  backoff             %s doubling to %s, +-20%%; %d tries per call\n"+
		"  Platform calls      %d (503 on the spec read: %d); bound %d = %d sources x %d passes x %d tries (a pass takes at least %s of Retry-After waits)\n"+
		"  at the ceiling      at most %d calls per source per %s (the ceiling less its jitter)\n"+
		"  failures per source %v at the end of the outage (the ceiling is reached at %d)\n"+
		"  Ready               False/AdobeUnavailable then True for %d of %d (flaps %d); %d status versions recorded\n",
		n, span.Round(time.Second), opts.RetryBaseDelay, opts.RetryMaxDelay, attempts,
		platform, unavailable, bound, n, passes, attempts, minPass, attempts, ceilingPeriod, failures, steps, n-flaps, n, flaps, log.Len())
}
