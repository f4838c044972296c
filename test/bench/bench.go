package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// config is one benchmark run's parameters (flags in main.go).
type config struct {
	Sizes         []int         // N, one measured run each
	Namespaces    int           // namespaces the CapillarySources are spread over
	Credentials   int           // K credential Secrets (and IMS clients) they share
	Orgs          int           // Adobe orgs the credentials belong to
	NoiseSecrets  int           // unrelated Secrets in other namespaces
	NoiseBytes    int           // size of each unrelated Secret's data
	NoiseApplied  bool          // unrelated Secrets carry kubectl's last-applied-configuration
	Latency       time.Duration // emulator latency on every Adobe call
	Resync        time.Duration // --resync-interval of the steady-state phase; 0 = auto
	ManagerArgs   []string      // extra manager flags, for both phases
	CreateWorkers int           // parallel creators (resources and Secrets)
	Probes        int           // new resources created one by one in steady state
	Counterfact   bool          // also measure a manager that caches Secret data
	Validate      bool          // validate every request against Adobe's OpenAPI specs
	// ConnectionAuth is the Capillary connection spec's variant the emulator
	// serves; none (the default) keeps the figures comparable with earlier runs.
	ConnectionAuth emulator.ConnectionAuth
	OutDir         string
	// Limits are the emulator's server-side limits (calls/s per credential)
	// the limiter phase runs at, each with the adaptive limiter (defaults)
	// and the fixed 20/s baseline; LimiterN sources on one credential.
	Limits   []float64
	LimiterN int
	// RestartWindow is how long after a restart the Adobe call rate is
	// sampled (the "minute after a restart").
	RestartWindow time.Duration
	// MemoryOnly: only the memory trap and the cold phase (memory at large
	// N, not throughput).
	MemoryOnly bool
}

func defaultConfig() config {
	return config{
		Sizes:         []int{100, 1000},
		Namespaces:    10,
		Credentials:   10,
		Orgs:          1,
		NoiseSecrets:  10000,
		NoiseBytes:    4096,
		Latency:       20 * time.Millisecond,
		CreateWorkers: 8,
		Probes:        3,
		Counterfact:   true,
		Limits:        []float64{10, 50},
		LimiterN:      1000,
		RestartWindow: time.Minute,
	}
}

// perResourceOps are the calls one source needs of its own to reach Ready;
// the token and the spec lookups are shared.
var perResourceOps = []string{
	emulator.OpSourceConnectionsCreate, emulator.OpTargetConnectionsCreate,
	emulator.OpMappingSetsCreate, emulator.OpFlowsCreate, emulator.OpFlowsGet,
}

// sharedOps are the calls shared by every source of a credential or org.
var sharedOps = []string{emulator.OpIMSToken, emulator.OpConnectionSpecsGet, emulator.OpFlowSpecsGet, emulator.OpFlowSpecsList, emulator.OpConnectionSpecsList}

const (
	datasetID = "6889f4f89b982b2b90bc1207"
	schemaID  = "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168"
)

// bench holds the environment shared by the runs.
type bench struct {
	cfg   config
	env   *localenv.Env
	log   io.Writer
	creds map[string]string // client ID → secret
}

func orgID(k int) string { return fmt.Sprintf("%024X@AdobeOrg", 0xBE0C0000+k) }

func clientID(k int) string { return fmt.Sprintf("bench-client-%d", k) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// run measures everything and returns the report; the report is written by
// the caller.
func run(ctx context.Context, cfg config, log io.Writer) (*report, error) {
	if cfg.Credentials < 1 || cfg.Namespaces < 1 || cfg.Orgs < 1 || len(cfg.Sizes) == 0 {
		return nil, errors.New("need at least one size, namespace, credential and org")
	}
	b := &bench{cfg: cfg, log: log, creds: map[string]string{}}
	for k := range cfg.Credentials {
		b.creds[clientID(k)] = "bench-secret-" + randomHex(12)
	}
	rep := newReport(cfg)

	b.logf("starting the control plane and the Adobe emulator (latency %s on every call)", cfg.Latency)
	env, err := localenv.Start(localenv.Options{
		Emulator: emulator.Options{
			Credentials:    b.creds,
			Faults:         emulator.Faults{Latency: cfg.Latency, Operations: []string{"*"}},
			ConnectionAuth: cfg.ConnectionAuth,
		},
		ValidateRequests: cfg.Validate,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	b.env = env

	if rep.MemoryTrap, err = b.memoryTrap(ctx); err != nil {
		return nil, fmt.Errorf("memory trap: %w", err)
	}
	for i, n := range cfg.Sizes {
		r, err := b.runSize(ctx, n, i)
		if err != nil {
			return nil, fmt.Errorf("run with %d sources: %w", n, err)
		}
		rep.Runs = append(rep.Runs, *r)
	}
	if !cfg.MemoryOnly && cfg.LimiterN > 0 {
		if rep.Limiter, err = b.limiterPhase(ctx); err != nil {
			return nil, fmt.Errorf("limiter phase: %w", err)
		}
	}
	rep.finish()
	return rep, nil
}

// memoryTrap measures what the unrelated Secrets cost the manager: a fresh
// manager's settled RSS without them, the same manager after they were
// created and reached its cache, fresh managers started with them present,
// and (the counterfactual) one that also caches their data.
func (b *bench) memoryTrap(ctx context.Context) (memoryTrap, error) {
	m := memoryTrap{Secrets: b.cfg.NoiseSecrets, SecretBytes: b.cfg.NoiseBytes}
	p, err := b.startManager(nil, false, "manager-memory.log")
	if err != nil {
		return m, err
	}
	defer func() { _ = p.stop() }()
	base, err := settledStats(p, true)
	if err != nil {
		return m, err
	}
	m.Before = base.Mem
	b.logf("manager idle: settled RSS %.1f MiB, heap %.1f MiB; creating %d unrelated Secrets of %d bytes", base.Mem.RSSMiB, base.Mem.HeapAllocMiB, b.cfg.NoiseSecrets, b.cfg.NoiseBytes)

	start := time.Now()
	if err := b.createNoise(ctx); err != nil {
		return m, err
	}
	m.CreateSeconds = time.Since(start).Seconds()
	want := base.CachedSecrets + b.cfg.NoiseSecrets
	deadline := time.Now().Add(5 * time.Minute)
	var after childStats
	for {
		if after, err = p.stats(false, true); err != nil {
			return m, err
		}
		if after.CachedSecrets >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	m.CachedSecrets = after.CachedSecrets - base.CachedSecrets
	if after, err = settledStats(p, true); err != nil {
		return m, err
	}
	m.After = after.Mem
	m.DeltaRSSMiB = after.Mem.RSSMiB - base.Mem.RSSMiB
	m.DeltaHeapMiB = after.Mem.HeapAllocMiB - base.Mem.HeapAllocMiB
	b.logf("created in %.1fs; manager cached %d Secrets' metadata: settled RSS %.1f MiB (%+.1f), heap %.1f MiB (%+.1f)",
		m.CreateSeconds, m.CachedSecrets, after.Mem.RSSMiB, m.DeltaRSSMiB, after.Mem.HeapAllocMiB, m.DeltaHeapMiB)
	if err := p.stop(); err != nil {
		return m, fmt.Errorf("stop manager: %w", err)
	}

	// Fresh managers started with the Secrets present (an initial list rather
	// than 10,000 watch events).
	fresh, err := b.oneShotStats(false, "manager-fresh.log")
	if err != nil {
		return m, err
	}
	m.FreshWithSecrets = fresh.Mem
	if b.cfg.Counterfact {
		trap, err := b.oneShotStats(true, "manager-counterfactual.log")
		if err != nil {
			return m, err
		}
		m.Counterfactual = &trap.Mem
		b.logf("fresh manager with the Secrets present: settled RSS %.1f MiB; one that cached their data too: %.1f MiB",
			fresh.Mem.RSSMiB, trap.Mem.RSSMiB)
	}
	return m, nil
}

func (b *bench) oneShotStats(cacheData bool, logName string) (childStats, error) {
	p, err := b.startManager(nil, cacheData, logName)
	if err != nil {
		return childStats{}, err
	}
	st, err := settledStats(p, false)
	if serr := p.stop(); err == nil && serr != nil {
		err = serr
	}
	return st, err
}

// effectiveOptions are the manager's defaults with the -manager-args applied.
func (b *bench) effectiveOptions() (childOptions, error) {
	o := manager.Defaults()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.BindFlags(fs)
	if err := fs.Parse(b.cfg.ManagerArgs); err != nil {
		return childOptions{}, fmt.Errorf("-manager-args: %w", err)
	}
	return childOptions{
		ResyncInterval: o.ResyncInterval.String(), Resync: o.ResyncInterval,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles, AdobeQPS: o.AdobeQPS, AdobeBurst: o.AdobeBurst,
		AdobeAdaptive: o.AdobeAdaptive, RestartSpread: o.RestartSpread,
	}, nil
}

// settledStats reads the child's memory after a GC, again each second
// until the live heap stops moving (events still being handed out right
// after a start or a burst hold memory for a moment). Counting the cached
// Secrets (secrets) copies them all, which raises the child's peak RSS.
func settledStats(p *managerProc, secrets bool) (childStats, error) {
	prev, err := p.stats(true, secrets)
	for i := 0; err == nil && i < 10; i++ {
		time.Sleep(time.Second)
		var cur childStats
		if cur, err = p.stats(true, secrets); err != nil {
			break
		}
		stable := math.Abs(cur.Mem.HeapAllocMiB-prev.Mem.HeapAllocMiB) < 0.25
		prev = cur
		if stable {
			break
		}
	}
	return prev, err
}

func (b *bench) startManager(args []string, cacheData bool, logName string) (*managerProc, error) {
	all := append(slices.Clone(b.cfg.ManagerArgs), args...)
	return startManager(b.env.Config, b.env.AdobeURL, all, cacheData, filepath.Join(b.cfg.OutDir, logName))
}

// createNoise creates the unrelated Secrets: NoiseSecrets of NoiseBytes
// each, over ten namespaces no CapillarySource lives in.
func (b *bench) createNoise(ctx context.Context) error {
	const nss = 10
	for i := range nss {
		if err := b.ensureNamespace(ctx, fmt.Sprintf("noise-%d", i)); err != nil {
			return err
		}
	}
	return parallel(ctx, b.cfg.NoiseSecrets, b.cfg.CreateWorkers, func(ctx context.Context, i int) error {
		blob := make([]byte, b.cfg.NoiseBytes)
		_, _ = rand.Read(blob)
		s := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("noise-%d", i%nss), Name: fmt.Sprintf("unrelated-%05d", i)},
			Data:       map[string][]byte{"blob": blob},
		}
		if b.cfg.NoiseApplied {
			// What `kubectl apply` leaves: the whole object, data included,
			// in an annotation, which a metadata-only watch still caches.
			applied, err := json.Marshal(s)
			if err != nil {
				return err
			}
			s.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(applied)}
		}
		return b.env.Client.Create(ctx, s)
	})
}

func (b *bench) ensureNamespace(ctx context.Context, name string) error {
	err := b.env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// parallel runs f(0..n-1) on workers goroutines, stopping at the first error.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// workload places resource j: its namespace, credential and org.
type workload struct {
	prefix                        string
	namespaces, credentials, orgs int
}

func (w workload) namespace(k int) string { return fmt.Sprintf("%s-%d", w.prefix, k%w.namespaces) }

func (w workload) source(j int) *v1alpha1.CapillarySource {
	k := j % w.credentials
	return &v1alpha1.CapillarySource{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace(k), Name: fmt.Sprintf("src-%05d", j)},
		Spec: v1alpha1.CapillarySourceSpec{
			CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: fmt.Sprintf("adobe-%d", k)},
			OrgID:                orgID(k % w.orgs),
			Target:               v1alpha1.Target{DatasetID: datasetID, SchemaID: schemaID},
			Mappings: []v1alpha1.Mapping{
				{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"},
				{SourceAttribute: "identityMap.email.id", DestinationXdmPath: "identityMap.email[0].id", Identity: true},
			},
		},
	}
}

// tracker records when each resource was created and first seen Ready,
// through an informer (watch) on CapillarySources.
type tracker struct {
	mu      sync.Mutex
	created map[string]time.Time
	ready   map[string]time.Time
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, ready: map[string]time.Time{}}
}

func (t *tracker) markCreated(key string, at time.Time) {
	t.mu.Lock()
	t.created[key] = at
	t.mu.Unlock()
}

func (t *tracker) observe(obj any) {
	cs, ok := obj.(*v1alpha1.CapillarySource)
	if !ok || !isReady(cs) {
		return
	}
	now := time.Now()
	key := cs.Namespace + "/" + cs.Name
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, tracked := t.created[key]; tracked {
		if _, seen := t.ready[key]; !seen {
			t.ready[key] = now
		}
	}
}

func (t *tracker) readyCount(keys []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := t.ready[k]; ok {
			n++
		}
	}
	return n
}

// durations returns each ready resource's create→Ready time, the first
// create and the last Ready.
func (t *tracker) durations(keys []string) (ds []time.Duration, first, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		c := t.created[k]
		if first.IsZero() || c.Before(first) {
			first = c
		}
		r, ok := t.ready[k]
		if !ok {
			continue
		}
		ds = append(ds, r.Sub(c))
		if r.After(last) {
			last = r
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds, first, last
}

func isReady(cs *v1alpha1.CapillarySource) bool {
	return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) &&
		cs.Status.ObservedGeneration == cs.Generation
}

// watchSources starts an informer that feeds t.
func (b *bench) watchSources(ctx context.Context, t *tracker) error {
	c, err := cache.New(b.env.Config, cache.Options{Scheme: manager.Scheme()})
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.CapillarySource{})
	if err != nil {
		return err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	}); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return errors.New("harness informer did not sync")
	}
	return nil
}

// runSize measures one N: cold creation to Ready with production defaults,
// then a restart with a short resync interval, one resync period of steady
// state, and new resources created among the N.
func (b *bench) runSize(ctx context.Context, n, index int) (*runReport, error) {
	cfg := b.cfg
	w := workload{prefix: fmt.Sprintf("bench-%d", index), namespaces: cfg.Namespaces, credentials: cfg.Credentials, orgs: cfg.Orgs}
	for k := range cfg.Credentials {
		ns := w.namespace(k)
		if err := b.ensureNamespace(ctx, ns); err != nil {
			return nil, err
		}
		id := clientID(k)
		if err := b.env.Client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("adobe-%d", k)},
			StringData: map[string]string{"clientId": id, "clientSecret": b.creds[id]},
		}); err != nil {
			return nil, fmt.Errorf("create credential Secret: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTracker()
	if err := b.watchSources(runCtx, t); err != nil {
		return nil, err
	}
	r := &runReport{N: n}

	// Phase 1: cold create with the production defaults (10m resync). When
	// the run would outlast a resync, the interval is raised for this phase,
	// so that the calls counted are the ones that bring sources to Ready;
	// resync reads are the steady phase's to measure.
	var coldArgs []string
	if eff, err := b.effectiveOptions(); err != nil {
		return nil, err
	} else if bound := throughputBound(n, cfg.Latency, eff); bound.TargetSeconds > 0.9*eff.Resync.Seconds() {
		longer := time.Duration(2*bound.TargetSeconds) * time.Second
		longer = longer.Truncate(time.Minute) + time.Minute
		coldArgs = []string{"--resync-interval=" + longer.String()}
	}
	p, err := b.startManager(coldArgs, false, fmt.Sprintf("manager-n%d-cold.log", n))
	if err != nil {
		return nil, err
	}
	st0, err := p.stats(true, false)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	r.Options = st0.Options
	r.Bound = throughputBound(n, cfg.Latency, st0.Options)
	b.logf("N=%d: manager up (resync %s, %d workers, %.0f qps burst %d per credential); bound %.1fs, target %.1fs; creating %d sources",
		n, st0.Options.ResyncInterval, st0.Options.MaxConcurrentReconciles, st0.Options.AdobeQPS, st0.Options.AdobeBurst, r.Bound.Seconds, r.Bound.TargetSeconds, n)
	b.env.Emulator.ResetCalls()

	keys := make([]string, n)
	createStart := time.Now()
	err = parallel(ctx, n, cfg.CreateWorkers, func(ctx context.Context, j int) error {
		cs := w.source(j)
		keys[j] = cs.Namespace + "/" + cs.Name
		t.markCreated(keys[j], time.Now())
		return b.env.Client.Create(ctx, cs)
	})
	if err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("create sources: %w", err)
	}
	r.Cold.CreateSeconds = time.Since(createStart).Seconds()
	timeout := 5*time.Minute + time.Duration(3*r.Bound.Seconds*float64(time.Second))
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for t.readyCount(keys) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if time.Since(lastLog) > 15*time.Second {
			b.logf("N=%d: %d/%d Ready after %.0fs", n, t.readyCount(keys), n, time.Since(createStart).Seconds())
			lastLog = time.Now()
		}
	}
	ds, first, last := t.durations(keys)
	r.Cold.Ready = len(ds)
	r.Cold.Distribution = ds
	if len(ds) > 0 {
		r.Cold.AllReadySeconds = last.Sub(first).Seconds()
		r.Cold.P50Seconds = percentile(ds, 0.50).Seconds()
		r.Cold.P90Seconds = percentile(ds, 0.90).Seconds()
		r.Cold.P99Seconds = percentile(ds, 0.99).Seconds()
		r.Cold.MaxSeconds = ds[len(ds)-1].Seconds()
	}
	if r.Cold.Ready < n {
		r.Cold.TimedOut = true
		r.Cold.AllReadySeconds = time.Since(first).Seconds()
	}
	calls := b.env.Emulator.Calls()
	st1, err := p.stats(false, false)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	st1s, err := settledStats(p, false)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	r.Cold.Adobe = adobeUsage(calls, n)
	r.Cold.Kube = kubeUsage(st0, st1, n)
	r.Cold.CPUSeconds = st1.CPUSeconds - st0.CPUSeconds
	r.Cold.Mem = st1.Mem
	r.Cold.MemSettled = st1s.Mem
	b.logf("N=%d: %d Ready in %.1fs (p50 %.2fs, p99 %.2fs); %.2f Adobe calls per source (+%d shared), %.2f Kubernetes writes per source; manager CPU %.1fs, RSS %.1f MiB (peak %.1f)",
		n, r.Cold.Ready, r.Cold.AllReadySeconds, r.Cold.P50Seconds, r.Cold.P99Seconds, r.Cold.Adobe.PerResource, r.Cold.Adobe.Shared,
		r.Cold.Kube.WritesPerResource, r.Cold.CPUSeconds, st1.Mem.RSSMiB, st1.Mem.HWMMiB)
	if err := p.stop(); err != nil {
		return nil, fmt.Errorf("stop manager: %w", err)
	}
	r.PeakRSSMiB = st1.Mem.HWMMiB
	if cfg.MemoryOnly {
		r.Steady.MemSettled = st1s.Mem
		return r, b.removeSources(ctx, keys)
	}

	// Phase 2a: a restart as shipped (defaults: resync 10m, restart spread,
	// adaptive limiter); the Adobe call rate over its first minute.
	b.env.Emulator.ResetCalls()
	p, err = b.startManager(coldArgs, false, fmt.Sprintf("manager-n%d-restart.log", n))
	if err != nil {
		return nil, err
	}
	eff, _ := b.effectiveOptions()
	resyncProd := eff.Resync
	if len(coldArgs) > 0 {
		resyncProd, _ = time.ParseDuration(strings.TrimPrefix(coldArgs[0], "--resync-interval="))
	}
	r.RestartSpread = b.sampleRestart(ctx, n, resyncProd)
	b.logf("N=%d: restart as shipped: %d calls (%d flow reads) in the first %.0fs; peak %.2f calls/s over 10s (reads %.2f/s) against a steady %.2f/s",
		n, r.RestartSpread.Calls, r.RestartSpread.Reads, r.RestartSpread.WindowSeconds, r.RestartSpread.PeakCallsPerSecond, r.RestartSpread.PeakReadsPerSecond, r.RestartSpread.SteadyPerSecond)
	if err := p.stop(); err != nil {
		return nil, fmt.Errorf("stop manager: %w", err)
	}

	// Phase 2: restart as main did at the baseline (no spread, the fixed
	// 20/s limiter) with a short resync interval; the restart pass, then one
	// resync period of steady state. Its first minute is the restart
	// figure's baseline.
	resync := cfg.Resync
	if resync == 0 {
		resync = autoResync(n, flowservice.FixedQPS)
	}
	r.Steady.ResyncInterval = resync.String()
	b.env.Emulator.ResetCalls()
	restartAt := time.Now()
	p, err = b.startManager(append(baselineArgs(), "--resync-interval="+resync.String()), false, fmt.Sprintf("manager-n%d-steady.log", n))
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.stop() }()
	baselineSample := make(chan restartSample, 1)
	go func() { baselineSample <- b.sampleRestart(ctx, n, resyncProd) }()
	s0, err := p.stats(false, false)
	if err != nil {
		return nil, err
	}
	var s1 childStats
	for {
		if s1, err = p.stats(false, false); err != nil {
			return nil, err
		}
		if sum(s1.Reconciles) >= n && s1.QueueDepth == 0 || time.Since(restartAt) > timeout {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.Restart.Seconds = time.Since(restartAt).Seconds()
	r.RestartBaseline = <-baselineSample
	r.Restart.Reconciles = sum(s1.Reconciles)
	r.Restart.Adobe = adobeUsage(b.env.Emulator.Calls(), n)
	r.Restart.Kube = kubeUsage(s0, s1, n)
	r.Restart.CPUSeconds = s1.CPUSeconds - s0.CPUSeconds
	b.logf("N=%d: restart pass: %d reconciles in %.1fs, %.2f Adobe calls and %.2f Kubernetes writes per source",
		n, r.Restart.Reconciles, r.Restart.Seconds, float64(r.Restart.Adobe.Total)/float64(n), r.Restart.Kube.WritesPerResource)

	// One resync period of steady state.
	b.env.Emulator.ResetCalls()
	if err := p.reset(); err != nil {
		return nil, err
	}
	w0, err := p.stats(false, false)
	if err != nil {
		return nil, err
	}
	b.logf("N=%d: steady state for one resync period (%s)", n, resync)
	windowStart := time.Now()
	time.Sleep(resync)
	w1, err := p.stats(false, false)
	if err != nil {
		return nil, err
	}
	window := time.Since(windowStart)
	steadyCalls := b.env.Emulator.Calls()
	r.Steady.WindowSeconds = window.Seconds()
	r.Steady.Reconciles = sum(w1.Reconciles) - sum(w0.Reconciles)
	r.Steady.Adobe = adobeUsage(steadyCalls, n)
	r.Steady.Kube = kubeUsage(w0, w1, n)
	r.Steady.CPUSeconds = w1.CPUSeconds - w0.CPUSeconds
	periods := window.Seconds() / resync.Seconds()
	r.Steady.ReadsPerResourcePerPeriod = float64(steadyCalls.Total()) / float64(n) / periods
	if r.Steady.Reconciles > 0 {
		r.Steady.CallsPerReconcile = float64(steadyCalls.Total()) / float64(r.Steady.Reconciles)
		r.Steady.WritesPerReconcile = float64(r.Steady.Kube.Writes) / float64(r.Steady.Reconciles)
	}
	r.Steady.ReconcilesPerResourcePerPeriod = float64(r.Steady.Reconciles) / float64(n) / periods
	r.Steady.Mem = w1.Mem
	b.logf("N=%d: %d resync reconciles: %d Adobe calls (%.2f per reconcile), %d Kubernetes writes; CPU %.2fs",
		n, r.Steady.Reconciles, steadyCalls.Total(), r.Steady.CallsPerReconcile, r.Steady.Kube.Writes, r.Steady.CPUSeconds)

	// One more resync period while records flow: every inlet gets events,
	// spread over the period, so the ingestion reads and writes show.
	if r.Flowing, err = b.flowing(ctx, p, keys, resync); err != nil {
		return nil, fmt.Errorf("steady state while records flow: %w", err)
	}
	b.logf("N=%d: while records flow: %d events, %d reconciles, %d flow reads, %d runs reads, %.2f Kubernetes writes per reconcile",
		n, r.Flowing.EventsPosted, r.Flowing.Reconciles, r.Flowing.FlowReads, r.Flowing.RunsReads, r.Flowing.WritesPerReconcile)

	// New resources among the N, while resyncs go on.
	all := slices.Clone(keys)
	probe := func() (float64, error) {
		cs := w.source(len(all))
		key := cs.Namespace + "/" + cs.Name
		all = append(all, key)
		start := time.Now()
		t.markCreated(key, start)
		if err := b.env.Client.Create(ctx, cs); err != nil {
			return 0, fmt.Errorf("create new source: %w", err)
		}
		for t.readyCount([]string{key}) == 0 && time.Since(start) < 2*time.Minute {
			time.Sleep(10 * time.Millisecond)
		}
		if d, _, _ := t.durations([]string{key}); len(d) == 1 {
			return d[0].Seconds(), nil
		}
		return -1, nil
	}
	for i := range cfg.Probes {
		secs, err := probe()
		if err != nil {
			return nil, err
		}
		r.NewResource.Seconds = append(r.NewResource.Seconds, secs)
		b.logf("N=%d: new source %d Ready after %.3fs", n, i+1, secs)
		if i < cfg.Probes-1 {
			time.Sleep(resync / time.Duration(cfg.Probes*2))
		}
	}
	r.NewResource.OwnCallLatencySeconds = float64(len(perResourceOps)) * cfg.Latency.Seconds()
	end, err := settledStats(p, false)
	if err != nil {
		return nil, err
	}
	r.Steady.MemSettled = end.Mem
	r.PeakRSSMiB = max(st1.Mem.HWMMiB, end.Mem.HWMMiB)
	r.SteadyOptions = end.Options
	if err := p.stop(); err != nil {
		return nil, fmt.Errorf("stop manager: %w", err)
	}

	// The worst moment for new work: a restart, when all N are queued (at
	// low priority, as the initial list) and the rate limit is saturated.
	if cfg.Probes > 0 {
		p, err := b.startManager(coldArgs, false, fmt.Sprintf("manager-n%d-restart-probe.log", n))
		if err != nil {
			return nil, err
		}
		secs, err := probe()
		_ = p.stop()
		if err != nil {
			return nil, err
		}
		r.NewResource.DuringRestartSeconds = secs
		b.logf("N=%d: new source created as a manager restarts with %d queued: Ready after %.3fs", n, n, secs)
	}

	// Clear the way for the next N: with no manager running, drop the
	// finalizers and delete (the Adobe objects stay in the emulator).
	if err := b.removeSources(ctx, all); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *bench) removeSources(ctx context.Context, keys []string) error {
	return parallel(ctx, len(keys), b.cfg.CreateWorkers, func(ctx context.Context, i int) error {
		ns, name, _ := strings.Cut(keys[i], "/")
		cs := &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
		if err := b.env.Client.Patch(ctx, cs, patch); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("remove finalizer of %s: %w", keys[i], err)
		}
		return client.IgnoreNotFound(b.env.Client.Delete(ctx, cs))
	})
}

// baselineArgs make a manager behave as main did at 702ccd3 where this
// issue's changes have flags: no restart spread, a fixed 20 calls/s limiter
// with a burst of 40 per org (the org-wide ceiling; each credential's own
// fixed bucket is no tighter).
func baselineArgs() []string {
	return append([]string{"--restart-spread=false"}, baselineLimiterArgs()...)
}

func baselineLimiterArgs() []string {
	q := fmt.Sprintf("%.0f", flowservice.FixedQPS)
	return []string{"--adobe-adaptive=false", "--adobe-qps=" + q, "--adobe-burst=40", "--adobe-org-qps=" + q, "--adobe-org-burst=40"}
}

// restartSample is the Adobe call rate in the window after a restart.
type restartSample struct {
	WindowSeconds float64 `json:"windowSeconds"`
	Calls         int     `json:"calls"`
	Reads         int     `json:"flowReads"`
	// PeakCallsPerSecond and PeakReadsPerSecond are the highest rates over
	// 10 seconds (sampled each second) of all Adobe calls and of flow reads.
	PeakCallsPerSecond float64 `json:"peakCallsPerSecond"`
	PeakReadsPerSecond float64 `json:"peakReadsPerSecond"`
	// SteadyPerSecond is N ÷ the resync interval: the steady read rate.
	SteadyPerSecond float64 `json:"steadyPerSecond"`
	ResyncInterval  string  `json:"resyncInterval"`
}

// sampleRestart counts the emulator's calls each second for the restart
// window (the caller reset the counters at the restart).
func (b *bench) sampleRestart(ctx context.Context, n int, resync time.Duration) restartSample {
	rs := restartSample{ResyncInterval: resync.String()}
	if resync > 0 {
		rs.SteadyPerSecond = float64(n) / resync.Seconds()
	}
	start := time.Now()
	var calls, reads []int
	for time.Since(start) < b.cfg.RestartWindow && ctx.Err() == nil {
		time.Sleep(time.Second)
		c := b.env.Emulator.Calls()
		calls = append(calls, c.Total())
		reads = append(reads, c.Op(emulator.OpFlowsGet))
	}
	rs.WindowSeconds = time.Since(start).Seconds()
	if len(calls) > 0 {
		rs.Calls, rs.Reads = calls[len(calls)-1], reads[len(reads)-1]
	}
	rs.PeakCallsPerSecond = peakRate(calls, 10)
	rs.PeakReadsPerSecond = peakRate(reads, 10)
	return rs
}

// peakRate is the highest (cum[i] − cum[i−w]) ÷ w over a series of
// cumulative counts taken each second (cum[−1] = 0); shorter series use
// their whole length.
func peakRate(cum []int, w int) float64 {
	if len(cum) == 0 {
		return 0
	}
	w = min(w, len(cum))
	at := func(i int) int {
		if i < 0 {
			return 0
		}
		return cum[i]
	}
	best := 0
	for i := w - 1; i < len(cum); i++ {
		best = max(best, at(i)-at(i-w))
	}
	return float64(best) / float64(w)
}

// autoResync keeps the steady-state read rate (N per resync interval) at
// half the baseline's per-org rate limit, as 5000 sources at the production
// 10m do at 20 qps (8.3 reads/s); never under 20s.
func autoResync(n int, qps float64) time.Duration {
	d := 20 * time.Second
	if qps > 0 {
		need := time.Duration(float64(n) / (qps / 2) * float64(time.Second))
		d = max(d, need.Round(time.Second))
	}
	return d
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// flowing measures one resync period in which each source's inlet receives
// an event every quarter period.
func (b *bench) flowing(ctx context.Context, p *managerProc, keys []string, resync time.Duration) (flowingReport, error) {
	var rep flowingReport
	type inlet struct{ url, flow, bearer string }
	var inlets []inlet
	tokens := map[string]string{} // Secret → token, for OAuth2 inlets
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		cs := &v1alpha1.CapillarySource{}
		if err := b.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cs); err != nil {
			return rep, err
		}
		in := inlet{url: cs.Status.InletURL, flow: cs.Status.DataflowID}
		if cs.Status.InletAuthentication == v1alpha1.InletAuthenticationOAuth2 {
			ref := ns + "/" + cs.Spec.CredentialsSecretRef.Name
			if tokens[ref] == "" {
				secret := &corev1.Secret{}
				if err := b.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: cs.Spec.CredentialsSecretRef.Name}, secret); err != nil {
					return rep, err
				}
				tok, err := localenv.IMSToken(ctx, b.env.AdobeURL, string(secret.Data["clientId"]), string(secret.Data["clientSecret"]))
				if err != nil {
					return rep, err
				}
				tokens[ref] = tok
			}
			in.bearer = tokens[ref]
		}
		inlets = append(inlets, in)
	}
	b.env.Emulator.ResetCalls()
	if err := p.reset(); err != nil {
		return rep, err
	}
	w0, err := p.stats(false, false)
	if err != nil {
		return rep, err
	}
	start := time.Now()
	// What the workload's mappings read: each record ingests.
	const event = `{"loyalty":{"points":120},"identityMap":{"email":{"id":"bench@example.com"}}}`
	for round := 0; round < 4; round++ {
		for _, in := range inlets {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(event))
			if err != nil {
				return rep, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-adobe-flow-id", in.flow)
			if in.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+in.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return rep, fmt.Errorf("post an event: %w", err)
			}
			_ = resp.Body.Close()
			rep.EventsPosted++
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(resync / 4):
		}
	}
	w1, err := p.stats(false, false)
	if err != nil {
		return rep, err
	}
	calls := b.env.Emulator.Calls()
	rep.WindowSeconds = time.Since(start).Seconds()
	rep.Reconciles = sum(w1.Reconciles) - sum(w0.Reconciles)
	rep.Adobe = adobeUsage(calls, len(keys))
	rep.Kube = kubeUsage(w0, w1, len(keys))
	rep.FlowReads = calls.Op(emulator.OpFlowsGet)
	rep.RunsReads = calls.Op(emulator.OpRunsList)
	platform := calls.Total() - calls.Op(emulator.OpCollection) - calls.Op(emulator.OpCollectionBatch)
	if rep.Reconciles > 0 {
		rep.CallsPerReconcile = float64(platform) / float64(rep.Reconciles)
		rep.WritesPerReconcile = float64(rep.Kube.Writes) / float64(rep.Reconciles)
	}
	return rep, nil
}
