package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeChildBinary()
	os.Exit(code)
}

// TestSmoke runs the whole harness small (N=20, 200 unrelated Secrets, a
// 10s resync) to keep it working, and checks the counts it reports: every
// source Ready, the create chain's calls, one token per credential, reads
// only and no Kubernetes writes in steady state. Timings are reported, never
// asserted.
func TestSmoke(t *testing.T) {
	t.Run("no authentication: 5 own calls per source", func(t *testing.T) { smoke(t, emulator.ConnectionAuthNone, perResourceOps) })
	// A connection spec with an authSpec costs one more: the base connection.
	t.Run("OAuth2: 6 own calls per source", func(t *testing.T) {
		smoke(t, emulator.ConnectionAuthOAuth2, append([]string{emulator.OpConnectionsCreate}, perResourceOps...))
	})
}

func smoke(t *testing.T, auth emulator.ConnectionAuth, ownOps []string) {
	if !controlplane.BinariesPresent() && os.Getenv("CI") != "true" {
		t.Skip("envtest binaries not built: run `make envtest`")
	}
	ctrl.SetLogger(logr.Discard())
	const n, secrets = 20, 200
	cfg := defaultConfig()
	cfg.ConnectionAuth = auth
	cfg.Sizes = []int{n}
	cfg.NoiseSecrets = secrets
	cfg.Latency = 5 * time.Millisecond
	cfg.Resync = 10 * time.Second // the shortest the manager accepts
	cfg.Probes = 1
	cfg.Counterfact = false
	cfg.OutDir = t.TempDir()
	// The limiter phase small: 20 sources on one credential at a 50/s
	// server limit, adaptive and baseline; the restart window short.
	cfg.Limits, cfg.LimiterN = []float64{50}, n
	cfg.RestartWindow = 5 * time.Second

	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("bench run: %v\n%s", err, log.String())
	}
	if err := rep.write(cfg.OutDir); err != nil {
		t.Fatalf("write report: %v", err)
	}
	t.Logf("harness log:\n%s", log.String())

	// The report is on disk and reads back.
	b, err := os.ReadFile(filepath.Join(cfg.OutDir, "report.json"))
	if err != nil {
		t.Fatalf("report.json: %v", err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report.json does not decode: %v", err)
	}
	for _, f := range []string{"summary.txt", "time-to-ready-n20.svg"} {
		if fi, err := os.Stat(filepath.Join(cfg.OutDir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	if len(back.Runs) != 1 {
		t.Fatalf("report has %d runs, want 1", len(back.Runs))
	}
	r := back.Runs[0]

	if back.MemoryTrap.CachedSecrets < secrets {
		t.Errorf("manager's metadata cache saw %d of the %d unrelated Secrets", back.MemoryTrap.CachedSecrets, secrets)
	}
	if r.Cold.Ready != n || len(r.Cold.TimesSeconds) != n {
		t.Errorf("%d of %d sources Ready (%d times recorded)", r.Cold.Ready, n, len(r.Cold.TimesSeconds))
	}
	// The create chain: exactly one of each per source, nothing else of its own.
	for _, op := range ownOps {
		if got := r.Cold.Adobe.ByOp[op]; got != n {
			t.Errorf("cold: %s called %d times for %d sources, want %d", op, got, n, n)
		}
	}
	if most := float64(len(ownOps) + 1); r.Cold.Adobe.PerResource > most {
		t.Errorf("cold: %.2f Adobe calls per source excluding shared lookups, want ≤ %.0f", r.Cold.Adobe.PerResource, most)
	}
	if r.Cold.Adobe.Failed != 0 {
		t.Errorf("cold: %d Adobe calls failed", r.Cold.Adobe.Failed)
	}
	// Kubernetes writes per cold create, events included: the finalizer, the
	// create marker, the mapping set's ID, the final status and one Created
	// event (issue 15: ≤ 5 with a mapping set; the workload's sources have one).
	if most := 5 * n; r.Cold.Kube.Writes > most {
		t.Errorf("cold: %d Kubernetes writes for %d sources (%v), want at most 5 per source", r.Cold.Kube.Writes, n, r.Cold.Kube.WritesByVerb)
	}
	if got := r.Cold.Kube.WritesByVerb["create events"]; got > n {
		t.Errorf("cold: %d events for %d sources, want at most one each", got, n)
	}
	// The limiter phase ran both limiters to the end (its figures are make
	// bench's to report, not this test's to judge).
	if len(back.Limiter) != 2 {
		t.Errorf("limiter phase: %d runs, want 2 (adaptive, baseline)", len(back.Limiter))
	}
	for _, l := range back.Limiter {
		if l.Ready != l.N || l.Accepted < len(perResourceOps)*l.N {
			t.Errorf("limiter phase, %s: %d/%d Ready, %d calls answered", l.Mode, l.Ready, l.N, l.Accepted)
		}
	}
	if len(r.Cold.Adobe.TokensPerCredential) != cfg.Credentials {
		t.Errorf("cold: tokens for %d credentials, want %d", len(r.Cold.Adobe.TokensPerCredential), cfg.Credentials)
	}
	for id, c := range r.Cold.Adobe.TokensPerCredential {
		if c != 1 {
			t.Errorf("cold: %d IMS token requests for %s, want 1", c, id)
		}
	}
	// Steady state: the resyncs happened, read only the dataflow, wrote nothing.
	if r.Steady.Reconciles == 0 {
		t.Errorf("steady: no resync reconciles in a %.1fs window with a %s resync", r.Steady.WindowSeconds, r.Steady.ResyncInterval)
	}
	for op, c := range r.Steady.Adobe.ByOp {
		if op != emulator.OpFlowsGet {
			t.Errorf("steady: %d calls to %s, want only %s", c, op, emulator.OpFlowsGet)
		}
	}
	// The target: at most one read per source per resync period. Reads and
	// reconciles are counted at different moments (a reconcile is counted when
	// it ends), so one that straddles the window's edge may add a read
	// without its reconcile; the per-source bound has no such edge.
	if reads := r.Steady.Adobe.ByOp[emulator.OpFlowsGet]; reads > n {
		t.Errorf("steady: %d dataflow reads for %d sources and %d reconciles, want at most one per source", reads, n, r.Steady.Reconciles)
	}
	// While records flow: each reconcile reads the flow, and the runs only
	// when the run moved; at most one status write per reconcile.
	f := r.Flowing
	if f.EventsPosted != 4*n || f.Reconciles == 0 || f.RunsReads == 0 || f.RunsReads > f.FlowReads {
		t.Errorf("flowing: %d events, %d reconciles, %d flow reads, %d runs reads: want resyncs that read the runs at most once each", f.EventsPosted, f.Reconciles, f.FlowReads, f.RunsReads)
	}
	for op, c := range f.Adobe.ByOp {
		if op != emulator.OpFlowsGet && op != emulator.OpRunsList && op != emulator.OpCollection {
			t.Errorf("flowing: %d calls to %s, want only flow and runs reads", c, op)
		}
	}
	// Reconciles are counted when they end and writes when they happen: the
	// reconciles still running when the window closes (at most one per
	// worker) may have written without being counted.
	if most := f.Reconciles + r.Options.MaxConcurrentReconciles; f.Kube.Writes > most {
		t.Errorf("flowing: %d Kubernetes writes for %d reconciles (%v), want at most one per reconcile (+%d in flight)", f.Kube.Writes, f.Reconciles, f.Kube.WritesByVerb, r.Options.MaxConcurrentReconciles)
	}
	if r.Steady.Kube.Writes != 0 {
		t.Errorf("steady: %d Kubernetes writes (%v), want 0", r.Steady.Kube.Writes, r.Steady.Kube.WritesByVerb)
	}
	if len(r.NewResource.Seconds) != 1 || r.NewResource.Seconds[0] < 0 {
		t.Errorf("new source among N never became Ready: %v", r.NewResource.Seconds)
	}
	if len(r.Targets) == 0 || len(back.Targets) == 0 {
		t.Error("report compares no targets")
	}
}
