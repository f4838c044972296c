package v1alpha1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
)

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	cp, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func sample(t *testing.T) *v1alpha1.CapillarySource {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", "sources_v1alpha1_capillarysource.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cs := &v1alpha1.CapillarySource{}
	if err := yaml.UnmarshalStrict(b, cs); err != nil {
		t.Fatal(err)
	}
	// Named after the test, with a suffix the API server generates: the
	// objects outlive a run, and `go test -count=N` runs each test again
	// against the same control plane.
	cs.Namespace = "default"
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(prefix) > 52 {
		prefix = strings.TrimLeft(prefix[len(prefix)-52:], "-")
	}
	cs.Name, cs.GenerateName = "", prefix+"-"
	return cs
}

func TestSampleIsAcceptedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	cs := sample(t)
	cs.Spec.SandboxName = ""
	cs.Spec.ConnectionSpecID = ""
	cs.Spec.DeletionPolicy = ""
	cs.Spec.CredentialsSecretRef.ClientIDKey = ""
	cs.Spec.CredentialsSecretRef.ClientSecretKey = ""
	cs.Spec.Target.SchemaVersion = ""
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatalf("create sample: %v", err)
	}
	got := &v1alpha1.CapillarySource{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cs), got); err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.CapillarySourceSpec{
		CredentialsSecretRef: v1alpha1.CredentialsSecretReference{Name: "adobe-credentials", ClientIDKey: "clientId", ClientSecretKey: "clientSecret"},
		OrgID:                "0A7D42FC5DB9D3360A495FD3@AdobeOrg",
		SandboxName:          "prod",
		ConnectionSpecID:     v1alpha1.DefaultConnectionSpecID,
		Target: v1alpha1.Target{
			DatasetID:     cs.Spec.Target.DatasetID,
			SchemaID:      cs.Spec.Target.SchemaID,
			SchemaVersion: "application/vnd.adobe.xed-full+json;version=1",
		},
		Mappings:         cs.Spec.Mappings,
		DeletionPolicy:   v1alpha1.DeletionPolicyDelete,
		ManagementPolicy: v1alpha1.ManagementPolicyFull,
		DriftPolicy:      v1alpha1.DriftPolicyCorrect,
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("defaulted spec (-want +got):\n%s", diff)
	}
	// kstatus reads a resource whose observedGeneration differs from its
	// generation as InProgress: -1 until the controller has seen it.
	if got.Status.ObservedGeneration != -1 {
		t.Errorf("status.observedGeneration = %d, want -1", got.Status.ObservedGeneration)
	}
}

// Each validation rule refuses a bad object at apply time, with a message
// that names the problem.
func TestCreateValidation(t *testing.T) {
	tooMany := make([]v1alpha1.Mapping, 501)
	for i := range tooMany {
		tooMany[i] = v1alpha1.Mapping{SourceAttribute: "a", DestinationXdmPath: fmt.Sprintf("p%d", i)}
	}
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.CapillarySource)
		wantMsg string
	}{
		{"orgId without @AdobeOrg", func(c *v1alpha1.CapillarySource) { c.Spec.OrgID = "0A7D42FC5DB9D3360A495FD3" }, "spec.orgId"},
		{"orgId missing", func(c *v1alpha1.CapillarySource) { c.Spec.OrgID = "" }, "spec.orgId"},
		{"connectionSpecId not a UUID", func(c *v1alpha1.CapillarySource) { c.Spec.ConnectionSpecID = "capillary" }, "spec.connectionSpecId"},
		{"sandbox name with capitals", func(c *v1alpha1.CapillarySource) { c.Spec.SandboxName = "Prod" }, "spec.sandboxName"},
		{"unknown deletionPolicy", func(c *v1alpha1.CapillarySource) { c.Spec.DeletionPolicy = "Retain" }, `spec.deletionPolicy: Unsupported value: "Retain"`},
		{"datasetId missing", func(c *v1alpha1.CapillarySource) { c.Spec.Target.DatasetID = "" }, "spec.target.datasetId"},
		{"schemaId not an XDM $id", func(c *v1alpha1.CapillarySource) { c.Spec.Target.SchemaID = "http://example.com/s" }, "spec.target.schemaId"},
		{"secret name missing", func(c *v1alpha1.CapillarySource) {
			c.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{ClientIDKey: "clientId"}
		}, "spec.credentialsSecretRef.name"},
		{"no credential", func(c *v1alpha1.CapillarySource) {
			c.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
		}, "set exactly one of credentialsSecretRef"},
		{"both credentials", func(c *v1alpha1.CapillarySource) {
			c.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: "shared"}
		}, "set exactly one of credentialsSecretRef"},
		{"cluster credential name not a name", func(c *v1alpha1.CapillarySource) {
			c.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
			c.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: "Shared_Cred"}
		}, "spec.clusterCredentialRef.name"},
		{"unknown managementPolicy", func(c *v1alpha1.CapillarySource) { c.Spec.ManagementPolicy = "ReadOnly" }, `spec.managementPolicy: Unsupported value: "ReadOnly"`},
		{"unknown driftPolicy", func(c *v1alpha1.CapillarySource) { c.Spec.DriftPolicy = "Ignore" }, `spec.driftPolicy: Unsupported value: "Ignore"`},
		{"connection details ConfigMap name not a name", func(c *v1alpha1.CapillarySource) {
			c.Spec.WriteConnectionDetailsTo = &v1alpha1.ConnectionDetailsReference{Name: "Inlet Details"}
		}, "spec.writeConnectionDetailsTo.name"},
		{"same key for id and secret", func(c *v1alpha1.CapillarySource) {
			c.Spec.CredentialsSecretRef.ClientIDKey = "key"
			c.Spec.CredentialsSecretRef.ClientSecretKey = "key"
		}, "clientIdKey and clientSecretKey must name different keys"},
		{"mapping without source", func(c *v1alpha1.CapillarySource) {
			c.Spec.Mappings = []v1alpha1.Mapping{{DestinationXdmPath: "x"}}
		}, "spec.mappings[0].sourceAttribute"},
		{"two mappings to one XDM path", func(c *v1alpha1.CapillarySource) {
			c.Spec.Mappings = []v1alpha1.Mapping{{SourceAttribute: "a", DestinationXdmPath: "x"}, {SourceAttribute: "b", DestinationXdmPath: "x"}}
		}, "spec.mappings[1]: Duplicate value"},
		{"too many mappings", func(c *v1alpha1.CapillarySource) { c.Spec.Mappings = tooMany }, "spec.mappings: Too many"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := sample(t)
			tc.mutate(cs)
			err := k8s.Create(context.Background(), cs)
			assertInvalid(t, err, tc.wantMsg)
		})
	}
}

// Fields that place the Adobe objects cannot change; everything else can.
func TestUpdateValidation(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.CapillarySource)
		wantMsg string // empty: the update is accepted
	}{
		{"target is immutable", func(c *v1alpha1.CapillarySource) { c.Spec.Target.DatasetID = "other" }, "target is immutable"},
		{"orgId is immutable", func(c *v1alpha1.CapillarySource) { c.Spec.OrgID = "1111111111111111@AdobeOrg" }, "orgId is immutable"},
		{"sandboxName is immutable", func(c *v1alpha1.CapillarySource) { c.Spec.SandboxName = "dev" }, "sandboxName is immutable"},
		{"connectionSpecId is immutable", func(c *v1alpha1.CapillarySource) {
			c.Spec.ConnectionSpecID = "11111111-2222-3333-4444-555555555555"
		}, "connectionSpecId is immutable"},
		{"mappings can change", func(c *v1alpha1.CapillarySource) {
			c.Spec.Mappings = append(c.Spec.Mappings, v1alpha1.Mapping{SourceAttribute: "x", DestinationXdmPath: "y"})
		}, ""},
		{"suspend can change", func(c *v1alpha1.CapillarySource) { c.Spec.Suspend = true }, ""},
		{"deletionPolicy can change", func(c *v1alpha1.CapillarySource) { c.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan }, ""},
		{"the Secret can change", func(c *v1alpha1.CapillarySource) { c.Spec.CredentialsSecretRef.Name = "rotated" }, ""},
		{"the Secret can give way to a ClusterAdobeCredential", func(c *v1alpha1.CapillarySource) {
			c.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
			c.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: "shared"}
		}, ""},
		{"the policies can change", func(c *v1alpha1.CapillarySource) {
			c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserveOnly
			c.Spec.DriftPolicy = v1alpha1.DriftPolicyReport
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cs := sample(t)
			if err := k8s.Create(ctx, cs); err != nil {
				t.Fatal(err)
			}
			tc.mutate(cs)
			err := k8s.Update(ctx, cs)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("update refused: %v", err)
				}
				return
			}
			assertInvalid(t, err, tc.wantMsg)
		})
	}
}

func assertInvalid(t *testing.T, err error, wantMsg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want refusal mentioning %q", wantMsg)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Reason != metav1.StatusReasonInvalid {
		t.Fatalf("error = %v, want reason Invalid", err)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("error = %q, want it to mention %q", err.Error(), wantMsg)
	}
}

func credential(t *testing.T) *v1alpha1.ClusterAdobeCredential {
	t.Helper()
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(prefix) > 52 {
		prefix = strings.TrimLeft(prefix[len(prefix)-52:], "-")
	}
	return &v1alpha1.ClusterAdobeCredential{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
		Spec: v1alpha1.ClusterAdobeCredentialSpec{
			SecretRef: v1alpha1.CredentialsSecretReference{Name: "adobe-credentials"},
			OrgID:     "0A7D42FC5DB9D3360A495FD3@AdobeOrg",
		},
	}
}

// A ClusterAdobeCredential is defaulted as documented and its rules refuse
// nonsense at apply.
func TestClusterAdobeCredentialValidation(t *testing.T) {
	ctx := context.Background()
	t.Run("defaults", func(t *testing.T) {
		c := credential(t)
		if err := k8s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		want := v1alpha1.CredentialsSecretReference{Name: "adobe-credentials", ClientIDKey: "clientId", ClientSecretKey: "clientSecret"}
		if diff := cmp.Diff(want, c.Spec.SecretRef); diff != "" {
			t.Errorf("secretRef (-want +got):\n%s", diff)
		}
		if c.Spec.Adoption != v1alpha1.AdoptionRefused {
			t.Errorf("adoption = %q, want Refused by default", c.Spec.Adoption)
		}
		if c.Spec.AllowedNamespaces != nil {
			t.Errorf("allowedNamespaces = %v, want none by default", c.Spec.AllowedNamespaces)
		}
	})
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.ClusterAdobeCredential)
		wantMsg string
	}{
		{"orgId missing", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.OrgID = "" }, "spec.orgId"},
		{"orgId without @AdobeOrg", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.OrgID = "0A7D42FC5DB9D3360A495FD3" }, "spec.orgId"},
		{"Secret name missing", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.SecretRef.Name = "" }, "spec.secretRef.name"},
		{"same key for id and secret", func(c *v1alpha1.ClusterAdobeCredential) {
			c.Spec.SecretRef.ClientIDKey, c.Spec.SecretRef.ClientSecretKey = "key", "key"
		}, "clientIdKey and clientSecretKey must name different keys"},
		{"sandbox with capitals", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.AllowedSandboxes = []string{"Prod"} }, "spec.allowedSandboxes[0]"},
		{"sandbox twice", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.AllowedSandboxes = []string{"prod", "prod"} }, "spec.allowedSandboxes[1]: Duplicate value"},
		{"namespace not a name", func(c *v1alpha1.ClusterAdobeCredential) {
			c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Names: []string{"Team A"}}
		}, "spec.allowedNamespaces.names[0]"},
		{"selector with an unknown operator", func(c *v1alpha1.ClusterAdobeCredential) {
			c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Matches", Values: []string{"a"}}},
			}}
		}, "selector.matchExpressions operators are In, NotIn, Exists and DoesNotExist"},
		{"unknown adoption", func(c *v1alpha1.ClusterAdobeCredential) { c.Spec.Adoption = "Sometimes" }, `spec.adoption: Unsupported value: "Sometimes"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := credential(t)
			tc.mutate(c)
			assertInvalid(t, k8s.Create(ctx, c), tc.wantMsg)
		})
	}
}
