package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aepoperator/capillary-operator/internal/emulator"
)

// report is what a benchmark run measured; it is written as report.json.
type report struct {
	StartedAt  time.Time    `json:"startedAt"`
	Command    string       `json:"command"`
	Machine    machine      `json:"machine"`
	Config     configReport `json:"config"`
	Method     []string     `json:"method"`
	MemoryTrap memoryTrap   `json:"memoryTrap"`
	Runs       []runReport  `json:"runs"`
	// Limiter holds the cold starts on one credential against the
	// emulator's server-side limit, adaptive and baseline.
	Limiter []limiterRun `json:"limiter,omitempty"`
	// Targets are the targets that do not depend on N.
	Targets []target `json:"targets"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"goVersion"`
}

type configReport struct {
	Sizes          []int    `json:"sizes"`
	Namespaces     int      `json:"namespaces"`
	Credentials    int      `json:"credentials"`
	Orgs           int      `json:"orgs"`
	NoiseSecrets   int      `json:"unrelatedSecrets"`
	NoiseBytes     int      `json:"unrelatedSecretBytes"`
	NoiseApplied   bool     `json:"unrelatedSecretsKubectlApplied"`
	Latency        string   `json:"adobeLatency"`
	Resync         string   `json:"steadyResyncInterval"`
	ManagerArgs    []string `json:"managerArgs"`
	CreateWorkers  int      `json:"createWorkers"`
	ValidateSpecs  bool     `json:"validateRequests"`
	MappingsPerSrc int      `json:"mappingsPerSource"`
}

type memoryTrap struct {
	Secrets       int     `json:"secrets"`
	SecretBytes   int     `json:"secretBytes"`
	CreateSeconds float64 `json:"createSeconds"`
	// CachedSecrets is how many of them reached the manager's metadata cache.
	CachedSecrets int      `json:"cachedSecrets"`
	Before        memStats `json:"before"`
	After         memStats `json:"after"`
	DeltaRSSMiB   float64  `json:"deltaRSSMiB"`
	DeltaHeapMiB  float64  `json:"deltaHeapMiB"`
	// FreshWithSecrets: a manager started after the Secrets exist.
	FreshWithSecrets memStats `json:"freshWithSecrets"`
	// Counterfactual: a manager that also caches whole Secrets (the trap).
	Counterfactual *memStats `json:"counterfactual,omitempty"`
}

type adobeReport struct {
	Total int            `json:"total"`
	ByOp  map[string]int `json:"byOperation"`
	// PerResource counts the calls a source makes of its own (all but the
	// token and the spec lookups), divided by N.
	PerResource float64 `json:"perResource"`
	// Shared counts tokens and spec lookups (not per source).
	Shared              int            `json:"shared"`
	TokensPerCredential map[string]int `json:"tokensPerCredential"`
	Failed              int            `json:"failed"`
}

type kubeReport struct {
	Writes            int            `json:"writes"`
	WritesByVerb      map[string]int `json:"writesByVerb"`
	WritesPerResource float64        `json:"writesPerResource"`
	Reads             map[string]int `json:"reads"`
}

type boundReport struct {
	CallsPerResource   int     `json:"callsPerResource"`
	LatencySeconds     float64 `json:"latencySeconds"`
	Concurrency        int     `json:"concurrency"`
	QPS                float64 `json:"qps"`
	Burst              int     `json:"burst"`
	ConcurrencySeconds float64 `json:"concurrencyBoundSeconds"`
	RateSeconds        float64 `json:"rateBoundSeconds"`
	Seconds            float64 `json:"boundSeconds"`
	TargetSeconds      float64 `json:"targetSeconds"`
}

type coldReport struct {
	CreateSeconds   float64 `json:"createSeconds"`
	Ready           int     `json:"ready"`
	TimedOut        bool    `json:"timedOut"`
	AllReadySeconds float64 `json:"allReadySeconds"`
	P50Seconds      float64 `json:"p50Seconds"`
	P90Seconds      float64 `json:"p90Seconds"`
	P99Seconds      float64 `json:"p99Seconds"`
	MaxSeconds      float64 `json:"maxSeconds"`
	// Distribution is every source's create→Ready time.
	Distribution []time.Duration `json:"-"`
	TimesSeconds []float64       `json:"timeToReadySeconds"`
	Adobe        adobeReport     `json:"adobe"`
	Kube         kubeReport      `json:"kubernetes"`
	CPUSeconds   float64         `json:"cpuSeconds"`
	Mem          memStats        `json:"mem"`
	MemSettled   memStats        `json:"memSettled"`
}

type restartReport struct {
	Seconds    float64     `json:"seconds"`
	Reconciles int         `json:"reconciles"`
	Adobe      adobeReport `json:"adobe"`
	Kube       kubeReport  `json:"kubernetes"`
	CPUSeconds float64     `json:"cpuSeconds"`
}

type steadyReport struct {
	ResyncInterval                 string      `json:"resyncInterval"`
	WindowSeconds                  float64     `json:"windowSeconds"`
	Reconciles                     int         `json:"reconciles"`
	ReconcilesPerResourcePerPeriod float64     `json:"reconcilesPerResourcePerPeriod"`
	Adobe                          adobeReport `json:"adobe"`
	Kube                           kubeReport  `json:"kubernetes"`
	CallsPerReconcile              float64     `json:"adobeCallsPerReconcile"`
	WritesPerReconcile             float64     `json:"kubeWritesPerReconcile"`
	ReadsPerResourcePerPeriod      float64     `json:"adobeCallsPerResourcePerPeriod"`
	CPUSeconds                     float64     `json:"cpuSeconds"`
	Mem                            memStats    `json:"mem"`
	MemSettled                     memStats    `json:"memSettled"`
}

// flowingReport is steady state while records flow.
type flowingReport struct {
	WindowSeconds      float64     `json:"windowSeconds"`
	EventsPosted       int         `json:"eventsPosted"`
	Reconciles         int         `json:"reconciles"`
	Adobe              adobeReport `json:"adobe"`
	Kube               kubeReport  `json:"kubernetes"`
	FlowReads          int         `json:"flowReads"`
	RunsReads          int         `json:"runsReads"`
	CallsPerReconcile  float64     `json:"adobeCallsPerReconcile"`
	WritesPerReconcile float64     `json:"kubeWritesPerReconcile"`
}

type newResourceReport struct {
	Seconds               []float64 `json:"seconds"`
	OwnCallLatencySeconds float64   `json:"ownCallLatencySeconds"`
	TargetSeconds         float64   `json:"targetSeconds"`
	// DuringRestartSeconds: one more new source, created the moment a
	// manager restarts with all N queued (reported, not a target).
	DuringRestartSeconds float64 `json:"duringRestartSeconds"`
}

type runReport struct {
	N       int           `json:"n"`
	Options childOptions  `json:"managerOptions"`
	Bound   boundReport   `json:"throughputBound"`
	Cold    coldReport    `json:"cold"`
	Restart restartReport `json:"restart"`
	// RestartSpread is the first minute after a restart as shipped;
	// RestartBaseline the same minute of the baseline's restart (no spread,
	// fixed 20/s), whose pass Restart measures.
	RestartSpread   restartSample `json:"restartSpread"`
	RestartBaseline restartSample `json:"restartBaseline"`
	// SteadyOptions are the steady-phase manager's options (the baseline's
	// restart and limiter flags).
	SteadyOptions childOptions `json:"steadyManagerOptions"`
	Steady        steadyReport `json:"steady"`
	// Flowing is one more resync period of steady state while every inlet
	// receives events: the ingestion reads and writes are measured there.
	Flowing     flowingReport     `json:"flowing"`
	NewResource newResourceReport `json:"newResource"`
	PeakRSSMiB  float64           `json:"peakRSSMiB"`
	Targets     []target          `json:"targets"`
}

// target is one of the targets, compared.
type target struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Status is "met", "not met" or "not measured".
	Status string `json:"status"`
}

func newReport(cfg config) *report {
	return &report{
		StartedAt: time.Now().UTC(),
		Command:   strings.Join(os.Args, " "),
		Machine:   machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()},
		Config: configReport{
			Sizes: cfg.Sizes, Namespaces: cfg.Namespaces, Credentials: cfg.Credentials, Orgs: cfg.Orgs,
			NoiseSecrets: cfg.NoiseSecrets, NoiseBytes: cfg.NoiseBytes, NoiseApplied: cfg.NoiseApplied, Latency: cfg.Latency.String(),
			Resync: durOr(cfg.Resync, "auto: max(20s, N/(qps/2))"), ManagerArgs: cfg.ManagerArgs,
			CreateWorkers: cfg.CreateWorkers, ValidateSpecs: cfg.Validate, MappingsPerSrc: 2,
		},
		Method: []string{
			"The manager runs in a child process (test/bench/child/cmd: the manager and the counters, without the harness, the emulator or envtest linked in) with production defaults and the Deployment's Go runtime settings (memory limit, GOGC), pointed at the emulator, so its RSS, heap and CPU are its own.",
			"Cold phase: the manager's defaults as shipped (resync 10m); N sources are created by parallel workers; time to Ready runs from the harness's Create call to the first Ready=True (observedGeneration current) seen by the harness's watch.",
			"Restart and steady phase: a new manager with --resync-interval set short; after its restart pass, counters are zeroed and one resync period is measured.",
			"Adobe calls come from the emulator's per-operation counters; Kubernetes requests from a counting RoundTripper wrapped around the manager's rest.Config (writes = create/update/patch/delete).",
			"Memory: runtime.ReadMemStats and /proc/self/status in the child; 'settled' numbers are taken after runtime.GC and debug.FreeOSMemory; peak is VmHWM. CPU: getrusage(RUSAGE_SELF) of the child.",
		},
	}
}

func durOr(d time.Duration, def string) string {
	if d == 0 {
		return def
	}
	return d.String()
}

func adobeUsage(c emulator.CallCounts, n int) adobeReport {
	a := adobeReport{Total: c.Total(), ByOp: map[string]int{}, TokensPerCredential: map[string]int{}}
	own := 0
	for k, v := range c {
		a.ByOp[k.Operation] += v
		if k.Status < 200 || k.Status > 299 {
			a.Failed += v
		}
		if k.Operation == emulator.OpIMSToken {
			a.TokensPerCredential[k.ClientID] += v
		}
		if slices.Contains(sharedOps, k.Operation) {
			a.Shared += v
		} else {
			own += v
		}
	}
	if n > 0 {
		a.PerResource = float64(own) / float64(n)
	}
	return a
}

func kubeUsage(before, after childStats, n int) kubeReport {
	k := kubeReport{WritesByVerb: map[string]int{}, Reads: map[string]int{}}
	for key, v := range after.Writes {
		if d := v - before.Writes[key]; d > 0 {
			k.WritesByVerb[key] = d
			k.Writes += d
		}
	}
	for key, v := range after.Reads {
		if d := v - before.Reads[key]; d > 0 {
			k.Reads[key] = d
		}
	}
	if n > 0 {
		k.WritesPerResource = float64(k.Writes) / float64(n)
	}
	return k
}

// throughputBound is the bound N × calls × latency ÷ concurrency
// (in whole rounds of the workers), for the configured rate limit too: the
// slower of that and the token bucket's (N × calls − burst) ÷ qps. The
// target is 1.5× it.
func throughputBound(n int, latency time.Duration, o childOptions) boundReport {
	calls := len(perResourceOps)
	b := boundReport{
		CallsPerResource: calls, LatencySeconds: latency.Seconds(), Concurrency: o.MaxConcurrentReconciles,
		QPS: o.AdobeQPS, Burst: o.AdobeBurst,
	}
	// Whole rounds: fewer sources than workers still take one chain each.
	w := max(o.MaxConcurrentReconciles, 1)
	b.ConcurrencySeconds = float64((n+w-1)/w*calls) * latency.Seconds()
	if o.AdobeQPS > 0 {
		b.RateSeconds = math.Max(0, float64(n*calls-o.AdobeBurst)) / o.AdobeQPS
	}
	b.Seconds = math.Max(b.ConcurrencySeconds, b.RateSeconds)
	b.TargetSeconds = 1.5 * b.Seconds
	return b
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// finish fills in the distributions and compares every target.
func (r *report) finish() {
	m := r.MemoryTrap
	r.Targets = []target{{
		Name:   "unrelated Secrets' memory",
		Target: fmt.Sprintf("%d unrelated Secrets of %d B add < 10 MiB to the manager's RSS", m.Secrets, m.SecretBytes),
		Measured: fmt.Sprintf("settled RSS %+.1f MiB (heap %+.1f MiB) with %d of them in the metadata cache",
			m.DeltaRSSMiB, m.DeltaHeapMiB, m.CachedSecrets),
		Status: status(m.DeltaRSSMiB < 10 && m.CachedSecrets >= m.Secrets),
	}}
	if m.Counterfactual != nil {
		r.Targets[0].Measured += fmt.Sprintf("; a manager caching their data too would hold %.1f MiB settled RSS vs %.1f MiB",
			m.Counterfactual.RSSMiB, m.FreshWithSecrets.RSSMiB)
	}
	for i := range r.Runs {
		run := &r.Runs[i]
		for _, d := range run.Cold.Distribution {
			run.Cold.TimesSeconds = append(run.Cold.TimesSeconds, math.Round(d.Seconds()*1e4)/1e4)
		}
		run.NewResource.TargetSeconds = 1 + run.NewResource.OwnCallLatencySeconds
		run.Targets = run.compare()
	}
	for _, l := range r.Limiter {
		if !strings.HasPrefix(l.Mode, "adaptive") {
			continue
		}
		r.Targets = append(r.Targets, target{
			Name:   fmt.Sprintf("adaptive limiter at %.0f/s", l.LimitPerSecond),
			Target: "a cold start of N sources on one credential uses ≥ 85% of the server limit's throughput with ≤ 5% of calls answered 429",
			Measured: fmt.Sprintf("%d/%d Ready in %.1fs: %.1f%% of the limit, %.1f%% answered 429 (%d of %d)", l.Ready, l.N, l.Seconds,
				100*l.Share, 100*l.ThrottledShare, l.Throttled, l.Accepted+l.Throttled),
			Status: status(l.Ready == l.N && l.Share >= 0.85 && l.ThrottledShare <= 0.05),
		})
	}
}

// perSourceString divides each count by n: "update capillarysources 1.00, …".
func perSourceString(m map[string]int, n int) string {
	return countsString(m, func(k string, v int) string { return fmt.Sprintf("%s %.2f", k, float64(v)/float64(max(n, 1))) })
}

func (run *runReport) compare() []target {
	var ts []target
	a := run.Cold.Adobe
	perSource := a.PerResource + float64(a.Shared)/float64(run.N)
	ts = append(ts, target{
		Name:     "calls to Ready",
		Target:   "≤ 6 Adobe calls per source (5 of its own + shared spec lookups and tokens)",
		Measured: fmt.Sprintf("%.2f own + %.3f shared (%d shared calls / %d sources) = %.2f; by operation %s", a.PerResource, float64(a.Shared)/float64(run.N), a.Shared, run.N, perSource, opsString(a.ByOp)),
		Status:   status(run.Cold.Ready == run.N && perSource <= 6),
	})
	maxTok := 0
	for _, v := range a.TokensPerCredential {
		maxTok = max(maxTok, v)
	}
	ts = append(ts, target{
		Name:     "IMS tokens",
		Target:   "one per credential per token lifetime, whatever N",
		Measured: fmt.Sprintf("at most %d token request(s) per credential over %d credentials (cold phase, one manager process)", maxTok, len(a.TokensPerCredential)),
		Status:   status(maxTok <= 1 && len(a.TokensPerCredential) > 0),
	})
	s := run.Steady
	readsOnly := true
	for op := range s.Adobe.ByOp {
		if !strings.HasSuffix(op, ".get") && op != emulator.OpIMSToken {
			readsOnly = false
		}
	}
	ts = append(ts, target{
		Name:   "steady-state Adobe reads",
		Target: "≤ 1 Adobe read per source per resync period",
		Measured: fmt.Sprintf("%d calls (%s) in %.1fs = %.2f per source per %s period; %.2f per resync reconcile over %d reconciles",
			s.Adobe.Total, opsString(s.Adobe.ByOp), s.WindowSeconds, s.ReadsPerResourcePerPeriod, s.ResyncInterval, s.CallsPerReconcile, s.Reconciles),
		Status: measured(s.Reconciles > 0, s.ReadsPerResourcePerPeriod <= 1 && s.CallsPerReconcile <= 1 && readsOnly),
	})
	ts = append(ts, target{
		Name:     "steady-state Kubernetes writes",
		Target:   "0 Kubernetes writes when nothing changed",
		Measured: fmt.Sprintf("%d writes (%s) over %d resync reconciles", s.Kube.Writes, opsString(s.Kube.WritesByVerb), s.Reconciles),
		Status:   measured(s.Reconciles > 0, s.Kube.Writes == 0),
	})
	b := run.Bound
	ts = append(ts, target{
		Name:   "throughput",
		Target: fmt.Sprintf("all N Ready within 1.5 × max(⌈N/concurrency⌉·calls·latency, (N·calls−burst)/qps) = 1.5 × %.1fs = %.1fs", b.Seconds, b.TargetSeconds),
		Measured: fmt.Sprintf("%d/%d Ready in %.1fs (p50 %.2fs, p99 %.2fs); concurrency bound %.2fs, rate bound %.1fs at %.0f qps, %d workers",
			run.Cold.Ready, run.N, run.Cold.AllReadySeconds, run.Cold.P50Seconds, run.Cold.P99Seconds, b.ConcurrencySeconds, b.RateSeconds, b.QPS, b.Concurrency),
		Status: status(run.Cold.Ready == run.N && run.Cold.AllReadySeconds <= b.TargetSeconds),
	})
	nr := run.NewResource
	worst := -1.0
	ok := len(nr.Seconds) > 0
	for _, v := range nr.Seconds {
		if v < 0 {
			ok = false
		}
		worst = max(worst, v)
	}
	ts = append(ts, target{
		Name:     "new resource among N",
		Target:   fmt.Sprintf("Ready within 1 s + its own call latency (%.2fs) = %.2fs", nr.OwnCallLatencySeconds, nr.TargetSeconds),
		Measured: fmt.Sprintf("%s s (worst %.3fs) while %d sources resync every %s", floatsString(nr.Seconds), worst, run.N, s.ResyncInterval),
		Status:   measured(len(nr.Seconds) > 0, ok && worst <= nr.TargetSeconds),
	})
	ts = append(ts, target{
		Name:     "Kubernetes writes per cold create",
		Target:   "≤ 5 with a mapping set (the workload's sources have one), events included; baseline 11",
		Measured: fmt.Sprintf("%.2f (%s)", run.Cold.Kube.WritesPerResource, perSourceString(run.Cold.Kube.WritesByVerb, run.N)),
		Status:   status(run.Cold.Ready == run.N && run.Cold.Kube.WritesPerResource <= 5),
	})
	rs := run.RestartSpread
	ts = append(ts, target{
		Name:   "restart",
		Target: "peak Adobe call rate in the minute after a restart ≤ 2 × the steady rate (N ÷ resync interval)",
		Measured: fmt.Sprintf("reads: peak %.2f/s over 10s vs steady %.2f/s (%.1f×); all calls incl. the new process's token and spec lookups: %.2f/s (%.1f×); baseline (no spread, fixed 20/s): reads %.2f/s (%.1f×)",
			rs.PeakReadsPerSecond, rs.SteadyPerSecond, ratio(rs.PeakReadsPerSecond, rs.SteadyPerSecond), rs.PeakCallsPerSecond,
			ratio(rs.PeakCallsPerSecond, rs.SteadyPerSecond), run.RestartBaseline.PeakReadsPerSecond, ratio(run.RestartBaseline.PeakReadsPerSecond, rs.SteadyPerSecond)),
		Status: measured(rs.WindowSeconds > 0 && run.N >= 1000, rs.PeakReadsPerSecond <= 2*rs.SteadyPerSecond),
	})
	ts = append(ts, target{
		Name:     "new source during a restart",
		Target:   fmt.Sprintf("Ready within 1 s + its own call latency (%.2fs)", nr.TargetSeconds),
		Measured: fmt.Sprintf("%.3fs, created as a manager starts with %d sources", nr.DuringRestartSeconds, run.N),
		Status:   measured(nr.DuringRestartSeconds != 0, nr.DuringRestartSeconds > 0 && nr.DuringRestartSeconds <= nr.TargetSeconds),
	})
	rss := target{
		Name:     "RSS at 5000 sources",
		Target:   "manager peak RSS ≤ 110 MiB with 5000 sources (VmHWM; baseline 141.9 MiB), Go memory limit from the manifest's container limit",
		Measured: fmt.Sprintf("peak %.1f MiB, settled %.1f MiB with %d sources (Go memory limit %.0f MiB)", run.PeakRSSMiB, run.Steady.MemSettled.RSSMiB, run.N, run.Options.MemoryLimitMiB),
		Status:   "not measured",
	}
	if run.N >= 5000 {
		rss.Status = status(run.PeakRSSMiB <= 110)
	}
	ts = append(ts, rss)
	return ts
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func measured(was, ok bool) string {
	if !was {
		return "not measured"
	}
	return status(ok)
}

// opsString lists the counts: "flows.get=5, …", or "none".
func opsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	return countsString(m, func(k string, v int) string { return fmt.Sprintf("%s=%d", k, v) })
}

// countsString formats each count of m, in the order of the keys.
func countsString(m map[string]int, format func(k string, v int) string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, format(k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func floatsString(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%.3f", f)
	}
	return strings.Join(parts, ", ")
}

// write saves report.json and the plots in dir.
func (r *report) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	for _, run := range r.Runs {
		svg := timeToReadySVG(run)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("time-to-ready-n%d.svg", run.N)), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	var sb strings.Builder
	r.printTable(&sb)
	return os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(sb.String()), 0o644)
}

// printTable prints the measurements, one column per N, then the targets.
func (r *report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "metric"
	for _, run := range r.Runs {
		header += fmt.Sprintf("\tN=%d", run.N)
	}
	fmt.Fprintln(tw, header)
	row := func(name string, f func(runReport) string) {
		line := name
		for _, run := range r.Runs {
			line += "\t" + f(run)
		}
		fmt.Fprintln(tw, line)
	}
	row("manager: workers / qps / burst", func(x runReport) string {
		adaptive := "fixed"
		if x.Options.AdobeAdaptive {
			adaptive = "adaptive"
		}
		return fmt.Sprintf("%d / %.0f %s / %d", x.Options.MaxConcurrentReconciles, x.Options.AdobeQPS, adaptive, x.Options.AdobeBurst)
	})
	row("manager: Go memory limit (MiB)", func(x runReport) string { return fmt.Sprintf("%.0f", x.Options.MemoryLimitMiB) })
	row("cold phase resync", func(x runReport) string { return x.Options.ResyncInterval })
	row("all Ready (s)", func(x runReport) string {
		return fmt.Sprintf("%.1f (%d/%d)", x.Cold.AllReadySeconds, x.Cold.Ready, x.N)
	})
	row("throughput target (s)", func(x runReport) string { return fmt.Sprintf("%.1f", x.Bound.TargetSeconds) })
	row("time to Ready p50 / p99 (s)", func(x runReport) string {
		return fmt.Sprintf("%.2f / %.2f", x.Cold.P50Seconds, x.Cold.P99Seconds)
	})
	row("Adobe calls per source (own)", func(x runReport) string { return fmt.Sprintf("%.2f", x.Cold.Adobe.PerResource) })
	for _, op := range perResourceOps {
		row("  "+op, func(x runReport) string { return fmt.Sprintf("%.2f", float64(x.Cold.Adobe.ByOp[op])/float64(x.N)) })
	}
	row("shared calls (token+specs)", func(x runReport) string {
		return fmt.Sprintf("%d (token %d, conn %d, flow %d)", x.Cold.Adobe.Shared, x.Cold.Adobe.ByOp[emulator.OpIMSToken],
			x.Cold.Adobe.ByOp[emulator.OpConnectionSpecsGet], x.Cold.Adobe.ByOp[emulator.OpFlowSpecsGet])
	})
	row("IMS tokens per credential (max)", func(x runReport) string {
		m := 0
		for _, v := range x.Cold.Adobe.TokensPerCredential {
			m = max(m, v)
		}
		return fmt.Sprint(m)
	})
	row("K8s writes per source (cold)", func(x runReport) string {
		return fmt.Sprintf("%.2f vs baseline 11 (%s)", x.Cold.Kube.WritesPerResource, perSourceString(x.Cold.Kube.WritesByVerb, x.N))
	})
	row("manager CPU, cold (s)", func(x runReport) string { return fmt.Sprintf("%.1f", x.Cold.CPUSeconds) })
	row("restart (baseline): s / calls / writes per src", func(x runReport) string {
		return fmt.Sprintf("%.1f / %.2f / %.2f", x.Restart.Seconds, float64(x.Restart.Adobe.Total)/float64(x.N), x.Restart.Kube.WritesPerResource)
	})
	row("restart: steady read rate (N/resync)", func(x runReport) string {
		return fmt.Sprintf("%.2f/s (%s)", x.RestartSpread.SteadyPerSecond, x.RestartSpread.ResyncInterval)
	})
	row("restart: 1st min peak calls/s (reads), 10s", func(x runReport) string {
		return fmt.Sprintf("%.1f (%.1f) vs baseline %.1f (%.1f)", x.RestartSpread.PeakCallsPerSecond, x.RestartSpread.PeakReadsPerSecond,
			x.RestartBaseline.PeakCallsPerSecond, x.RestartBaseline.PeakReadsPerSecond)
	})
	row("restart: 1st min calls (reads)", func(x runReport) string {
		return fmt.Sprintf("%d (%d) vs baseline %d (%d)", x.RestartSpread.Calls, x.RestartSpread.Reads, x.RestartBaseline.Calls, x.RestartBaseline.Reads)
	})
	row("steady: resync / reconciles", func(x runReport) string { return fmt.Sprintf("%s / %d", x.Steady.ResyncInterval, x.Steady.Reconciles) })
	row("steady: Adobe calls per src per period", func(x runReport) string { return fmt.Sprintf("%.2f", x.Steady.ReadsPerResourcePerPeriod) })
	row("steady: Adobe calls per reconcile", func(x runReport) string { return fmt.Sprintf("%.2f", x.Steady.CallsPerReconcile) })
	row("steady: K8s writes", func(x runReport) string { return fmt.Sprint(x.Steady.Kube.Writes) })
	row("flowing: events / reconciles", func(x runReport) string { return fmt.Sprintf("%d / %d", x.Flowing.EventsPosted, x.Flowing.Reconciles) })
	row("flowing: flow reads / runs reads", func(x runReport) string { return fmt.Sprintf("%d / %d", x.Flowing.FlowReads, x.Flowing.RunsReads) })
	row("flowing: Adobe calls per reconcile", func(x runReport) string { return fmt.Sprintf("%.2f", x.Flowing.CallsPerReconcile) })
	row("flowing: K8s writes per reconcile", func(x runReport) string { return fmt.Sprintf("%.2f", x.Flowing.WritesPerReconcile) })
	row("steady: manager CPU (s)", func(x runReport) string { return fmt.Sprintf("%.2f", x.Steady.CPUSeconds) })
	row("new source to Ready (s)", func(x runReport) string { return floatsString(x.NewResource.Seconds) })
	row("  ... created during a restart (s)", func(x runReport) string { return fmt.Sprintf("%.3f", x.NewResource.DuringRestartSeconds) })
	row("heap settled (MiB)", func(x runReport) string { return fmt.Sprintf("%.1f", x.Steady.MemSettled.HeapAllocMiB) })
	row("RSS settled / peak (MiB)", func(x runReport) string {
		return fmt.Sprintf("%.1f / %.1f", x.Steady.MemSettled.RSSMiB, x.PeakRSSMiB)
	})
	row("RSS settled: anon / file (MiB)", func(x runReport) string {
		return fmt.Sprintf("%.1f / %.1f", x.Steady.MemSettled.RSSAnonMiB, x.Steady.MemSettled.RSSFileMiB)
	})
	_ = tw.Flush()

	if len(r.Limiter) > 0 {
		fmt.Fprintln(w, "\nLimiter: cold start of N sources on one credential against the emulator's per-credential limit")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "server limit\tlimiter\tN Ready\tseconds\tcalls answered\t429s\tshare of the limit\t429 share")
		for _, l := range r.Limiter {
			fmt.Fprintf(tw, "%.0f/s\t%s\t%d/%d\t%.1f\t%d\t%d\t%.1f%%\t%.1f%%\n", l.LimitPerSecond, l.Mode, l.Ready, l.N, l.Seconds,
				l.Accepted, l.Throttled, 100*l.Share, 100*l.ThrottledShare)
		}
		_ = tw.Flush()
	}

	m := r.MemoryTrap
	fmt.Fprintf(w, "\n%d unrelated Secrets (%d B): settled RSS %.1f → %.1f MiB (%+.1f; anon %+.1f), heap %+.1f MiB",
		m.Secrets, m.SecretBytes, m.Before.RSSMiB, m.After.RSSMiB, m.DeltaRSSMiB, m.After.RSSAnonMiB-m.Before.RSSAnonMiB, m.DeltaHeapMiB)
	if m.Counterfactual != nil {
		fmt.Fprintf(w, "; caching their data would hold %.1f MiB vs %.1f MiB", m.Counterfactual.RSSMiB, m.FreshWithSecrets.RSSMiB)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nTargets:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Status, t.Name, t.Measured)
	}
	for _, run := range r.Runs {
		for _, t := range run.Targets {
			fmt.Fprintf(tw, "  %s\tN=%d %s\t%s\n", t.Status, run.N, t.Name, t.Measured)
		}
	}
	_ = tw.Flush()
}

// timeToReadySVG draws the time-to-Ready distribution of one run: a
// histogram and, over it, the cumulative share of sources Ready.
func timeToReadySVG(run runReport) string {
	const (
		width, height          = 720, 420
		left, right, top, bott = 70, 60, 50, 60
		bins                   = 40
	)
	ds := run.Cold.Distribution
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&sb, `<text x="%d" y="24" font-size="15">Time to Ready, N=%d (create → Ready; p50 %.2fs, p99 %.2fs, all in %.1fs)</text>`+"\n",
		left, run.N, run.Cold.P50Seconds, run.Cold.P99Seconds, run.Cold.AllReadySeconds)
	if len(ds) == 0 {
		sb.WriteString(`<text x="70" y="200">no source became Ready</text></svg>`)
		return sb.String()
	}
	maxS := niceCeil(ds[len(ds)-1].Seconds())
	pw, ph := float64(width-left-right), float64(height-top-bott)
	counts := make([]int, bins)
	for _, d := range ds {
		i := min(int(d.Seconds()/maxS*bins), bins-1)
		counts[i]++
	}
	maxC := slices.Max(counts)
	x := func(s float64) float64 { return float64(left) + s/maxS*pw }
	y := func(frac float64) float64 { return float64(top) + (1-frac)*ph }
	// Histogram bars (left axis: sources per bin).
	bw := pw / bins
	for i, c := range counts {
		h := float64(c) / float64(maxC) * ph
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#9ecae1" stroke="#6baed6"/>`+"\n",
			float64(left)+float64(i)*bw, float64(top)+ph-h, bw, h)
	}
	// CDF (right axis: share Ready).
	var pts []string
	for i, d := range ds {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(d.Seconds()), y(float64(i+1)/float64(len(ds)))))
	}
	fmt.Fprintf(&sb, `<polyline fill="none" stroke="#d62728" stroke-width="2" points="%s"/>`+"\n", strings.Join(pts, " "))
	// Axes and ticks.
	fmt.Fprintf(&sb, `<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, y(0), x(maxS), y(0))
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%.0f" stroke="black"/>`+"\n", left, top, left, y(0))
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x(maxS), top, x(maxS), y(0))
	for i := 0; i <= 5; i++ {
		s := maxS * float64(i) / 5
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x(s), y(0)+18, trimFloat(s))
		frac := float64(i) / 5
		fmt.Fprintf(&sb, `<text x="%d" y="%.1f" text-anchor="end">%d</text>`+"\n", left-6, y(frac)+4, int(math.Round(frac*float64(maxC))))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.1f">%d%%</text>`+"\n", x(maxS)+6, y(frac)+4, i*20)
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%d" text-anchor="middle">seconds from create to Ready</text>`+"\n", x(maxS/2), height-18)
	fmt.Fprintf(&sb, `<text x="18" y="%.0f" transform="rotate(-90 18 %.0f)" text-anchor="middle" fill="#3182bd">sources per bin</text>`+"\n", y(0.5), y(0.5))
	fmt.Fprintf(&sb, `<text x="%d" y="%.0f" transform="rotate(90 %d %.0f)" text-anchor="middle" fill="#d62728">share Ready</text>`+"\n", width-14, y(0.5), width-14, y(0.5))
	sb.WriteString("</svg>\n")
	return sb.String()
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
