// Package controllers holds the CapillarySource reconciler.
package controllers

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// secretRefIndex indexes CapillarySources by the name of their credentials Secret.
const secretRefIndex = "spec.credentialsSecretRef.name"

// Defaults for the reconciler's timing; the manager's flags override them.
const (
	DefaultResyncInterval       = 10 * time.Minute
	DefaultStalledRetryInterval = 15 * time.Minute
	DefaultRetryBaseDelay       = 2 * time.Second
	DefaultRetryMaxDelay        = 5 * time.Minute
	DefaultReconcileTimeout     = 2 * time.Minute
	// statusWriteGrace is how long the final status write may take after
	// the reconcile's deadline.
	statusWriteGrace = 10 * time.Second
	// specCacheTTL bounds how long connection and flow spec lookups are
	// shared between resources; specs change only when Adobe ships a source.
	specCacheTTL = time.Hour
	// minResyncInterval is the floor of the per-resource annotation.
	minResyncInterval = time.Minute
)

// CapillarySourceReconciler brings the Adobe objects of each CapillarySource
// into existence, keeps them as declared, reports on them and cleans up.
type CapillarySourceReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server, so the manager
	// never caches Secret data (only the metadata of the watch).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Adobe     AdobeConnector

	// ResyncInterval is how often a Ready resource is checked for drift (jittered).
	ResyncInterval time.Duration
	// StalledRetryInterval is how often a terminal failure is retried
	// without a change to the spec or the Secret.
	StalledRetryInterval time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the backoff after transient failures.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// InletWarmup is how long a new dataflow's inlet takes to accept events
	// (Ready waits for it); 0 makes Ready not wait.
	InletWarmup time.Duration
	// ReconcileTimeout bounds one reconcile, Adobe calls and rate limiter
	// waits included.
	ReconcileTimeout time.Duration
	// ClusterCredentialsNamespace holds the Secrets of ClusterAdobeCredentials.
	ClusterCredentialsNamespace string
	// MaxConcurrentReconciles is the number of parallel workers.
	MaxConcurrentReconciles int
	// RestartSpread: the first time this process sees a source that is
	// settled (Ready, its generation and any manual trigger handled), its
	// check waits a random part of its resync interval instead of running at
	// once, so a restart does not re-read every source in one burst.
	RestartSpread bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	specs specCache
	// memos: types.NamespacedName → memo, what this process remembers of
	// each source (capillarysource_memo.go).
	memos sync.Map
	// spread counts the first checks spreadFirstCheck spread.
	spread atomic.Int64
}

// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=capillarysources,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=capillarysources/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=capillarysources/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile drives one CapillarySource through its lifecycle.
func (r *CapillarySourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)

	// 1: Load the CapillarySource.
	cs := &v1alpha1.CapillarySource{}
	if err := r.Get(ctx, req.NamespacedName, cs); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := r.newScope(cs)

	// 2: Being deleted: clean up in Adobe per deletionPolicy, then let go.
	if !cs.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}

	// 2b: Right after a start, a settled source is checked later, at a
	// random moment of its resync interval: no Adobe call, no write.
	if wait, spread := r.spreadFirstCheck(cs); spread {
		log.V(1).Info("settled before this start: first check spread over the resync interval", "wait", wait)
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	// 3: The finalizer goes on before anything exists in Adobe. A patch of
	// the finalizers alone, not an Update: an Update from a version that
	// does not know a spec field (a downgrade) would drop it. The
	// optimistic lock keeps another controller's finalizer.
	if base := cs.DeepCopy(); controllerutil.AddFinalizer(cs, v1alpha1.Finalizer) {
		if err := r.Patch(ctx, cs, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			if isConflict(err) {
				return ctrl.Result{RequeueAfter: jitter(conflictRequeue, 0.5)}, nil
			}
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		s.rebase()
	}

	// 4: After transient failures, wait out the backoff recorded in status,
	// so a restart of the operator does not reset it; a spec change does.
	s.forgetFailuresOfOlderSpec()
	if wait := s.backoffRemaining(r.backoff); wait > 0 {
		log.V(1).Info("backing off after transient failures", "failures", cs.Status.Failures, "wait", wait)
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	// 5: Walk the chain: credentials, specs, connections, mapping, dataflow,
	// within the reconcile's deadline.
	chainCtx, cancel := context.WithTimeout(ctx, cmp.Or(r.ReconcileTimeout, DefaultReconcileTimeout))
	defer cancel()
	prevCredentials := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionCredentialsReady).DeepCopy()
	err := refusedAgain(prevCredentials, deadlineReached(chainCtx, r.reconcileNormal(chainCtx, s)))

	// 6: Summarise into Ready / Reconciling / Stalled and write status if it
	// changed, with a grace period of its own after the deadline.
	finishCtx, cancelFinish := context.WithTimeout(ctx, statusWriteGrace)
	defer cancelFinish()
	return r.finish(finishCtx, s, err)
}

// SetupWithManager registers the controller: CapillarySources, and the
// metadata of Secrets mapped to the sources that reference them.
func (r *CapillarySourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.setDefaults()
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(context.Background(), &v1alpha1.CapillarySource{}, secretRefIndex,
		func(o client.Object) []string {
			if name := o.(*v1alpha1.CapillarySource).Spec.CredentialsSecretRef.Name; name != "" {
				return []string{name}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("index CapillarySources by Secret: %w", err)
	}
	if err := indexer.IndexField(context.Background(), &v1alpha1.CapillarySource{}, clusterCredentialIndex,
		func(o client.Object) []string {
			if name := credentialName(o); name != "" {
				return []string{name}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("index CapillarySources by ClusterAdobeCredential: %w", err)
	}
	if err := mgr.Add(sourceMetrics{cache: mgr.GetCache()}); err != nil {
		return fmt.Errorf("add the per-source metrics: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.CapillarySource{}, builder.WithPredicates(predicate.Or(
			// Our own status writes bump neither; the manual trigger is an annotation.
			predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{},
		))).
		// Metadata only: rotation is noticed without caching any Secret's data.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.sourcesForSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		// A credential's spec says who may use it, where.
		Watches(&v1alpha1.ClusterAdobeCredential{}, handler.EnqueueRequestsFromMapFunc(r.sourcesForCredential),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A namespace's labels may select it for a credential, or no more.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.sourcesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// The connection details: the manager caches only labelled ConfigMaps.
		Owns(&corev1.ConfigMap{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("capillarysource").
		Complete(r)
}

// sourcesForSecret maps a Secret to the sources that use it: directly, or
// through the ClusterAdobeCredentials that name it.
func (r *CapillarySourceReconciler) sourcesForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	reqs := r.sources(ctx, client.InNamespace(secret.GetNamespace()), client.MatchingFields{secretRefIndex: secret.GetName()})
	if secret.GetNamespace() == r.ClusterCredentialsNamespace {
		for _, cred := range credentialRequests(ctx, r.Client, secret.GetName()) {
			reqs = append(reqs, r.sources(ctx, client.MatchingFields{clusterCredentialIndex: cred.Name})...)
		}
	}
	return reqs
}

func (r *CapillarySourceReconciler) sourcesForCredential(ctx context.Context, cred client.Object) []reconcile.Request {
	return r.sources(ctx, client.MatchingFields{clusterCredentialIndex: cred.GetName()})
}

// sourcesInNamespace: the sources of the namespace that use a credential
// whose namespace selector may have changed its verdict.
func (r *CapillarySourceReconciler) sourcesInNamespace(ctx context.Context, ns client.Object) []reconcile.Request {
	var list v1alpha1.CapillarySourceList
	// Names only: the cached objects, not a deep copy of each.
	if err := r.List(ctx, &list, client.InNamespace(ns.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "list CapillarySources of namespace", "namespace", ns.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Spec.ClusterCredentialRef != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

func (r *CapillarySourceReconciler) sources(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list v1alpha1.CapillarySourceList
	// Names only: the cached objects, not a deep copy of each (a rotated
	// Secret may map to thousands).
	if err := r.List(ctx, &list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		logf.FromContext(ctx).Error(err, "list CapillarySources to reconcile")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

func (r *CapillarySourceReconciler) setDefaults() {
	if r.ResyncInterval <= 0 {
		r.ResyncInterval = DefaultResyncInterval
	}
	if r.StalledRetryInterval <= 0 {
		r.StalledRetryInterval = DefaultStalledRetryInterval
	}
	if r.RetryBaseDelay <= 0 {
		r.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if r.RetryMaxDelay <= 0 {
		r.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if r.ReconcileTimeout <= 0 {
		r.ReconcileTimeout = DefaultReconcileTimeout
	}
	if r.MaxConcurrentReconciles <= 0 {
		r.MaxConcurrentReconciles = 1
	}
}

func (r *CapillarySourceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// retryDelay is the backoff after n transient failures in a row:
// exponential from RetryBaseDelay, capped at RetryMaxDelay, with ±20% jitter
// so resources that failed together do not retry together.
func (r *CapillarySourceReconciler) retryDelay(n int32) time.Duration {
	return jitter(r.backoff(n), retryJitter)
}

// retryJitter is the ± fraction applied to the backoff.
const retryJitter = 0.2

// backoff is the un-jittered delay after n transient failures: the n-th
// step of a wait.Backoff from RetryBaseDelay, doubling, capped at RetryMaxDelay.
func (r *CapillarySourceReconciler) backoff(n int32) time.Duration {
	if n <= 0 {
		return 0
	}
	b := wait.Backoff{Duration: r.RetryBaseDelay, Factor: 2, Cap: r.RetryMaxDelay, Steps: int(n)}
	d := b.Step()
	for i := int32(1); i < n; i++ {
		if b.Steps == 0 {
			return b.Duration // capped: every later delay is the cap
		}
		d = b.Step()
	}
	return d
}

// resyncInterval is when a Ready resource is next checked: the flag or the
// resource's annotation, jittered ±10% so resyncs spread out.
func (r *CapillarySourceReconciler) resyncInterval(cs *v1alpha1.CapillarySource) time.Duration {
	return jitter(r.resyncBase(cs), 0.1)
}

// resyncBase is the resource's resync interval before jitter.
func (r *CapillarySourceReconciler) resyncBase(cs *v1alpha1.CapillarySource) time.Duration {
	d := r.ResyncInterval
	if v, ok := cs.Annotations[v1alpha1.ResyncIntervalAnnotation]; ok {
		if parsed, err := time.ParseDuration(v); err == nil {
			d = max(parsed, minResyncInterval)
		}
	}
	return d
}

func jitter(d time.Duration, fraction float64) time.Duration {
	return time.Duration(float64(d) * (1 - fraction + 2*fraction*rand.Float64()))
}

// markCreateStarted records that this process is about to create objects
// for the resource with this name and UID.
func (r *CapillarySourceReconciler) markCreateStarted(key types.NamespacedName, uid types.UID) {
	if m := r.memoOf(key, uid); !m.createStarted {
		m.createStarted = true
		r.remember(key, m)
	}
}

func (r *CapillarySourceReconciler) createStartedHere(key types.NamespacedName, uid types.UID) bool {
	return r.memoOf(key, uid).createStarted
}

// spreadFirstCheck decides, on this process's first reconcile of a source,
// whether its check can wait: only when it is settled, that is Ready (not
// warming up), its generation and any manual trigger handled, no failure
// pending and its finalizer on. A source created, changed or triggered
// while the operator was down is not settled and goes ahead at once. The
// waits cover one resync interval evenly, so N settled sources are read at
// N per interval from the start, as in steady state; the price is that
// drift made while the operator was down is found within one interval
// rather than at once.
func (r *CapillarySourceReconciler) spreadFirstCheck(cs *v1alpha1.CapillarySource) (time.Duration, bool) {
	if !r.RestartSpread {
		return 0, false
	}
	key := client.ObjectKeyFromObject(cs)
	m := r.memoOf(key, cs.UID)
	if m.seen {
		return 0, false
	}
	m.seen = true
	r.remember(key, m)
	if !settled(cs) {
		return 0, false
	}
	// The k-th settled source seen gets the fractional part of k·φ of the
	// interval (a Weyl sequence): any stretch of the interval receives its
	// share of the N checks, give or take a few, where independent random
	// offsets would bunch (at N=1000 over 10m, 10 s windows of 17 ± 8).
	k := r.spread.Add(1)
	frac := math.Mod(float64(k)*goldenRatioConjugate, 1)
	return time.Duration(frac * float64(r.resyncBase(cs))), true
}

// goldenRatioConjugate is φ − 1, the step of the most even Weyl sequence.
const goldenRatioConjugate = 0.6180339887498949

// settled: Ready for the current generation, nothing left to do but the
// periodic check.
func settled(cs *v1alpha1.CapillarySource) bool {
	ready := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
	_, requested := (&scope{cs: cs}).reconcileRequested()
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == cs.Generation &&
		cs.Status.ObservedGeneration == cs.Generation && !requested && cs.Status.Failures == 0 &&
		cs.Status.DataflowID != "" && controllerutil.ContainsFinalizer(cs, v1alpha1.Finalizer)
}

func (r *CapillarySourceReconciler) forget(key types.NamespacedName) {
	r.memos.Delete(key)
}
