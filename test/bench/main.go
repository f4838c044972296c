// Command bench measures the operator at scale against the Adobe emulator on
// a local control plane: time to Ready, Adobe calls, IMS tokens, Kubernetes
// writes, steady-state cost, memory and CPU, for N CapillarySources among
// 10,000 unrelated Secrets. It prints a table and writes report.json,
// summary.txt and time-to-Ready plots to a folder it names. It reports; it
// does not pass or fail on machine speed.
//
//	make bench                       # N=100 and N=1000, then the limiter phase (1000 sources at 10/s and 50/s)
//	make bench BENCH_FLAGS="-n 5000" # or -n 100,1000,5000
//
// See docs/performance.md for what it measures, how, and the results.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
)

func main() {
	err := mainErr()
	removeChildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	cfg := defaultConfig()
	sizes := "100,1000"
	managerArgs := ""
	flag.StringVar(&sizes, "n", sizes, "comma-separated numbers of CapillarySources, one run each (e.g. 5000, or 100,1000,5000)")
	flag.IntVar(&cfg.Namespaces, "namespaces", cfg.Namespaces, "namespaces the sources are spread over")
	flag.IntVar(&cfg.Credentials, "credentials", cfg.Credentials, "credential Secrets (IMS clients) the sources share")
	flag.IntVar(&cfg.Orgs, "orgs", cfg.Orgs, "Adobe orgs the credentials belong to (the rate limit is per org)")
	flag.IntVar(&cfg.NoiseSecrets, "secrets", cfg.NoiseSecrets, "unrelated Secrets in other namespaces")
	flag.IntVar(&cfg.NoiseBytes, "secret-bytes", cfg.NoiseBytes, "data size of each unrelated Secret")
	flag.BoolVar(&cfg.NoiseApplied, "kubectl-applied", cfg.NoiseApplied, "give the unrelated Secrets kubectl apply's last-applied-configuration annotation (a copy of their data)")
	flag.DurationVar(&cfg.Latency, "latency", cfg.Latency, "latency the emulator adds to every Adobe call")
	flag.DurationVar(&cfg.Resync, "resync", cfg.Resync, "--resync-interval of the steady-state phase (0: max(20s, N/(qps/2)))")
	flag.StringVar(&managerArgs, "manager-args", "", "extra manager flags for every phase, space-separated (e.g. \"--adobe-qps=50 --max-concurrent-reconciles=20\")")
	flag.IntVar(&cfg.CreateWorkers, "workers", cfg.CreateWorkers, "parallel creators of sources and Secrets")
	flag.IntVar(&cfg.Probes, "probes", cfg.Probes, "new sources created one at a time among the N in steady state")
	flag.BoolVar(&cfg.Counterfact, "counterfactual", cfg.Counterfact, "also measure a manager that caches the Secrets' data (the trap)")
	flag.BoolVar(&cfg.Validate, "validate", cfg.Validate, "validate every Adobe request against the OpenAPI specs (costs harness CPU)")
	flag.StringVar(&cfg.OutDir, "out", "", "output folder (default test/bench/out/<timestamp>)")
	limits := "10,50"
	flag.StringVar(&limits, "limits", limits, "server-side limits (calls/s per credential) of the limiter phase, comma-separated; empty skips it")
	flag.IntVar(&cfg.LimiterN, "limiter-n", cfg.LimiterN, "sources on one credential in the limiter phase (0 skips it)")
	flag.DurationVar(&cfg.RestartWindow, "restart-window", cfg.RestartWindow, "how long after a restart the Adobe call rate is sampled")
	flag.BoolVar(&cfg.MemoryOnly, "memory-only", cfg.MemoryOnly, "only the memory trap and the cold phase (memory at large N; pair with -latency 0 and -manager-args=--adobe-qps=1000)")
	flag.Parse()
	cfg.Limits = nil
	for _, f := range strings.Split(limits, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("-limits: %q is not a positive number", f)
		}
		cfg.Limits = append(cfg.Limits, v)
	}

	var err error
	if cfg.Sizes, err = parseSizes(sizes); err != nil {
		return err
	}
	cfg.ManagerArgs = strings.Fields(managerArgs)
	if cfg.OutDir == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return err
		}
		cfg.OutDir = filepath.Join(root, "test", "bench", "out", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return err
	}
	// The harness's own controller-runtime logs (informer, client) go to a file.
	logFile, err := os.Create(filepath.Join(cfg.OutDir, "harness.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Printf("bench: output in %s\n", cfg.OutDir)
	rep, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		return err
	}
	if err := rep.write(cfg.OutDir); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Println()
	rep.printTable(os.Stdout)
	fmt.Printf("\nreport: %s\n", cfg.OutDir)
	return nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
