// Package upgrade_test upgrades the operator in place: sources brought to
// Ready by the manager of an earlier commit of main, built from this clone's
// own history, are taken over by the current one without an Adobe write, a
// status change beyond what the new version adds, or a condition flap; and
// the reverse (downgrade) deletes and duplicates nothing in Adobe.
package upgrade_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

// pinnedCommit is the earlier main the upgrade starts from: the last commit
// of main before Reliability II and the platform-team work (issues 14 and
// 16) branched off it, so the test covers what they add.
const pinnedCommit = "702ccd3"

const (
	clientID     = "upgrade-client"
	clientSecret = "upgrade-secret-4f8a2c6e1d3b5a70"
)

var (
	suite = &localenvtest.Suite{ClientID: clientID, ClientSecret: clientSecret, Timeout: 2 * time.Minute, LeakCheck: true}
	rec   = suite.NewRecorder("", nil)
)

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// addedSince lists what the current version adds to a settled source's
// status over pinnedCommit: condition types and status fields (their JSON
// names) it may write on its first pass. Anything else it writes is a
// change the upgrade must not make.
var addedSince = struct{ conditions, fields []string }{}

// buildPinned builds the manager of pinnedCommit from this clone's history
// (git archive of the commit into a temporary folder: nothing is written to
// the repository). Without that history the test is skipped, or fails
// under CI=true.
func buildPinned(t *testing.T) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + ": the upgrade test needs the history of main back to " + pinnedCommit + " (a full clone; `git fetch --unshallow` for a shallow one)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("git"); err != nil {
		missing("no git on PATH")
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", pinnedCommit+"^{commit}").CombinedOutput(); err != nil {
		missing("commit %s is not in this clone (%v: %s)", pinnedCommit, err, bytes.TrimSpace(out))
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "src.tar")
	if out, err := exec.Command("git", "-C", root, "archive", "--format=tar", "-o", tarball, pinnedCommit).CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v: %s", pinnedCommit, err, out)
	}
	if out, err := exec.Command("tar", "-x", "-f", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v: %s", pinnedCommit, err, out)
	}
	bin := filepath.Join(dir, "manager-"+pinnedCommit)
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the manager of %s: %v\n%s", pinnedCommit, err, out)
	}
	return bin
}

// oldOperator runs the pinned manager as a process.
type oldOperator struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startOld(t *testing.T, bin, kubeconfig string) *oldOperator {
	t.Helper()
	o := &oldOperator{}
	o.cmd = exec.Command(bin,
		"--kubeconfig="+kubeconfig,
		"--ims-url="+suite.Env.AdobeURL, "--platform-url="+suite.Env.AdobeURL, "--allow-insecure-endpoints",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false",
		"--resync-interval=1h", "--inlet-warmup=0s", "--adobe-qps=1000", "--adobe-burst=1000")
	o.cmd.Stdout, o.cmd.Stderr = &o.out, &o.out
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start the %s manager: %v", pinnedCommit, err)
	}
	t.Cleanup(func() { o.stop(t) })
	return o
}

func (o *oldOperator) stop(t *testing.T) {
	t.Helper()
	if o.cmd == nil || o.cmd.Process == nil || o.cmd.ProcessState != nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("the %s manager exited: %v; its log:\n%s", pinnedCommit, err, tail(o.out.String()))
		}
	case <-time.After(30 * time.Second):
		_ = o.cmd.Process.Kill()
		<-done
		t.Errorf("the %s manager did not stop on SIGTERM within 30s", pinnedCommit)
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// writes counts the calls that change something in Adobe.
func writes(c emulator.CallCounts) int {
	n := 0
	for _, k := range c.List() {
		op := k.Operation
		if strings.HasSuffix(op, ".create") || strings.HasSuffix(op, ".patch") || strings.HasSuffix(op, ".delete") ||
			strings.HasSuffix(op, ".update") || op == emulator.OpFlowsAction {
			n += k.Count
		}
	}
	return n
}

// waitRead waits until every source's dataflow has been read at least once
// more since the calls were reset: the operator has looked at each of them
// (a settled source's pass reads its dataflow and nothing else).
func waitRead(t *testing.T, n int, who string) {
	t.Helper()
	localenvtest.WaitUntil(t, suite.Timeout, who+" reading every dataflow", func(context.Context) (bool, error) {
		return suite.Env.Emulator.Calls().Op(emulator.OpFlowsGet) >= n, nil
	})
}

// strip removes what the current version adds from a status, so what is
// left compares with the earlier version's.
func strip(st v1alpha1.CapillarySourceStatus) v1alpha1.CapillarySourceStatus {
	st = *st.DeepCopy()
	st.Conditions = slices.DeleteFunc(st.Conditions, func(c metav1.Condition) bool { return slices.Contains(addedSince.conditions, c.Type) })
	if len(addedSince.fields) > 0 {
		var m map[string]any
		b, _ := json.Marshal(st)
		_ = json.Unmarshal(b, &m)
		for _, f := range addedSince.fields {
			delete(m, f)
		}
		b, _ = json.Marshal(m)
		st = v1alpha1.CapillarySourceStatus{}
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func TestUpgradeAndDowngrade(t *testing.T) {
	bin := buildPinned(t)
	n := 20
	kubeconfig, err := suite.Env.ControlPlane.KubeconfigBytes()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := suite.NewNamespace(t, "upgrade")

	// The earlier version brings the sources to Ready.
	old := startOld(t, bin, kcPath)
	var sources []*v1alpha1.CapillarySource
	for i := range n {
		cs := localenvtest.NewSource(ns, fmt.Sprintf("src-%02d", i))
		if i%5 == 4 {
			cs.Spec.Suspend = true
		}
		suite.Create(t, cs)
		sources = append(sources, cs)
	}
	t.Cleanup(func() {
		ix := ownership.NewIndex(suite.Env.Emulator.Objects())
		for _, cs := range sources {
			for _, kind := range ownership.Kinds {
				for _, o := range ix.Of(cs.UID, kind) {
					suite.Env.Emulator.Vanish(kind, o.ID)
				}
			}
		}
	})
	for _, cs := range sources {
		suite.WaitFor(t, cs, "Ready under "+pinnedCommit, localenvtest.IsReady)
	}
	old.stop(t)
	settled := map[string]v1alpha1.CapillarySourceStatus{}
	for _, cs := range suite.List(t, ns) {
		settled[cs.Name] = cs.Status
	}
	objects := suite.Env.Emulator.Objects()

	// Upgrade: the current version takes over.
	log, err := localenvtest.RecordStatus(suite.Env.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	baseline := log.Len()
	suite.Env.Emulator.ResetCalls()
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	// The current version spreads its first check of settled sources over
	// the resync interval (--restart-spread): a short one lets it read every
	// dataflow within the wait, as shipped.
	o.ResyncInterval = 20 * time.Second
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	m, err := suite.Env.StartManager(o)
	if err != nil {
		t.Fatal(err)
	}
	waitRead(t, n, "the current version")
	// Stopping waits for the passes in flight, so every write they make is
	// made; the final read below catches one the watch had not delivered.
	if err := m.Stop(); err != nil {
		t.Errorf("the current operator stopped with an error: %v", err)
	}
	upCalls := suite.Env.Emulator.Calls()
	final := suite.List(t, ns)
	log.Stop()

	upWrites := writes(upCalls)
	changes, flaps, versions := 0, 0, log.Len()-baseline
	for _, cs := range sources {
		for _, v := range log.Versions(cs.Name) {
			if !equality.Semantic.DeepEqual(strip(v.Status), strip(settled[cs.Name])) {
				changes++
				t.Errorf("%s: the upgrade changed status (resourceVersion %s):\n before %+v\n after  %+v", cs.Name, v.ResourceVersion, settled[cs.Name], v.Status)
			}
		}
		if runs := log.ReadyRuns(cs.Name); len(runs) != 1 || !strings.HasPrefix(runs[0], "True/") {
			flaps++
			t.Errorf("%s: Ready went %v across the upgrade, want True throughout", cs.Name, runs)
		}
	}
	for _, cs := range final {
		if !localenvtest.IsReady(&cs) {
			t.Errorf("%s not Ready after the upgrade", cs.Name)
		}
		if !equality.Semantic.DeepEqual(strip(cs.Status), strip(settled[cs.Name])) {
			changes++
			t.Errorf("%s: the upgrade changed status:\n before %+v\n after  %+v", cs.Name, settled[cs.Name], cs.Status)
		}
	}
	if upWrites != 0 {
		t.Errorf("%d Adobe writes during the upgrade, want 0: %v", upWrites, upCalls.List())
	}

	// Downgrade: the earlier version takes over again.
	suite.Env.Emulator.ResetCalls()
	old = startOld(t, bin, kcPath)
	waitRead(t, n, "the "+pinnedCommit+" version")
	downCalls := suite.Env.Emulator.Calls()
	old.stop(t)
	deletes, creates := 0, 0
	for _, k := range downCalls.List() {
		switch {
		case strings.HasSuffix(k.Operation, ".delete"):
			deletes += k.Count
		case strings.HasSuffix(k.Operation, ".create"):
			creates += k.Count
		}
	}
	report := ownership.Check(suite.Env.Emulator.Objects(), suite.List(t, ns), nil)
	if deletes != 0 || creates != 0 || report.Duplicates != 0 || report.Missing != 0 {
		t.Errorf("the downgrade made %d deletes and %d creates in Adobe; %d duplicates, %d missing: %v", deletes, creates, report.Duplicates, report.Missing, report.Problems)
	}
	if before, after := objects.Len(), suite.Env.Emulator.Objects().Len(); before != after {
		t.Errorf("Adobe held %d objects before the upgrade and %d after the downgrade", before, after)
	}
	fmt.Printf("\nupgrade from %s (built from this clone's history) to the current version: %d sources (every fifth suspended)\n"+
		"  upgrade             Adobe calls %d, writes %d; status versions %d (changes beyond %v: %d); Ready flaps %d\n"+
		"  downgrade           Adobe calls %d: creates %d, deletes %d; duplicates %d, missing %d\n",
		pinnedCommit, n, upCalls.Total(), upWrites, versions, addedSince, changes, flaps,
		downCalls.Total(), creates, deletes, report.Duplicates, report.Missing)
}
