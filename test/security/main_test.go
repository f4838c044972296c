// Package security_test checks the operator's security properties: the
// generated RBAC is pinned and sufficient, endpoints are HTTPS with TLS
// verification (plain HTTP only to a loopback emulator, by explicit flag),
// nothing in a CapillarySource can point the operator elsewhere, no
// credential travels in a URL, and no client secret or token reaches logs,
// events or status.
package security_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/test/security/leakcheck"
)

const (
	orgID        = "0A7D42FC5DB9D3360A495FD3@AdobeOrg"
	clientID     = "security-client"
	clientSecret = "security-secret-3e7a9c1b5d2f4a6e"
)

var (
	env  *localenv.Env
	logs *leakcheck.Log
	hist *leakcheck.History

	recMu     sync.Mutex
	recorders []*leakcheck.Recorder
)

// newRecorder gives a manager a recorder the final scan covers.
func newRecorder(base *leakcheck.Recorder) *leakcheck.Recorder {
	recMu.Lock()
	defer recMu.Unlock()
	base.AddSecret(leakcheck.KindClientSecret, clientSecret)
	recorders = append(recorders, base)
	return base
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	logs = leakcheck.CaptureLogs(nil)
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
	if hist, err = leakcheck.WatchSources(env.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	hist.Stop()
	if code != 0 {
		return code
	}
	for _, rec := range recorders {
		if len(rec.Requests()) == 0 {
			continue
		}
		findings, err := leakcheck.Scan(context.Background(), env.Client, rec, logs, hist)
		if err != nil {
			fmt.Fprintln(os.Stderr, "secret scan:", err)
			return 1
		}
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, "secret scan: credential leaked:", f)
		}
		if len(findings) > 0 {
			return 1
		}
		fmt.Println(leakcheck.Summary(rec, logs, hist))
	}
	return 0
}

func specsAvailable() bool {
	if os.Getenv("CI") == "true" {
		return true
	}
	_, err := aepspec.Dir()
	return err == nil
}

// newNamespace makes a namespace with the credentials Secret.
func newNamespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "adobe"},
			StringData: map[string]string{"clientId": clientID, "clientSecret": clientSecret},
		},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
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
			Mappings: []v1alpha1.Mapping{{SourceAttribute: "loyalty.points", DestinationXdmPath: "loyalty.points"}},
		},
	}
}

func create(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	if err := env.Client.Create(context.Background(), cs); err != nil {
		t.Fatalf("create %s: %v", cs.Name, err)
	}
}

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
	t.Fatalf("%s/%s never %s; last status: %+v", cs.Namespace, cs.Name, what, last.Status)
	return nil
}

func isReady(cs *v1alpha1.CapillarySource) bool {
	return meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady) &&
		cs.Status.ObservedGeneration == cs.Generation
}

// deleteAndWait deletes the resource and waits until it is gone.
func deleteAndWait(t *testing.T, cs *v1alpha1.CapillarySource) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(cs), &v1alpha1.CapillarySource{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s was never deleted", cs.Namespace, cs.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
