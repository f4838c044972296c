// Package manager wires the operator: flags, the controller-runtime manager,
// the Adobe client and the CapillarySource controller. main.go, the demo, the
// benchmark and the tests all start the operator through it, so they run the
// same code with the same defaults.
package manager

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/controllers"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// Environment variables that back the endpoint flags (the flag wins).
const (
	EnvIMSURL      = "AEP_IMS_URL"
	EnvPlatformURL = "AEP_PLATFORM_URL"
)

// Options are the operator's settings; BindFlags exposes them as flags.
type Options struct {
	IMSURL      string
	PlatformURL string
	IMSScopes   string
	// AllowInsecureEndpoints permits http:// endpoints on loopback only (the
	// emulator). Real endpoints are always HTTPS with TLS verification.
	AllowInsecureEndpoints bool

	ResyncInterval          time.Duration
	StalledRetryInterval    time.Duration
	RetryBaseDelay          time.Duration
	RetryMaxDelay           time.Duration
	ReconcileTimeout        time.Duration
	InletWarmup             time.Duration
	MaxConcurrentReconciles int
	AdobeQPS                float64
	AdobeBurst              int
	// AdobeAdaptive: the per-credential rate is found from Adobe's 429s, up
	// to AdobeQPS (--adobe-adaptive); off, it is AdobeQPS, fixed.
	AdobeAdaptive bool
	// AdobeOrgQPS and AdobeOrgBurst: an optional org-wide ceiling over all of
	// an org's credentials (--adobe-org-qps; 0: none).
	AdobeOrgQPS   float64
	AdobeOrgBurst int
	// RestartSpread: after a start, a source that is Ready and whose
	// generation was handled is first checked at a random moment within its
	// resync interval instead of at once (--restart-spread).
	RestartSpread    bool
	AdobeTimeout     time.Duration
	AdobeMaxAttempts int

	MetricsAddr             string
	SecureMetrics           bool
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration
	// LeaderElectionReleaseOnCancel gives the lease up on a clean shutdown so
	// a standby takes over at once; off, the standby waits for the lease to
	// run out, as after a crash (the HA drill uses that).
	LeaderElectionReleaseOnCancel bool
	WatchNamespaces               string
	// ClusterCredentialsNamespace holds the Secrets ClusterAdobeCredentials
	// name; empty: the namespace the operator runs in.
	ClusterCredentialsNamespace string

	// HTTPClient, when set, carries all Adobe traffic (tests).
	HTTPClient *http.Client
	// SkipNameValidation lets one process run several managers (tests, HA drills).
	SkipNameValidation bool
}

// Defaults returns the production defaults.
func Defaults() Options {
	return Options{
		IMSURL:               ims.DefaultURL,
		PlatformURL:          flowservice.DefaultBaseURL,
		IMSScopes:            ims.DefaultScopes,
		ResyncInterval:       controllers.DefaultResyncInterval,
		StalledRetryInterval: controllers.DefaultStalledRetryInterval,
		RetryBaseDelay:       controllers.DefaultRetryBaseDelay,
		RetryMaxDelay:        controllers.DefaultRetryMaxDelay,
		ReconcileTimeout:     controllers.DefaultReconcileTimeout,
		InletWarmup:          controllers.DefaultInletWarmup,
		// Sized in docs/performance.md: 10 workers keep 20 calls/s busy when
		// an Adobe call takes up to half a second.
		MaxConcurrentReconciles: 10,
		AdobeQPS:                flowservice.DefaultQPS,
		AdobeBurst:              flowservice.DefaultBurst,
		AdobeAdaptive:           true,
		AdobeOrgBurst:           flowservice.DefaultBurst,
		RestartSpread:           true,
		AdobeTimeout:            flowservice.DefaultRequestTimeout,
		AdobeMaxAttempts:        flowservice.DefaultRetryPolicy.MaxAttempts,
		MetricsAddr:             ":8443",
		SecureMetrics:           true,
		ProbeAddr:               ":8081",
		LeaderElectionID:        "capillary-operator.sources.aepoperator.dev",
		LeaseDuration:           15 * time.Second,
		RenewDeadline:           10 * time.Second,
		RetryPeriod:             2 * time.Second,

		LeaderElectionReleaseOnCancel: true,
	}
}

// BindFlags registers the operator's flags on fs, with o's values (and the
// endpoint environment variables) as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.IMSURL, "ims-url", envOr(EnvIMSURL, o.IMSURL), "Adobe IMS base URL; tokens come from {ims-url}/ims/token/v3 [$"+EnvIMSURL+"]")
	fs.StringVar(&o.PlatformURL, "platform-url", envOr(EnvPlatformURL, o.PlatformURL), "Adobe Platform gateway; Flow Service is {platform-url}/data/foundation/flowservice [$"+EnvPlatformURL+"]")
	fs.StringVar(&o.IMSScopes, "ims-scopes", o.IMSScopes, "comma-separated OAuth scopes requested from IMS")
	fs.BoolVar(&o.AllowInsecureEndpoints, "allow-insecure-endpoints", o.AllowInsecureEndpoints, "allow http:// Adobe endpoints on loopback (the local emulator); never for real endpoints")
	fs.DurationVar(&o.ResyncInterval, "resync-interval", o.ResyncInterval, "how often a Ready source is checked for drift (jittered ±10%)")
	fs.DurationVar(&o.StalledRetryInterval, "stalled-retry-interval", o.StalledRetryInterval, "how often a source stalled on a terminal error is retried without a change (jittered)")
	fs.DurationVar(&o.RetryBaseDelay, "retry-base-delay", o.RetryBaseDelay, "first backoff after a transient failure; doubles per failure (jittered)")
	fs.DurationVar(&o.RetryMaxDelay, "retry-max-delay", o.RetryMaxDelay, "longest backoff after transient failures")
	fs.DurationVar(&o.ReconcileTimeout, "reconcile-timeout", o.ReconcileTimeout, "longest one reconcile may take, Adobe retries and rate limiter waits included; the status write gets a short grace after it")
	fs.DurationVar(&o.InletWarmup, "inlet-warmup", o.InletWarmup, "how long a new dataflow's inlet takes to accept events (Adobe: about 5 minutes); Ready waits for it; 0s makes Ready not wait")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "number of CapillarySources reconciled in parallel")
	fs.Float64Var(&o.AdobeQPS, "adobe-qps", o.AdobeQPS, "most Adobe Platform requests per second per credential: the ceiling of the adaptive limiter (or the fixed rate with --adobe-adaptive=false)")
	fs.IntVar(&o.AdobeBurst, "adobe-burst", o.AdobeBurst, "largest burst of the per-credential token bucket")
	fs.BoolVar(&o.AdobeAdaptive, "adobe-adaptive", o.AdobeAdaptive, "find each credential's rate from Adobe's 429 answers (AIMD), up to --adobe-qps; false: a fixed --adobe-qps")
	fs.Float64Var(&o.AdobeOrgQPS, "adobe-org-qps", o.AdobeOrgQPS, "optional ceiling on Adobe Platform requests per second over all credentials of one org; 0: none")
	fs.IntVar(&o.AdobeOrgBurst, "adobe-org-burst", o.AdobeOrgBurst, "burst of the org-wide ceiling (--adobe-org-qps)")
	fs.BoolVar(&o.RestartSpread, "restart-spread", o.RestartSpread, "after a start, check sources that are Ready and up to date at random moments within their resync interval, not all at once")
	fs.DurationVar(&o.AdobeTimeout, "adobe-timeout", o.AdobeTimeout, "timeout of one Adobe request")
	fs.IntVar(&o.AdobeMaxAttempts, "adobe-max-attempts", o.AdobeMaxAttempts, "tries of one Adobe request on transient errors (1 = no retry)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the metrics endpoint; 0 disables it")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", o.SecureMetrics, "serve metrics over HTTPS with Kubernetes authentication and authorization")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "elect a leader so only one replica acts")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "name of the leader election Lease")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "namespace of the Lease (default: the pod's namespace)")
	fs.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", o.LeaseDuration, "how long a lease holds without renewal")
	fs.BoolVar(&o.LeaderElectionReleaseOnCancel, "leader-election-release-on-cancel", o.LeaderElectionReleaseOnCancel, "give the lease up on shutdown so a standby takes over at once")
	fs.StringVar(&o.WatchNamespaces, "watch-namespaces", o.WatchNamespaces, "comma-separated namespaces to watch (default: all)")
	fs.StringVar(&o.ClusterCredentialsNamespace, "cluster-credentials-namespace", o.ClusterCredentialsNamespace, "namespace of the Secrets that ClusterAdobeCredentials name (default: the namespace the operator runs in)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Validate checks the endpoints: HTTPS for anything real; plain HTTP only on
// loopback and only when explicitly allowed.
func (o *Options) Validate() error {
	var errs []error
	for name, raw := range map[string]string{"--ims-url": o.IMSURL, "--platform-url": o.PlatformURL} {
		if err := checkEndpoint(raw, o.AllowInsecureEndpoints); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if o.ResyncInterval < time.Minute/6 {
		errs = append(errs, errors.New("--resync-interval must be at least 10s"))
	}
	if o.RetryBaseDelay < 0 || o.RetryMaxDelay < o.RetryBaseDelay {
		errs = append(errs, errors.New("--retry-base-delay must not be negative and --retry-max-delay not below it"))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, errors.New("--max-concurrent-reconciles must be at least 1"))
	}
	if o.AdobeQPS <= 0 || o.AdobeBurst < 1 {
		errs = append(errs, errors.New("--adobe-qps must be positive and --adobe-burst at least 1"))
	}
	if o.AdobeOrgQPS < 0 || (o.AdobeOrgQPS > 0 && o.AdobeOrgBurst < 1) {
		errs = append(errs, errors.New("--adobe-org-qps must not be negative, and --adobe-org-burst at least 1 when it is set"))
	}
	return errors.Join(errs...)
}

func checkEndpoint(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("%q must not carry credentials or a query", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if !allowInsecure {
			return fmt.Errorf("%q is plain HTTP; use HTTPS (plain HTTP is only for a loopback emulator, with --allow-insecure-endpoints)", raw)
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%q is plain HTTP to a non-loopback host", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

// Scheme holds the types the operator reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// New builds a manager with the CapillarySource controller registered.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	httpClient := o.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}

	metricsOpts := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics}
	if o.SecureMetrics && o.MetricsAddr != "0" {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cacheOpts := cache.Options{
		// Nothing reads managedFields; they are a large part of every cached
		// object (docs/performance.md).
		DefaultTransform: cache.TransformStripManagedFields(),
		// Secrets are watched for their metadata only, to find the sources
		// that use one when it changes; name, namespace and resourceVersion
		// are all that takes. Their annotations go too: kubectl apply keeps
		// the whole Secret, data included, in last-applied-configuration.
		// (The reconciler reads Secrets uncached, through the APIReader.)
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.CapillarySource{}: {Transform: compactSource},
			&corev1.Secret{}:            {Transform: stripSecretMetadata},
			// Only the connection-details ConfigMaps the operator writes,
			// never every ConfigMap of the cluster.
			&corev1.ConfigMap{}: {Label: connectionDetailsSelector},
		},
	}
	credentialsNamespace := o.ClusterCredentialsNamespace
	if credentialsNamespace == "" {
		credentialsNamespace = ownNamespace()
	}
	if ns := splitList(o.WatchNamespaces); len(ns) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			cacheOpts.DefaultNamespaces[n] = cache.Config{}
		}
		// The credentials' Secrets are watched (metadata only) wherever
		// the operator watches.
		secrets := map[string]cache.Config{credentialsNamespace: {}}
		for _, n := range ns {
			secrets[n] = cache.Config{}
		}
		cacheOpts.ByObject[&corev1.Secret{}] = cache.ByObject{Transform: stripSecretMetadata, Namespaces: secrets}
	}
	leaseDuration, renewDeadline, retryPeriod := o.LeaseDuration, o.RenewDeadline, o.RetryPeriod
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        Scheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: o.LeaderElectionReleaseOnCancel,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		Cache:                         cacheOpts,
		Controller:                    config.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}

	tokens := ims.NewCache(ims.WithHTTPClient(httpClient), ims.WithTimeout(o.AdobeTimeout)).Source(o.IMSURL, splitList(o.IMSScopes)...)
	retry := flowservice.DefaultRetryPolicy
	retry.MaxAttempts = max(o.AdobeMaxAttempts, 1)
	platform, err := flowservice.New(
		flowservice.WithBaseURL(o.PlatformURL),
		flowservice.WithHTTPClient(httpClient),
		flowservice.WithTokenSource(tokens),
		flowservice.WithRequestTimeout(o.AdobeTimeout),
		flowservice.WithRetryPolicy(retry),
		flowservice.WithRateLimit(o.AdobeQPS, o.AdobeBurst),
		flowservice.WithAdaptive(o.AdobeAdaptive),
		flowservice.WithOrgRateLimit(o.AdobeOrgQPS, o.AdobeOrgBurst),
	)
	if err != nil {
		return nil, fmt.Errorf("create Adobe client: %w", err)
	}
	r := &controllers.CapillarySourceReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("capillary-operator"),
		Adobe:                   controllers.FlowServiceConnector{Client: platform, Tokens: tokens},
		ResyncInterval:          o.ResyncInterval,
		StalledRetryInterval:    o.StalledRetryInterval,
		RetryBaseDelay:          o.RetryBaseDelay,
		RetryMaxDelay:           o.RetryMaxDelay,
		ReconcileTimeout:        o.ReconcileTimeout,
		InletWarmup:             o.InletWarmup,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,

		ClusterCredentialsNamespace: credentialsNamespace,
		RestartSpread:               o.RestartSpread,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up CapillarySource controller: %w", err)
	}
	cr := &controllers.ClusterAdobeCredentialReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Adobe:          r.Adobe,
		Namespace:      credentialsNamespace,
		ResyncInterval: o.ResyncInterval,
	}
	if err := cr.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up ClusterAdobeCredential controller: %w", err)
	}
	return mgr, nil
}

// connectionDetailsSelector selects the ConfigMaps the operator writes.
var connectionDetailsSelector = func() labels.Selector {
	req, err := labels.NewRequirement(v1alpha1.ConnectionDetailsSourceLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// DefaultClusterCredentialsNamespace is the credentials namespace when the
// operator runs outside a pod (make run): the namespace config/default
// deploys to.
const DefaultClusterCredentialsNamespace = "capillary-operator-system"

// ownNamespace is the namespace of the operator's pod, from its service
// account token's mount, as leader election finds it.
func ownNamespace() string {
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return DefaultClusterCredentialsNamespace
}

// stripSecretMetadata keeps a cached Secret's metadata down to what the
// watch needs: its name and namespace (to find the sources that name it)
// and its resourceVersion (to see it change). Every Secret of the cluster
// is cached, so what goes is counted in thousands.
func stripSecretMetadata(in any) (any, error) {
	if obj, err := meta.Accessor(in); err == nil {
		obj.SetManagedFields(nil)
		obj.SetAnnotations(nil)
		obj.SetLabels(nil)
		obj.SetOwnerReferences(nil)
		obj.SetFinalizers(nil)
		obj.SetGenerateName("")
		obj.SetNamespace(intern(obj.GetNamespace()))
	}
	return in, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
