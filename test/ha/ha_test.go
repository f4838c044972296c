// Package ha_test is the high-availability drill: two replicas of the
// operator with leader election against one API server. Only the leader
// calls Adobe; when it dies without giving the lease up, the standby takes
// over once the lease runs out, finishes the work, and nothing is created
// twice. A rolling update (the lease given up on a clean stop) hands over at
// once.
package ha_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/leakcheck"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

const (
	clientID     = "ha-client"
	clientSecret = "ha-secret-8c2d4f6b1a3e5d7f"
	namespace    = "ha"
	leaseName    = "capillary-ha-drill"
	resources    = 8
)

// Lease timings: short, so the drill is quick, in production's proportions.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

var suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret}

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// replica is one operator process: its own manager, HTTP client and
// request log.
type replica struct {
	name   string
	rec    *leakcheck.Recorder
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startReplica(t *testing.T, name string, releaseOnCancel bool) *replica {
	t.Helper()
	// The final scan covers a replica that led; a standby that never did has
	// nothing to scan.
	r := &replica{name: name, rec: suite.NewRecorder("replica "+name, nil), done: make(chan struct{})}
	o := suite.Env.ManagerOptions()
	o.HTTPClient = r.rec.Client()
	o.LeaderElect = true
	o.LeaderElectionID = leaseName
	o.LeaderElectionNamespace = "default"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = leaseDuration, renewDeadline, retryPeriod
	o.LeaderElectionReleaseOnCancel = releaseOnCancel
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.RetryBaseDelay = 200 * time.Millisecond
	// One worker: the sources converge one after another, so the leader
	// reliably dies with work left, however loaded the machine is.
	o.MaxConcurrentReconciles = 1
	mgr, err := manager.New(suite.Env.Config, o)
	if err != nil {
		t.Fatalf("replica %s: %v", name, err)
	}
	r.mgr = mgr
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.err = mgr.Start(ctx)
	}()
	t.Cleanup(func() { r.kill() })
	return r
}

// kill stops the replica; it returns at once if it has stopped already.
func (r *replica) kill() time.Time {
	r.cancel()
	<-r.done
	return time.Now()
}

func (r *replica) elected() bool {
	select {
	case <-r.mgr.Elected():
		return true
	default:
		return false
	}
}

func (r *replica) waitElected(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-r.mgr.Elected():
		return time.Now()
	case <-r.done:
		t.Fatalf("replica %s stopped before it was elected: %v", r.name, r.err)
	case <-time.After(within):
		t.Fatalf("replica %s not elected within %s", r.name, within)
	}
	return time.Time{}
}

// requestsIn returns the replica's Adobe requests in [from, to).
func (r *replica) requestsIn(from, to time.Time) int {
	n := 0
	for _, q := range r.rec.Requests() {
		if !q.Time.Before(from) && q.Time.Before(to) {
			n++
		}
	}
	return n
}

func TestLeaderFailover(t *testing.T) {
	ctx := context.Background()
	suite.CreateNamespace(t, namespace)
	// Slow Adobe down so the leader dies with work in flight.
	if err := suite.Env.Emulator.SetFaults(emulator.Faults{Latency: 150 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) })
	suite.Env.Emulator.ResetCalls()

	a := startReplica(t, "a", false)
	a.waitElected(t, 30*time.Second)
	b := startReplica(t, "b", false)
	bStarted := time.Now()

	var sources []*v1alpha1.CapillarySource
	for i := range resources {
		cs := localenvtest.NewSource(namespace, fmt.Sprintf("src-%d", i), localenvtest.Mappings(localenvtest.PointsMapping))
		suite.Create(t, cs)
		sources = append(sources, cs)
	}

	// Kill the leader mid-convergence, without giving the lease up (a crash,
	// an evicted node): once a few resources are Ready, none being all.
	waitUntil(t, "a few resources Ready", 60*time.Second, func() bool { return countReady(t) >= 2 })
	if b.elected() {
		t.Fatal("the standby was elected while the leader held the lease")
	}
	readyAtKill := countReady(t)
	lastRenew := leaseRenewTime(t)
	killed := a.kill()
	if readyAtKill == resources {
		t.Fatalf("all %d resources were Ready before the leader died: the drill proves nothing", readyAtKill)
	}
	if b.requestsIn(bStarted, killed) != 0 {
		t.Errorf("the standby called Adobe %d times while the other replica led", b.requestsIn(bStarted, killed))
	}

	// The standby takes over once the lease runs out: not before (two
	// leaders), and within the lease duration plus the retry periods it
	// takes to notice (with slack for a loaded machine).
	tookOver := b.waitElected(t, leaseDuration+time.Minute)
	takeover := tookOver.Sub(killed)
	// A second of slack for the clock reads on a loaded machine; two leaders
	// would show as a takeover right after the kill, seconds early.
	if expiry := lastRenew.Add(leaseDuration); tookOver.Before(expiry.Add(-time.Second)) {
		t.Errorf("standby took over %s before the lease renewed at %s ran out: two leaders", expiry.Sub(tookOver), lastRenew.Format(time.StampMicro))
	}
	if most := leaseDuration + 3*retryPeriod + 5*time.Second; takeover > most {
		t.Errorf("standby took over %s after the leader died, want within %s (lease %s)", takeover, most, leaseDuration)
	}
	if n := a.requestsIn(tookOver, time.Now().Add(time.Hour)); n != 0 {
		t.Errorf("the dead leader called Adobe %d times after the standby took over", n)
	}
	aRequests := len(a.rec.Requests())
	if first := firstRequest(b); !first.IsZero() && first.Before(tookOver) {
		t.Errorf("the standby called Adobe %s before it was elected", tookOver.Sub(first))
	}

	waitUntil(t, "every resource Ready under the new leader", 90*time.Second, func() bool { return countReady(t) == resources })
	list := suite.List(t, namespace)
	report := ownership.Check(suite.Env.Emulator.Objects(), list, nil)
	for _, p := range report.Problems {
		t.Error(p)
	}
	calls := suite.Env.Emulator.Calls()
	for _, op := range []string{emulator.OpSourceConnectionsCreate, emulator.OpTargetConnectionsCreate, emulator.OpFlowsCreate} {
		if n := calls.OpStatus(op, 201); n != resources {
			t.Errorf("%s committed %d times for %d resources: something was created twice (or not at all)", op, n, resources)
		}
	}

	// A rolling update: a fresh standby, and the leader stops cleanly,
	// giving the lease up. The standby takes over without waiting for the
	// lease to run out, and finds nothing to create.
	c := startReplica(t, "c", true)
	time.Sleep(2 * retryPeriod)
	if c.elected() {
		t.Fatal("the new standby was elected while b held the lease")
	}
	// b runs with release-on-cancel off; a clean stop of the production
	// default gives the lease up, so hand over through a replica that does.
	handoverStart := b.kill()
	handover := c.waitElected(t, leaseDuration+time.Minute).Sub(handoverStart)
	waitUntil(t, "every resource Ready under the third leader", 60*time.Second, func() bool { return countReady(t) == resources })

	d := startReplica(t, "d", true)
	time.Sleep(2 * retryPeriod)
	released := c.kill()
	graceful := d.waitElected(t, leaseDuration+time.Minute).Sub(released)
	if graceful >= leaseDuration {
		t.Errorf("after a clean stop that gave the lease up, the standby took %s to take over, want less than the lease (%s)", graceful, leaseDuration)
	}

	// Clean up under the last leader: nothing left in Adobe.
	for _, cs := range sources {
		if err := suite.Env.Client.Delete(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "every resource deleted", 60*time.Second, func() bool { return len(suite.List(t, namespace)) == 0 })
	if left := ownership.NewIndex(suite.Env.Emulator.Objects()).Owners(); len(left) != 0 {
		t.Errorf("Adobe still holds objects of %d deleted resources", len(left))
	}
	after := suite.Env.Emulator.Calls()
	for _, op := range []string{emulator.OpSourceConnectionsCreate, emulator.OpTargetConnectionsCreate, emulator.OpFlowsCreate} {
		if n := after.OpStatus(op, 201); n != resources {
			t.Errorf("%s committed %d times for %d resources after the handovers", op, n, resources)
		}
	}

	fmt.Printf(`
HA drill: %d resources, lease %s, renew deadline %s, retry period %s
  leader a killed (lease kept) with %d/%d Ready, after %d Adobe requests
  standby b took over %s after the kill; its requests before election: 0
  b stopped (lease kept): c took over after %s
  c stopped cleanly (lease released): d took over after %s
  creates committed: %d source, %d target, %d dataflow for %d resources; duplicates %d, leaks %d
`, resources, leaseDuration, renewDeadline, retryPeriod,
		readyAtKill, resources, aRequests,
		takeover.Round(time.Millisecond), handover.Round(time.Millisecond), graceful.Round(time.Millisecond),
		after.OpStatus(emulator.OpSourceConnectionsCreate, 201), after.OpStatus(emulator.OpTargetConnectionsCreate, 201),
		after.OpStatus(emulator.OpFlowsCreate, 201), resources, report.Duplicates, report.Leaks)

	for _, r := range []*replica{a, b, c} {
		if r.err != nil && !errors.Is(r.err, context.Canceled) && r.err.Error() != "leader election lost" {
			t.Errorf("replica %s stopped with %v", r.name, r.err)
		}
	}
}

// leaseRenewTime is when the leader last renewed the lease, as recorded.
func leaseRenewTime(t *testing.T) time.Time {
	t.Helper()
	var l coordinationv1.Lease
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, &l); err != nil {
		t.Fatalf("read the leader election lease: %v", err)
	}
	if l.Spec.RenewTime == nil {
		t.Fatal("the lease has no renew time")
	}
	return l.Spec.RenewTime.Time
}

func firstRequest(r *replica) time.Time {
	reqs := r.rec.Requests()
	if len(reqs) == 0 {
		return time.Time{}
	}
	return reqs[0].Time
}

func countReady(t *testing.T) int {
	t.Helper()
	n := 0
	for _, cs := range suite.List(t, namespace) {
		if localenvtest.IsReady(&cs) {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
