package controllers_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

const (
	orgID        = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	clientID     = "suite-client"
	clientSecret = "suite-secret-0f9d8c7b6a5e4d3c"
)

var (
	env *localenv.Env
	// logs collects everything the operator logs during the suite, for the
	// check that no secret or token ever appears in it.
	logs     = &syncBuffer{}
	nsSerial atomic.Int64
	// operatorsStarted counts the managers the suite ran.
	operatorsStarted atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// A fuzz worker runs only the fuzz target, which needs no cluster; starting
	// one per worker would stall fuzzing and leave processes behind.
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	logf.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapDebug())))
	var err error
	env, err = localenv.Start(localenv.Options{
		Emulator:         emulator.Options{Credentials: map[string]string{clientID: clientSecret}},
		ValidateRequests: specsAvailable(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local environment:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	code := m.Run()
	// The scan needs an operator to have run (not so with -run Unit).
	if code == 0 && operatorsStarted.Load() > 0 {
		if err := scanForSecrets(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	return code
}

// specsAvailable: Adobe's OpenAPI specs validate every request the operator
// sends when they are beside the repository; in CI they must be.
func specsAvailable() bool {
	return os.Getenv("CI") == "true" || specDirFound()
}

// startOperator runs a manager for one test, with fast timings.
func startOperator(t *testing.T, mutate ...func(*manager.Options)) *localenv.Manager {
	t.Helper()
	o := env.ManagerOptions()
	o.ResyncInterval = time.Hour
	o.AdobeQPS = 1000
	o.AdobeBurst = 1000
	o.HTTPClient = &http.Client{Transport: tokenRecorder}
	for _, f := range mutate {
		f(&o)
	}
	m, err := env.StartManager(o)
	if err != nil {
		t.Fatalf("start operator: %v", err)
	}
	operatorsStarted.Add(1)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	})
	return m
}

// newNamespace gives a test its own namespace with the credentials Secret.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsSerial.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(strings.ReplaceAll(name, "_", "-"), "-")
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	createSecret(t, name, "adobe", clientID, clientSecret)
	return name
}

func createSecret(t *testing.T, ns, name, id, secret string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"clientId": id, "clientSecret": secret},
	}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func newSource(ns, name string) *v1alpha1.CapillarySource {
	return &v1alpha1.CapillarySource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.CapillarySourceSpec{
			CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: "adobe"},
			OrgID:                orgID,
			Target: v1alpha1.Target{
				DatasetID: "6889f4f89b982b2b90bc1207",
				SchemaID:  "https://ns.adobe.com/acme/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168",
			},
			Mappings: []v1alpha1.Mapping{
				{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"},
				{SourceAttribute: "identityMap.email.id", DestinationXdmPath: "identityMap.email[0].id", Identity: true},
			},
		},
	}
}

func create(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	if err := env.Client.Create(context.Background(), cs); err != nil {
		t.Fatalf("create %s: %v", cs.Name, err)
	}
}

func get(t *testing.T, cs *v1alpha1.CapillarySource) *v1alpha1.CapillarySource {
	t.Helper()
	got := &v1alpha1.CapillarySource{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(cs), got); err != nil {
		t.Fatalf("get %s: %v", cs.Name, err)
	}
	return got
}

// waitFor polls the resource until cond holds, or fails the test with the
// last status it saw.
func waitFor(t *testing.T, cs *v1alpha1.CapillarySource, what string, cond func(*v1alpha1.CapillarySource) bool) *v1alpha1.CapillarySource {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last *v1alpha1.CapillarySource
	for time.Now().Before(deadline) {
		last = &v1alpha1.CapillarySource{}
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(cs), last); err == nil && cond(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/%s never became %s; last status: %+v", cs.Namespace, cs.Name, what, last.Status)
	return nil
}

func isReady(cs *v1alpha1.CapillarySource) bool {
	return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) &&
		cs.Status.ObservedGeneration == cs.Generation
}

func reasonIs(condType, reason string) func(*v1alpha1.CapillarySource) bool {
	return func(cs *v1alpha1.CapillarySource) bool {
		c := meta.FindStatusCondition(cs.Status.Conditions, condType)
		return c != nil && c.Reason == reason
	}
}

func update(t *testing.T, cs *v1alpha1.CapillarySource, mutate func(*v1alpha1.CapillarySource)) {
	t.Helper()
	for range 10 {
		cur := get(t, cs)
		mutate(cur)
		err := env.Client.Update(context.Background(), cur)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			t.Fatalf("update %s: %v", cs.Name, err)
		}
	}
	t.Fatalf("update %s: kept conflicting", cs.Name)
}

// objectsNamed lists the emulator's objects of kind whose name mentions the resource's UID.
func objectsOf(kind emulator.Kind, cs *v1alpha1.CapillarySource) []emulator.Object {
	var out []emulator.Object
	for _, o := range env.Emulator.Objects().Of(kind) {
		if strings.Contains(o.Name(), string(cs.UID)) {
			out = append(out, o)
		}
	}
	return out
}
