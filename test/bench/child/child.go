// Package child is the benchmark's manager process: the operator's manager
// with counters the harness reads over a loopback port (Kubernetes requests
// by verb and resource, reconciles, memory, CPU).
//
// The manager runs in a child process of the harness, so that its RSS, heap
// and CPU time are its own: in-process, the emulator's store, the harness's
// informer and its 10,000 Secret creations would be counted with it. It is
// its own binary (./cmd), which links the manager and this package only:
// the harness's binary also links the emulator, envtest and OpenAPI
// validators, whose package initialisation would run in the child, and
// whose pages would count in its RSS, though production never has them.
package child

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

const (
	// AddrTag prefixes the line on stdout that gives the stats address.
	AddrTag = "BENCH_CHILD_ADDR="
	// ProfileEnv names a folder where the child writes a heap profile at
	// every stats request (to find out what holds memory).
	ProfileEnv = "CAPILLARY_BENCH_HEAP_PROFILES"
)

// Spec is what the harness hands the child, as JSON on stdin's first line.
type Spec struct {
	Host     string   `json:"host"`
	CAData   []byte   `json:"caData,omitempty"`
	CertData []byte   `json:"certData,omitempty"`
	KeyData  []byte   `json:"keyData,omitempty"`
	Token    string   `json:"token,omitempty"`
	AdobeURL string   `json:"adobeURL"`
	Args     []string `json:"args"` // the manager's own flags, e.g. --resync-interval=20s
	// CacheSecretData also starts an informer on whole Secrets: the
	// counterfactual of the memory trap, to show what it would cost.
	CacheSecretData bool `json:"cacheSecretData,omitempty"`
}

// Stats is the child's answer to GET /stats.
type Stats struct {
	// Options are the effective manager options (endpoints elided).
	Options Options `json:"options"`
	// Writes counts Kubernetes API writes ("VERB resource[/subresource]").
	Writes map[string]int `json:"writes"`
	// Reads counts Kubernetes API reads the same way (get, list, watch).
	Reads map[string]int `json:"reads"`
	// Reconciles counts finished reconciles by result (controller-runtime's
	// controller_runtime_reconcile_total for the capillarysource controller).
	Reconciles map[string]int `json:"reconciles"`
	// QueueDepth is the workqueue's depth (items ready, not delayed).
	QueueDepth int `json:"queueDepth"`
	// CachedSecrets is how many Secrets the manager's metadata cache holds
	// (only when asked: it lists them).
	CachedSecrets int      `json:"cachedSecrets"`
	Mem           MemStats `json:"mem"`
	// CPUSeconds is user+system time of the child (getrusage RUSAGE_SELF).
	CPUSeconds float64 `json:"cpuSeconds"`
	Goroutines int     `json:"goroutines"`
}

type Options struct {
	ResyncInterval          string  `json:"resyncInterval"`
	MaxConcurrentReconciles int     `json:"maxConcurrentReconciles"`
	AdobeQPS                float64 `json:"adobeQPS"`
	AdobeBurst              int     `json:"adobeBurst"`
	AdobeAdaptive           bool    `json:"adobeAdaptive"`
	RestartSpread           bool    `json:"restartSpread"`
	// MemoryLimitMiB is the Go runtime's soft memory limit in the child.
	MemoryLimitMiB float64 `json:"goMemoryLimitMiB"`

	// Resync is ResyncInterval as a duration (the harness's own use).
	Resync time.Duration `json:"-"`
}

// MemStats: HeapAlloc/HeapInuse from runtime.ReadMemStats; RSS and HWM from
// /proc/self/status. When Settled, runtime.GC and debug.FreeOSMemory ran
// first, so the numbers are the live set rather than where the GC happened
// to be.
type MemStats struct {
	Settled      bool    `json:"settled"`
	HeapAllocMiB float64 `json:"heapAllocMiB"`
	HeapInuseMiB float64 `json:"heapInuseMiB"`
	SysMiB       float64 `json:"sysMiB"`
	RSSMiB       float64 `json:"rssMiB"`
	HWMMiB       float64 `json:"hwmMiB"`
	// RSSAnonMiB is the anonymous part of RSS (heap, stacks, runtime);
	// RSSFileMiB the mapped binary's resident pages.
	RSSAnonMiB float64 `json:"rssAnonMiB"`
	RSSFileMiB float64 `json:"rssFileMiB"`
}

// Run runs the manager until stdin closes, serving /stats and /reset
// on a loopback port it announces on stdout.
func Run() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read child spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("decode child spec: %w", err)
	}

	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	memLimit, why := manager.ApplyMemoryLimit()
	ctrl.Log.WithName("setup").Info("Go memory limit", "bytes", memLimit, "from", why)

	// As localenv runs it against the emulator (without linking localenv,
	// which brings the emulator).
	opts := manager.Defaults()
	opts.IMSURL, opts.PlatformURL = spec.AdobeURL, spec.AdobeURL
	opts.AllowInsecureEndpoints = true
	opts.MetricsAddr, opts.ProbeAddr = "0", "0"
	// --inlet-warmup=0s unless the run's flags say otherwise: time to Ready
	// stays comparable with the figures before the warm-up (docs/performance.md).
	opts.InletWarmup = 0
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	opts.BindFlags(fs)
	if err := fs.Parse(spec.Args); err != nil {
		return fmt.Errorf("manager flags: %w", err)
	}

	counter := newRequestCounter()
	cfg := &rest.Config{
		Host:            spec.Host,
		BearerToken:     spec.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: spec.CAData, CertData: spec.CertData, KeyData: spec.KeyData},
		// As ctrl.GetConfig leaves it in production: no client-side rate
		// limit, the API server's priority and fairness governs.
		QPS: -1,
	}
	cfg.Wrap(counter.wrap)

	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	countSecrets := func(ctx context.Context) int {
		var l metav1.PartialObjectMetadataList
		l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		if err := mgr.GetCache().List(ctx, &l); err != nil {
			return -1
		}
		return len(l.Items)
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return errors.New("manager cache did not sync")
	}
	// The controller starts its watches after the cache: list through the
	// cache so the Secret metadata and CapillarySource informers it shares
	// with the controller are synced before the child reports ready.
	if countSecrets(syncCtx) < 0 {
		return errors.New("secret metadata cache did not sync")
	}
	if err := mgr.GetCache().List(syncCtx, &v1alpha1.CapillarySourceList{}); err != nil {
		return fmt.Errorf("list CapillarySources from the cache: %w", err)
	}
	if spec.CacheSecretData {
		inf, err := mgr.GetCache().GetInformer(syncCtx, &corev1.Secret{})
		if err != nil {
			return fmt.Errorf("secret informer: %w", err)
		}
		for !inf.HasSynced() {
			time.Sleep(50 * time.Millisecond)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		st := Stats{
			Options: Options{
				MemoryLimitMiB:          float64(debug.SetMemoryLimit(-1)) / (1 << 20),
				AdobeAdaptive:           opts.AdobeAdaptive,
				RestartSpread:           opts.RestartSpread,
				ResyncInterval:          opts.ResyncInterval.String(),
				MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
				AdobeQPS:                opts.AdobeQPS,
				AdobeBurst:              opts.AdobeBurst,
			},
			CachedSecrets: -1,
		}
		st.Writes, st.Reads = counter.snapshot()
		st.Reconciles, st.QueueDepth = controllerMetrics()
		if r.URL.Query().Get("secrets") == "1" {
			st.CachedSecrets = countSecrets(r.Context())
		}
		st.Mem = readMem(r.URL.Query().Get("settle") == "1")
		if dir := os.Getenv(ProfileEnv); dir != "" {
			writeHeapProfile(dir)
		}
		st.CPUSeconds = cpuSeconds()
		st.Goroutines = runtime.NumGoroutine()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		counter.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("%s%s\n", AddrTag, ln.Addr().String())

	// The harness closes stdin to stop the child (and so does its death).
	go func() {
		_, _ = io.Copy(io.Discard, in)
		cancel()
	}()
	err = <-done
	_ = srv.Close()
	return err
}

// requestCounter counts the manager's Kubernetes API requests by verb and resource.
type requestCounter struct {
	mu     sync.Mutex
	writes map[string]int
	reads  map[string]int
}

func newRequestCounter() *requestCounter {
	return &requestCounter{writes: map[string]int{}, reads: map[string]int{}}
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		verb, resource, write := classifyRequest(r)
		c.mu.Lock()
		if write {
			c.writes[verb+" "+resource]++
		} else {
			c.reads[verb+" "+resource]++
		}
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) snapshot() (writes, reads map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, reads = make(map[string]int, len(c.writes)), make(map[string]int, len(c.reads))
	for k, v := range c.writes {
		writes[k] = v
	}
	for k, v := range c.reads {
		reads[k] = v
	}
	return writes, reads
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes, c.reads = map[string]int{}, map[string]int{}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classifyRequest names a Kubernetes API request: its verb (create, update,
// patch, delete, get, list, watch), its resource with any subresource
// ("capillarysources/status"), and whether it writes.
func classifyRequest(r *http.Request) (verb, resource string, write bool) {
	// /api/v1/[namespaces/{ns}/]{resource}[/{name}[/{sub}]]
	// /apis/{group}/{version}/[namespaces/{ns}/]{resource}[/{name}[/{sub}]]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		parts = parts[2:]
	}
	named := len(parts) >= 2
	switch {
	case len(parts) == 0:
		resource = "(discovery)"
	case len(parts) >= 3:
		resource = parts[0] + "/" + parts[2]
	default:
		resource = parts[0]
	}
	switch r.Method {
	case http.MethodPost:
		return "create", resource, true
	case http.MethodPut:
		return "update", resource, true
	case http.MethodPatch:
		return "patch", resource, true
	case http.MethodDelete:
		return "delete", resource, true
	}
	switch {
	case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
		verb = "watch"
	case named:
		verb = "get"
	default:
		verb = "list"
	}
	return verb, resource, false
}

// controllerMetrics reads the capillarysource controller's reconcile counts
// and queue depth from controller-runtime's registry (served or not).
func controllerMetrics() (map[string]int, int) {
	out := map[string]int{}
	depth := 0
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return out, -1
	}
	for _, f := range families {
		switch f.GetName() {
		case "controller_runtime_reconcile_total":
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["controller"] == "capillarysource" {
					out[labels["result"]] += int(m.GetCounter().GetValue())
				}
			}
		case "workqueue_depth":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "name" && l.GetValue() == "capillarysource" {
						depth = int(m.GetGauge().GetValue())
					}
				}
			}
		}
	}
	return out, depth
}

func readMem(settle bool) MemStats {
	if settle {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := procStatus()
	return MemStats{
		Settled:      settle,
		HeapAllocMiB: mib(ms.HeapAlloc),
		HeapInuseMiB: mib(ms.HeapInuse),
		SysMiB:       mib(ms.Sys),
		RSSMiB:       st["VmRSS"],
		HWMMiB:       st["VmHWM"],
		RSSAnonMiB:   st["RssAnon"],
		RSSFileMiB:   st["RssFile"],
	}
}

func writeHeapProfile(dir string) {
	f, err := os.CreateTemp(dir, fmt.Sprintf("heap-%d-*.pb.gz", os.Getpid()))
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// procStatus reads the memory lines of /proc/self/status (VmRSS, VmHWM,
// RssAnon, RssFile, ...), in MiB.
func procStatus() map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasSuffix(rest, " kB") {
			continue
		}
		var kb float64
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err == nil {
			out[name] = kb / 1024
		}
	}
	return out
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
