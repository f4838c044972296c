package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// limiterRun is one cold start of N sources on one credential against the
// emulator's server-side limit: the adaptive limiter with default flags, or
// the fixed baseline (20 calls/s, burst 40: main at 702ccd3).
type limiterRun struct {
	LimitPerSecond float64  `json:"serverLimitPerSecond"`
	Mode           string   `json:"mode"` // "adaptive (defaults)" or "fixed 20/s (baseline)"
	ManagerArgs    []string `json:"managerArgs"`
	N              int      `json:"n"`
	Ready          int      `json:"ready"`
	// Seconds runs from the first create to the last Ready.
	Seconds float64 `json:"seconds"`
	// Accepted counts Platform calls Adobe answered (not 429); Throttled the
	// 429s; Tokens the IMS calls (not limited).
	Accepted  int `json:"accepted"`
	Throttled int `json:"throttled"`
	Tokens    int `json:"tokens"`
	// Share is Accepted ÷ (Seconds × limit): the share of the limit's
	// throughput used over the cold phase. ThrottledShare is Throttled ÷
	// all Platform calls.
	Share          float64 `json:"shareOfLimit"`
	ThrottledShare float64 `json:"throttledShare"`
	TimedOut       bool    `json:"timedOut"`
}

var limiterModes = []struct {
	name string
	args []string
}{
	{"adaptive (defaults)", nil},
	{fmt.Sprintf("fixed %.0f/s (baseline)", flowservice.FixedQPS), baselineLimiterArgs()},
}

// limiterPhase measures every server limit in cfg.Limits with each mode.
func (b *bench) limiterPhase(ctx context.Context) ([]limiterRun, error) {
	var out []limiterRun
	for i, limit := range b.cfg.Limits {
		for j, mode := range limiterModes {
			r, err := b.limiterRun(ctx, limit, mode.name, mode.args, fmt.Sprintf("lim-%d-%d", i, j))
			if err != nil {
				return out, fmt.Errorf("server limit %.0f/s, %s: %w", limit, mode.name, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (b *bench) limiterRun(ctx context.Context, limit float64, mode string, args []string, prefix string) (limiterRun, error) {
	n := b.cfg.LimiterN
	r := limiterRun{LimitPerSecond: limit, Mode: mode, N: n}
	// One credential of its own, in a namespace of its own.
	id := "bench-" + prefix
	secret := "bench-secret-" + randomHex(12)
	b.env.Emulator.AddCredential(id, secret)
	if err := b.ensureNamespace(ctx, prefix); err != nil {
		return r, err
	}
	if err := b.env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: prefix, Name: "adobe-0"},
		StringData: map[string]string{"clientId": id, "clientSecret": secret},
	}); err != nil {
		return r, fmt.Errorf("create credential Secret: %w", err)
	}
	if err := b.env.Emulator.SetRateLimit(emulator.RateLimit{PerSecond: limit}); err != nil {
		return r, err
	}
	defer func() { _ = b.env.Emulator.SetRateLimit(emulator.RateLimit{}) }()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTracker()
	if err := b.watchSources(runCtx, t); err != nil {
		return r, err
	}
	// No resync during the cold phase: the calls counted bring sources to Ready.
	r.ManagerArgs = append(append([]string{}, args...), "--resync-interval=2h")
	p, err := b.startManager(r.ManagerArgs, false, fmt.Sprintf("manager-limiter-%.0f-%s.log", limit, strings.Fields(mode)[0]))
	if err != nil {
		return r, err
	}
	defer func() { _ = p.stop() }()
	b.env.Emulator.ResetCalls()
	b.logf("limiter: server limit %.0f/s per credential, %s: creating %d sources on one credential", limit, mode, n)

	w := workload{prefix: prefix, namespaces: 1, credentials: 1, orgs: 1}
	keys := make([]string, n)
	err = parallel(ctx, n, b.cfg.CreateWorkers, func(ctx context.Context, j int) error {
		cs := w.source(j)
		cs.Namespace = prefix
		keys[j] = cs.Namespace + "/" + cs.Name
		t.markCreated(keys[j], time.Now())
		return b.env.Client.Create(ctx, cs)
	})
	if err != nil {
		return r, fmt.Errorf("create sources: %w", err)
	}
	// Generous: the rate bound at the limit, three times over, plus 5 minutes.
	deadline := time.Now().Add(5*time.Minute + time.Duration(3*float64(n*len(perResourceOps))/limit*float64(time.Second)))
	lastLog := time.Now()
	for t.readyCount(keys) < n && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		if time.Since(lastLog) > 30*time.Second {
			b.logf("limiter: %d/%d Ready", t.readyCount(keys), n)
			lastLog = time.Now()
		}
	}
	calls := b.env.Emulator.Calls()
	ds, first, last := t.durations(keys)
	r.Ready = len(ds)
	r.Seconds = last.Sub(first).Seconds()
	if r.Ready < n {
		r.TimedOut = true
		r.Seconds = time.Since(first).Seconds()
	}
	for k, v := range calls {
		switch {
		case k.Operation == emulator.OpIMSToken:
			r.Tokens += v
		case k.Status == http.StatusTooManyRequests:
			r.Throttled += v
		default:
			r.Accepted += v
		}
	}
	if r.Seconds > 0 {
		r.Share = float64(r.Accepted) / (r.Seconds * limit)
	}
	if all := r.Accepted + r.Throttled; all > 0 {
		r.ThrottledShare = float64(r.Throttled) / float64(all)
	}
	b.logf("limiter: server limit %.0f/s, %s: %d/%d Ready in %.1fs; %d calls answered, %d answered 429 (%.1f%%); %.0f%% of the limit's throughput",
		limit, mode, r.Ready, n, r.Seconds, r.Accepted, r.Throttled, 100*r.ThrottledShare, 100*r.Share)
	if err := p.stop(); err != nil {
		return r, fmt.Errorf("stop manager: %w", err)
	}
	return r, b.removeSources(ctx, keys)
}
