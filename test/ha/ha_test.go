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
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
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
	leaseName    = "capillary-ha-drill"
	resources    = 8
)

// Lease timings: short, so the drill is quick, in production's proportions.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// What the lease settings allow, from client-go's leader election:
//   - a replica that does not lead tries the lease again RetryPeriod after
//     its last try ended, jittered up to (1+JitterFactor)·RetryPeriod;
//   - it counts the lease as held until LeaseDuration (whole seconds, as the
//     Lease stores it) after it last saw the record change, by its own clock.
//
// So when a leader that last renewed at R dies keeping the lease, a standby
// sees R at its next try (within maxTryInterval), and takes over at its
// first try after that sighting plus the lease duration:
//
//	R + leaseWhole < takeover ≤ R + leaseWhole + 2·maxTryInterval
//
// and since R is before the death, takeover − death ≤ leaseWhole +
// 2·maxTryInterval. A lease given up on a clean stop has no holder, so the
// standby takes it at its next try: within maxTryInterval.
var (
	leaseWhole     = time.Duration(int(leaseDuration/time.Second)) * time.Second
	maxTryInterval = time.Duration((1 + leaderelection.JitterFactor) * float64(retryPeriod))
)

// Tolerances, stated once:
//   - machineSlack is added to every upper bound: the API round trips of a
//     try (a lease read, a write to take over) and goroutine scheduling on a
//     loaded shared machine. It is an allowance, not a claim about speed.
//   - clockSlack is taken off the lower bound: the Lease holds its renew time
//     as wall-clock microseconds, stamped when the leader's try begins, while
//     the test reads its own clock when the standby reports; on a loaded
//     machine the two were seen 128ms apart (one run of make test with other
//     work running), so the allowance is one try, a quarter of the lease. Two
//     leaders would show as a takeover a whole lease (seconds) early.
const (
	machineSlack = 2 * time.Second
	clockSlack   = retryPeriod
)

var suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret}

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// replica is one operator process: its own manager, HTTP client and
// request log.
type replica struct {
	name string
	rec  *leakcheck.Recorder
	// leaseReads counts the replica's answered reads of the lease: one per
	// try to acquire it (a leader renews with writes only).
	leaseReads atomic.Int64
	mgr        ctrl.Manager
	cancel     context.CancelFunc
	done       chan struct{}
	err        error
}

func startReplica(t *testing.T, ns, name string, releaseOnCancel bool) *replica {
	t.Helper()
	// The final scan covers a replica that led; a standby that never did has
	// nothing to scan.
	r := &replica{name: name, rec: suite.NewRecorder("replica "+name, nil), done: make(chan struct{})}
	o := suite.Env.ManagerOptions()
	o.HTTPClient = r.rec.Client()
	o.LeaderElect = true
	o.LeaderElectionID = leaseName
	// The lease lives in the drill's own namespace: a fresh one each run.
	o.LeaderElectionNamespace = ns
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = leaseDuration, renewDeadline, retryPeriod
	o.LeaderElectionReleaseOnCancel = releaseOnCancel
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.RetryBaseDelay = 200 * time.Millisecond
	// One worker: the sources converge one after another, so the leader
	// reliably dies with work left, however loaded the machine is.
	o.MaxConcurrentReconciles = 1
	cfg := rest.CopyConfig(suite.Env.Config)
	leasePath := "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases/" + leaseName
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && req.URL.Path == leasePath {
				r.leaseReads.Add(1)
			}
			return resp, err
		})
	})
	mgr, err := manager.New(cfg, o)
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

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// assertStandby: the replica tried the lease (two reads: its first try was
// over when the second began) and, the lease being held, did not take it.
// Without the tries, "not elected" would prove nothing.
func (r *replica) assertStandby(t *testing.T, holder string) {
	t.Helper()
	from := r.leaseReads.Load()
	localenvtest.WaitUntil(t, time.Minute, "replica "+r.name+" to try the lease", func(context.Context) (bool, error) {
		return r.leaseReads.Load() >= from+2, nil
	})
	if r.elected() {
		t.Fatalf("replica %s was elected while %s held the lease: two leaders", r.name, holder)
	}
}

// checkTakeover holds a takeover after a death that kept the lease to the
// bounds the lease settings give (see maxTryInterval).
func checkTakeover(t *testing.T, who string, lastRenew, died, tookOver time.Time) {
	t.Helper()
	if earliest := lastRenew.Add(leaseWhole - clockSlack); tookOver.Before(earliest) {
		t.Errorf("%s took over %s before the lease renewed at %s ran out: two leaders", who, lastRenew.Add(leaseWhole).Sub(tookOver), lastRenew.Format(time.StampMicro))
	}
	if most := leaseWhole + 2*maxTryInterval + machineSlack; tookOver.Sub(died) > most {
		t.Errorf("%s took over %s after the leader died, want within %s (lease %s + 2 tries of up to %s + %s slack)",
			who, tookOver.Sub(died), most, leaseWhole, maxTryInterval, machineSlack)
	}
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
	// The bounds below must tell a takeover that waited for the lease from
	// one that did not.
	if maxTryInterval+machineSlack >= leaseWhole {
		t.Fatalf("a clean handover's bound (%s) is not below the lease (%s): the drill could not tell them apart", maxTryInterval+machineSlack, leaseWhole)
	}
	ns := suite.NewNamespace(t, "ha")
	// Slow Adobe down so the leader dies with work in flight.
	if err := suite.Env.Emulator.SetFaults(emulator.Faults{Latency: 150 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.Env.Emulator.SetFaults(emulator.Faults{}) })
	suite.Env.Emulator.ResetCalls()

	a := startReplica(t, ns, "a", false)
	a.waitElected(t, 30*time.Second)
	b := startReplica(t, ns, "b", false)
	bStarted := time.Now()

	var sources []*v1alpha1.CapillarySource
	for i := range resources {
		cs := localenvtest.NewSource(ns, fmt.Sprintf("src-%d", i), localenvtest.Mappings(localenvtest.PointsMapping))
		suite.Create(t, cs)
		sources = append(sources, cs)
	}

	// Kill the leader mid-convergence, without giving the lease up (a crash,
	// an evicted node): once a few resources are Ready, none being all.
	localenvtest.WaitUntil(t, 60*time.Second, "a few resources Ready", func(context.Context) (bool, error) { return countReady(t, ns) >= 2, nil })
	b.assertStandby(t, "a")
	readyAtKill := countReady(t, ns)
	lastRenew := leaseRenewTime(t, ns)
	killed := a.kill()
	if readyAtKill == resources {
		t.Fatalf("all %d resources were Ready before the leader died: the drill proves nothing", readyAtKill)
	}
	if b.requestsIn(bStarted, killed) != 0 {
		t.Errorf("the standby called Adobe %d times while the other replica led", b.requestsIn(bStarted, killed))
	}

	// The standby takes over once the lease runs out: not before (two
	// leaders), and within the bound the lease settings give.
	tookOver := b.waitElected(t, leaseDuration+time.Minute)
	takeover := tookOver.Sub(killed)
	checkTakeover(t, "standby b", lastRenew, killed, tookOver)
	if n := a.requestsIn(tookOver, time.Now().Add(time.Hour)); n != 0 {
		t.Errorf("the dead leader called Adobe %d times after the standby took over", n)
	}
	aRequests := len(a.rec.Requests())
	if first := firstRequest(b); !first.IsZero() && first.Before(tookOver) {
		t.Errorf("the standby called Adobe %s before it was elected", tookOver.Sub(first))
	}

	localenvtest.WaitUntil(t, 90*time.Second, "every resource Ready under the new leader", func(context.Context) (bool, error) { return countReady(t, ns) == resources, nil })
	list := suite.List(t, ns)
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

	// b dies keeping the lease too: a fresh standby c waits it out.
	c := startReplica(t, ns, "c", true)
	c.assertStandby(t, "b")
	bRenew := leaseRenewTime(t, ns)
	bKilled := b.kill()
	cTookOver := c.waitElected(t, leaseDuration+time.Minute)
	handover := cTookOver.Sub(bKilled)
	checkTakeover(t, "replica c", bRenew, bKilled, cTookOver)
	localenvtest.WaitUntil(t, 60*time.Second, "every resource Ready under the third leader", func(context.Context) (bool, error) { return countReady(t, ns) == resources, nil })

	// A rolling update: c stops cleanly and gives the lease up (as the
	// production default does); the standby d takes it at its next try,
	// without waiting for the lease to run out, and finds nothing to create.
	d := startReplica(t, ns, "d", true)
	d.assertStandby(t, "c")
	released := c.kill()
	graceful := d.waitElected(t, leaseDuration+time.Minute).Sub(released)
	if most := maxTryInterval + machineSlack; graceful > most {
		t.Errorf("after a clean stop that gave the lease up, the standby took %s to take over, want within %s (one try of up to %s + %s slack; the lease is %s)",
			graceful, most, maxTryInterval, machineSlack, leaseWhole)
	}

	// Clean up under the last leader: nothing left in Adobe.
	for _, cs := range sources {
		if err := suite.Env.Client.Delete(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	localenvtest.WaitUntil(t, 60*time.Second, "every resource deleted", func(context.Context) (bool, error) { return len(suite.List(t, ns)) == 0, nil })
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
func leaseRenewTime(t *testing.T, ns string) time.Time {
	t.Helper()
	var l coordinationv1.Lease
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: leaseName}, &l); err != nil {
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

func countReady(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	for _, cs := range suite.List(t, ns) {
		if localenvtest.IsReady(&cs) {
			n++
		}
	}
	return n
}
