package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
)

// options configure one run of the demo.
type options struct {
	// Root is the repository: config/samples, config/crd and
	// hack/setup-envtest.sh are read from it.
	Root string
	// Namespace receives the samples.
	Namespace string
	// ReadyTimeout bounds the wait for the samples to become Ready.
	ReadyTimeout time.Duration
	// OnReady, when set, is called once the samples are Ready and everything
	// is printed; the demo then stays up until ctx ends.
	OnReady func(readyInfo)
	// ConnectionAuth is the variant of the Capillary connection spec the
	// emulator serves; empty means OAuth2, the safer assumption (Adobe's
	// Streaming SDK page requires authentication for every connector).
	ConnectionAuth emulator.ConnectionAuth
	// InletWarmup is the inlet's warm-up, the same for the emulator and the
	// operator (Adobe's is about five minutes; the demo's is short).
	InletWarmup time.Duration
}

// Sample events the demo sends once Ready, for config/samples' mappings.
const (
	sampleGoodEvents = 5
	sampleGoodEvent  = `{"identityMap":{"email":{"id":"ana@example.com"}},"loyalty":{"points":120,"tier":"gold"}}`
	// points is not a number: Adobe's mapper refuses the record.
	sampleBadEvent = `{"identityMap":{"email":{"id":"ben@example.com"}},"loyalty":{"points":"lots","tier":"gold"}}`
)

// readyInfo is what the demo has set up, for the user and for tests.
type readyInfo struct {
	TempDir    string
	Kubeconfig string
	Sources    []types.NamespacedName
	// InletURLs maps each source's name to its streaming inlet URL.
	InletURLs map[string]string
	// DataflowIDs maps each source's name to its dataflow, for x-adobe-flow-id.
	DataflowIDs map[string]string
	// AdobeURL is the emulator's base URL (IMS and Platform).
	AdobeURL string
	// ConnectionAuth is the variant the emulator serves.
	ConnectionAuth emulator.ConnectionAuth
	// First is the first source by name, for the printed curl.
	First *v1alpha1.CapillarySource
}

// run starts the control plane, the Adobe emulator and the operator, applies
// the samples, waits for them to be Ready, prints how to reach them, and
// stays up until ctx ends; then it stops everything and removes its files.
// A cancelled ctx is a normal end: run returns nil when it cleaned up.
func run(ctx context.Context, out io.Writer, opts options) (err error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	if opts.ConnectionAuth == "" {
		opts.ConnectionAuth = emulator.ConnectionAuthOAuth2
	}
	p := newProgress(out)
	setLogger()

	tmp, err := os.MkdirTemp("", "capillary-demo-")
	if err != nil {
		return fmt.Errorf("create temporary folder: %w", err)
	}
	// Cleanups run in reverse order; the temporary folder goes last.
	var cleanups []func() error
	defer func() {
		if len(cleanups) == 0 {
			_ = os.RemoveAll(tmp)
			if ctx.Err() != nil {
				p.printf("Interrupted; nothing was left running.\n")
			}
			return
		}
		st := p.start("Stopping the operator, the control plane and the emulator")
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		errs = append(errs, os.RemoveAll(tmp))
		cerr := errors.Join(errs...)
		st.done(cerr)
		if cerr == nil {
			p.printf("Removed %s. Bye.\n", tmp)
		}
		err = errors.Join(err, cerr)
	}()
	// interrupted turns the error of a step cut short by ctx into a clean end.
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	if err := ensureEnvtest(ctx, p, opts.Root, filepath.Join(tmp, "envtest-build.log")); err != nil {
		return interrupted(err)
	}

	st := p.start("Reading config/samples")
	smp, err := loadSamples(filepath.Join(opts.Root, "config", "samples"))
	var creds map[string]string
	if err == nil {
		creds, err = smp.credentials()
	}
	st.done(err)
	if err != nil {
		return err
	}

	logPath := filepath.Join(tmp, "operator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create operator log: %w", err)
	}
	operatorLog.set(logFile)
	cleanups = append(cleanups, func() error {
		operatorLog.set(io.Discard)
		return logFile.Close()
	})

	validate := specsAvailable()
	what := "Starting the Adobe emulator and the local control plane (kube-apiserver, etcd)"
	st = p.start(what)
	env, err := localenv.Start(localenv.Options{
		// No state file: the emulator's objects live and die with the demo.
		Emulator:         emulator.Options{Credentials: creds, ConnectionAuth: opts.ConnectionAuth, InletWarmup: opts.InletWarmup},
		ValidateRequests: validate,
	})
	st.done(err)
	if err != nil {
		return fmt.Errorf("start local environment: %w", err)
	}
	cleanups = append(cleanups, env.Stop)
	if ctx.Err() != nil {
		return nil
	}
	if validate {
		p.printf("    the emulator checks every request against Adobe's OpenAPI specs\n")
	}

	st = p.start("Starting the operator (production defaults, pointed at the emulator)")
	if err = ensureNamespace(ctx, env.Client, opts.Namespace); err != nil {
		st.done(err)
		return interrupted(err)
	}
	mopts := env.ManagerOptions()
	mopts.InletWarmup = opts.InletWarmup
	// As in config/default: one leader among the replicas.
	mopts.LeaderElect = true
	mopts.LeaderElectionNamespace = opts.Namespace
	mgr, err := env.StartManager(mopts)
	st.done(err)
	if err != nil {
		return interrupted(fmt.Errorf("start operator: %w", err))
	}
	cleanups = append(cleanups, mgr.Stop)
	p.printf("    --ims-url=%s --platform-url=%s --allow-insecure-endpoints --leader-elect --resync-interval=%s\n",
		mopts.IMSURL, mopts.PlatformURL, mopts.ResyncInterval)

	st = p.start(fmt.Sprintf("Applying config/samples to namespace %q", opts.Namespace))
	keys, err := apply(ctx, env.Client, smp, opts.Namespace, opts.ConnectionAuth)
	st.done(err)
	if err != nil {
		return interrupted(err)
	}

	st = p.start("Waiting for the CapillarySources to be Ready")
	srcs, err := waitReady(ctx, env.Client, keys, opts.ReadyTimeout, st)
	st.done(err)
	if err != nil {
		return interrupted(err)
	}

	st = p.start(fmt.Sprintf("Sending %d good and 1 bad sample event to each inlet, as Capillary would", sampleGoodEvents))
	err = sendSamples(ctx, env, srcs)
	if err == nil {
		srcs, err = waitIngested(ctx, env.Client, srcs, opts.ReadyTimeout)
	}
	st.done(err)
	if err != nil {
		return interrupted(err)
	}

	kubeconfig := filepath.Join(tmp, "kubeconfig")
	kc, err := env.ControlPlane.KubeconfigBytes()
	if err == nil {
		err = os.WriteFile(kubeconfig, kc, 0o600)
	}
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}

	table, err := getTable(ctx, env.Config, opts.Namespace)
	if err != nil {
		return interrupted(err)
	}
	info := readyInfo{TempDir: tmp, Kubeconfig: kubeconfig, Sources: keys, InletURLs: map[string]string{},
		DataflowIDs: map[string]string{}, AdobeURL: env.AdobeURL, ConnectionAuth: opts.ConnectionAuth}
	for _, cs := range srcs {
		info.InletURLs[cs.Name] = cs.Status.InletURL
		info.DataflowIDs[cs.Name] = cs.Status.DataflowID
		if info.First == nil || cs.Name < info.First.Name {
			info.First = cs
		}
	}
	printReady(p, table, info, opts.Namespace, logPath)
	if opts.OnReady != nil {
		opts.OnReady(info)
	}

	select {
	case <-ctx.Done():
		p.printf("\n")
		return nil
	case <-mgr.Done():
		return fmt.Errorf("the operator stopped: %w (log: %s)", mgr.Stop(), logPath)
	}
}

// sendEventHelp is how Capillary would post an event to cs's inlet, as
// docs/operations.md says for the source's inletAuthentication; secrets are
// read from the Secret by the commands, never printed.
func sendEventHelp(info readyInfo, cs *v1alpha1.CapillarySource, ns string) string {
	const event = `{"loyalty":{"points":120}}`
	fromSecret := func(env, key string) string {
		return fmt.Sprintf("  %s=$(kubectl get secret %s -n %s -o jsonpath='{.data.%s}' | base64 -d)\n", env, cs.Spec.CredentialsSecretRef.Name, ns, key)
	}
	post := "  curl -sS -X POST -H 'Content-Type: application/json' -H 'x-adobe-flow-id: " + cs.Status.DataflowID + "'"
	var b strings.Builder
	fmt.Fprintf(&b, "Send it an event as Capillary would (inletAuthentication: %s; the emulator checks it as Adobe's streaming endpoint would):\n", cs.Status.InletAuthentication)
	switch cs.Status.InletAuthentication {
	case v1alpha1.InletAuthenticationOAuth2:
		fmt.Fprintf(&b, "  export KUBECONFIG=%s\n", info.Kubeconfig)
		b.WriteString(fromSecret("CLIENT_ID", cs.Spec.CredentialsSecretRef.ClientIDKey))
		b.WriteString(fromSecret("CLIENT_SECRET", cs.Spec.CredentialsSecretRef.ClientSecretKey))
		fmt.Fprintf(&b, "  TOKEN=$(curl -sS -X POST %s/ims/token/v3 -d grant_type=client_credentials -d client_id=\"$CLIENT_ID\" -d client_secret=\"$CLIENT_SECRET\" -d scope=openid,AdobeID,read_organizations | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')\n", info.AdobeURL)
		fmt.Fprintf(&b, "%s -H \"Authorization: Bearer $TOKEN\" -H \"x-api-key: $CLIENT_ID\" -H 'x-gw-ims-org-id: %s' -H 'x-sandbox-name: %s' -d '%s' %s\n",
			post, cs.Spec.OrgID, cs.Spec.SandboxName, event, cs.Status.InletURL)
	case v1alpha1.InletAuthenticationHMAC:
		fmt.Fprintf(&b, "  export KUBECONFIG=%s\n", info.Kubeconfig)
		b.WriteString(fromSecret("SHARED_SECRET", "sharedSecret"))
		fmt.Fprintf(&b, "  BODY='%s'; SIG=$(printf %%s \"$BODY\" | openssl dgst -sha256 -hmac \"$SHARED_SECRET\" -hex | sed 's/^.* //')\n", event)
		fmt.Fprintf(&b, "%s -H \"x-hmac-sha256: $SIG\" -d \"$BODY\" %s\n", post, cs.Status.InletURL)
	default:
		fmt.Fprintf(&b, "%s -d '%s' %s\n", post, event, cs.Status.InletURL)
	}
	return b.String()
}

func printReady(p *progress, table *metav1.Table, info readyInfo, ns, logPath string) {
	var b strings.Builder
	b.WriteString("\n$ kubectl get capillarysources -o wide")
	if ns != "default" {
		b.WriteString(" -n " + ns)
	}
	b.WriteString("\n")
	_ = printTable(&b, table, time.Now())
	b.WriteString("\n")
	names := make([]string, 0, len(info.InletURLs))
	for n := range info.InletURLs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "Inlet URL of %s: %s\n", n, info.InletURLs[n])
	}
	if cs := info.First; cs != nil {
		b.WriteString(sendEventHelp(info, cs, ns))
	}
	fmt.Fprintf(&b, "\nUse kubectl against the demo cluster from another terminal:\n"+
		"  export KUBECONFIG=%s\n"+
		"  kubectl describe capillarysource %s -n %s\n"+
		"Operator log: %s\n\n"+
		"Press Ctrl-C to stop the demo and remove everything it started.\n",
		info.Kubeconfig, names[0], ns, logPath)
	p.printf("%s", b.String())
}

// specsAvailable: with Adobe's OpenAPI specs beside the repository the
// emulator validates every request; a fresh clone runs without them.
func specsAvailable() bool {
	dir, err := aepspec.Dir()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "flow-service.yaml"))
	return err == nil
}

// ensureNamespace creates ns unless it exists. The apiserver creates
// "default" itself, but a moment after it starts answering.
func ensureNamespace(ctx context.Context, c client.Client, ns string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// apply creates the samples in ns, as `kubectl apply -k config/samples -n ns` would.
func apply(ctx context.Context, c client.Client, s *samples, ns string, auth emulator.ConnectionAuth) ([]types.NamespacedName, error) {
	var keys []types.NamespacedName
	for _, o := range s.objects {
		o = o.DeepCopy()
		o.SetNamespace(ns)
		if auth == emulator.ConnectionAuthHMAC && o.GetKind() == "Secret" {
			// The HMAC variant's authSpec asks for a shared secret the
			// sample does not hold: make one for this demo.
			if err := unstructured.SetNestedField(o.Object, rand.Text()+rand.Text(), "stringData", "sharedSecret"); err != nil {
				return nil, err
			}
		}
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if o.GroupVersionKind() == v1alpha1.GroupVersion.WithKind("CapillarySource") {
			keys = append(keys, types.NamespacedName{Namespace: ns, Name: o.GetName()})
		}
	}
	return keys, nil
}

// waitReady polls until every source is Ready for its current generation,
// showing each step's progress; a Stalled source ends the wait with its reason.
// sendSamples posts the sample events to each source's inlet with the
// authentication its status names: what the printed commands do.
func sendSamples(ctx context.Context, env *localenv.Env, srcs []*v1alpha1.CapillarySource) error {
	for _, cs := range srcs {
		secret := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cs.Namespace, Name: cs.Spec.CredentialsSecretRef.Name}, secret); err != nil {
			return fmt.Errorf("read Secret of %s: %w", cs.Name, err)
		}
		events := append(slices.Repeat([]string{sampleGoodEvent}, sampleGoodEvents), sampleBadEvent)
		for _, body := range events {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, cs.Status.InletURL, strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-adobe-flow-id", cs.Status.DataflowID)
			switch cs.Status.InletAuthentication {
			case v1alpha1.InletAuthenticationOAuth2:
				tok, err := localenv.IMSToken(ctx, env.AdobeURL, string(secret.Data[cs.Spec.CredentialsSecretRef.ClientIDKey]), string(secret.Data[cs.Spec.CredentialsSecretRef.ClientSecretKey]))
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer "+tok)
			case v1alpha1.InletAuthenticationHMAC:
				m := hmac.New(sha256.New, secret.Data["sharedSecret"])
				m.Write([]byte(body))
				req.Header.Set("x-hmac-sha256", hex.EncodeToString(m.Sum(nil)))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("post a sample event to %s: %w", cs.Name, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("post a sample event to %s: HTTP %d", cs.Name, resp.StatusCode)
			}
		}
	}
	return nil
}

// waitIngested asks the operator for a pass over each source (the manual
// trigger) and waits until status shows the samples' run.
func waitIngested(ctx context.Context, c client.Client, srcs []*v1alpha1.CapillarySource, timeout time.Duration) ([]*v1alpha1.CapillarySource, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	token := "demo-samples-sent"
	var out []*v1alpha1.CapillarySource
	for _, cs := range srcs {
		patch := client.MergeFrom(cs.DeepCopy())
		if cs.Annotations == nil {
			cs.Annotations = map[string]string{}
		}
		cs.Annotations[v1alpha1.ReconcileRequestAnnotation] = token
		if err := c.Patch(ctx, cs, patch); err != nil {
			return nil, fmt.Errorf("ask for a pass over %s: %w", cs.Name, err)
		}
		key := client.ObjectKeyFromObject(cs)
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got := &v1alpha1.CapillarySource{}
			if err := c.Get(ctx, key, got); err != nil {
				return false, err
			}
			cs = got
			return got.Status.LastHandledReconcileAt == token && got.Status.Ingestion != nil &&
				got.Status.Ingestion.RecordsReceived >= sampleGoodEvents+1, nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s never showed the sample events' run: %w", key.Name, err)
		}
		out = append(out, cs)
	}
	return out, nil
}

func waitReady(ctx context.Context, c client.Client, keys []types.NamespacedName, timeout time.Duration, st *stage) ([]*v1alpha1.CapillarySource, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var ready []*v1alpha1.CapillarySource
		var waiting string
		for _, k := range keys {
			cs := &v1alpha1.CapillarySource{}
			if err := c.Get(ctx, k, cs); err != nil {
				if ctx.Err() != nil {
					break
				}
				return nil, fmt.Errorf("get %s: %w", k, err)
			}
			if s := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue {
				return nil, fmt.Errorf("%s is stalled: %s: %s", k.Name, s.Reason, s.Message)
			}
			r := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
			if r != nil && r.Status == metav1.ConditionTrue && cs.Status.ObservedGeneration == cs.Generation && cs.Status.InletURL != "" {
				ready = append(ready, cs)
				continue
			}
			if waiting == "" {
				waiting = k.Name + ": waiting for the operator"
				if r != nil {
					waiting = fmt.Sprintf("%s: %s, %s", k.Name, r.Reason, r.Message)
				}
			}
		}
		if len(ready) == len(keys) {
			return ready, nil
		}
		st.update(waiting)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the samples were not Ready within %s (%s): %w", timeout, waiting, ctx.Err())
		case <-tick.C:
		}
	}
}

// operatorLog is where the operator's logs go: a file in the demo's folder,
// switched per run (controller-runtime's logger can be set only once).
var operatorLog = &switchWriter{w: io.Discard}

type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

var setLoggerOnce sync.Once

// setLogger sends controller-runtime's and client-go's logs to operatorLog,
// so they do not scribble over the demo's progress lines.
func setLogger() {
	setLoggerOnce.Do(func() {
		l := zap.New(zap.WriteTo(operatorLog))
		logf.SetLogger(l)
		klog.SetLogger(logr.Logger(l))
	})
}
