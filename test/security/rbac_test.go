package security_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/chaos/ownership"
)

// grant is one permission of the operator's service account.
type grant struct {
	// Scope is "cluster" (ClusterRoleBinding) or "namespace" (RoleBinding in
	// the operator's own namespace).
	Scope    string
	Group    string
	Resource string
	Verbs    string // sorted, comma-separated
}

// pinned is everything the operator may do, and why. A change to the RBAC
// markers that widens it fails here first.
var pinned = []grant{
	// Read the credentials Secret (straight from the API server) and watch
	// Secrets' metadata to notice rotation. Never write.
	{"cluster", "", "secrets", "get,list,watch"},
	// Reconcile CapillarySources: update for the finalizer, patch to release it.
	{"cluster", "sources.aepoperator.dev", "capillarysources", "get,list,patch,update,watch"},
	{"cluster", "sources.aepoperator.dev", "capillarysources/finalizers", "update"},
	{"cluster", "sources.aepoperator.dev", "capillarysources/status", "get,patch,update"},
	// The connection-details ConfigMaps each source may ask for: the manager
	// caches only those labelled as such, creates, keeps and deletes them.
	{"cluster", "", "configmaps", "create,delete,get,list,patch,update,watch"},
	// ClusterAdobeCredentials: read; their status reports IMS's answer and
	// the count of users; the finalizer holds one in use. Patch is for the
	// finalizer: the API server keeps a CRD's metadata on a status write.
	{"cluster", "sources.aepoperator.dev", "clusteradobecredentials", "get,list,patch,watch"},
	{"cluster", "sources.aepoperator.dev", "clusteradobecredentials/finalizers", "update"},
	{"cluster", "sources.aepoperator.dev", "clusteradobecredentials/status", "update"},
	// Namespaces' labels (metadata only), for allowedNamespaces.selector.
	{"cluster", "", "namespaces", "get,list,watch"},
	// Events about the resources (events.k8s.io, the manager's recorder).
	{"cluster", "events.k8s.io", "events", "create,patch"},
	// Authenticated metrics: check scrapers' tokens and permissions.
	{"cluster", "authentication.k8s.io", "tokenreviews", "create"},
	{"cluster", "authorization.k8s.io", "subjectaccessreviews", "create"},
	// Leader election, in the operator's namespace only.
	{"namespace", "coordination.k8s.io", "leases", "create,delete,get,list,patch,update,watch"},
	{"namespace", "", "events", "create,patch"},
}

const (
	operatorNamespace = "capillary-operator-system"
	serviceAccount    = "controller-manager"
)

// rbacObjects reads config/rbac with the operator's namespace ns filled in
// (kustomize's job in config/default).
func rbacObjects(t *testing.T, ns string) []client.Object {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	decode := serializer.NewCodecFactory(manager.Scheme()).UniversalDeserializer().Decode
	var out []client.Object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
				continue
			}
			o, _, err := decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			obj := o.(client.Object)
			if obj.GetNamespace() == "system" {
				obj.SetNamespace(ns)
			}
			switch b := obj.(type) {
			case *rbacv1.RoleBinding:
				fixSubjects(b.Subjects, ns)
			case *rbacv1.ClusterRoleBinding:
				fixSubjects(b.Subjects, ns)
			}
			out = append(out, obj)
		}
	}
	return out
}

func fixSubjects(ss []rbacv1.Subject, ns string) {
	for i := range ss {
		if ss[i].Namespace == "system" {
			ss[i].Namespace = ns
		}
	}
}

// grantsOf flattens every rule bound to the operator's service account.
func grantsOf(t *testing.T, objs []client.Object) []grant {
	t.Helper()
	clusterRoles, roles := map[string]*rbacv1.ClusterRole{}, map[string]*rbacv1.Role{}
	for _, o := range objs {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			clusterRoles[r.Name] = r
		case *rbacv1.Role:
			roles[r.Name] = r
		}
	}
	isOperator := func(ss []rbacv1.Subject) bool {
		return slices.ContainsFunc(ss, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == serviceAccount && s.Namespace == operatorNamespace
		})
	}
	verbs := map[grant]map[string]bool{}
	addRules := func(scope string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("the operator is granted non-resource URLs %v", r.NonResourceURLs)
			}
			if len(r.ResourceNames) > 0 {
				t.Errorf("resourceNames %v: extend the pin to hold them", r.ResourceNames)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					k := grant{Scope: scope, Group: g, Resource: res}
					if verbs[k] == nil {
						verbs[k] = map[string]bool{}
					}
					for _, v := range r.Verbs {
						verbs[k][v] = true
					}
				}
			}
		}
	}
	for _, o := range objs {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			if !isOperator(b.Subjects) {
				continue
			}
			cr := clusterRoles[b.RoleRef.Name]
			if b.RoleRef.Kind != "ClusterRole" || cr == nil {
				t.Fatalf("ClusterRoleBinding %s refers to %s %s, not in config/rbac", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			addRules("cluster", cr.Rules)
		case *rbacv1.RoleBinding:
			if !isOperator(b.Subjects) {
				continue
			}
			if b.RoleRef.Kind != "Role" || roles[b.RoleRef.Name] == nil || roles[b.RoleRef.Name].Namespace != b.Namespace {
				t.Fatalf("RoleBinding %s must bind a Role of its own namespace, binds %s %s", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			if b.Namespace != operatorNamespace {
				t.Errorf("RoleBinding %s is in %s, not the operator's namespace", b.Name, b.Namespace)
			}
			addRules("namespace", roles[b.RoleRef.Name].Rules)
		}
	}
	var out []grant
	for k, vs := range verbs {
		var list []string
		for v := range vs {
			list = append(list, v)
		}
		slices.Sort(list)
		k.Verbs = strings.Join(list, ",")
		out = append(out, k)
	}
	return out
}

func sortGrants(gs []grant) {
	slices.SortFunc(gs, func(a, b grant) int {
		return strings.Compare(a.Scope+"/"+a.Group+"/"+a.Resource, b.Scope+"/"+b.Group+"/"+b.Resource)
	})
}

// The generated RBAC (config/rbac/role.yaml, from the controllers' markers)
// and the hand-written roles grant exactly the pinned permissions: no write
// on Secrets, no wildcard, nothing cluster-wide beyond need.
func TestRBACIsPinned(t *testing.T) {
	got := grantsOf(t, rbacObjects(t, operatorNamespace))
	want := slices.Clone(pinned)
	sortGrants(got)
	sortGrants(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RBAC of the operator's service account changed (-pinned +config/rbac):\n%s", diff)
	}
	for _, g := range got {
		for _, v := range strings.Split(g.Verbs, ",") {
			if v == "*" || g.Resource == "*" || g.Group == "*" {
				t.Errorf("wildcard in %+v", g)
			}
			if g.Resource == "secrets" && !slices.Contains([]string{"get", "list", "watch"}, v) {
				t.Errorf("write verb %q on Secrets", v)
			}
			if slices.Contains([]string{"escalate", "bind", "impersonate", "deletecollection"}, v) {
				t.Errorf("verb %q in %+v", v, g)
			}
			// The one delete: connection-details ConfigMaps, which the
			// operator deletes only when it owns them (label and owner).
			if g.Scope == "cluster" && v == "delete" && g.Resource != "configmaps" {
				t.Errorf("cluster-wide delete on %s", g.Resource)
			}
		}
	}
}

// The pinned RBAC is also enough: the operator, running as its service
// account with only these roles bound, elects itself leader, takes a
// resource to Ready, records events and deletes it. And the API server
// refuses what the pin leaves out.
func TestRBACIsEnough(t *testing.T) {
	ctx := context.Background()
	// The operator's namespace is generated (a deleted namespace never goes
	// away in envtest), and the cluster-wide roles are removed after the
	// test, so the next run of -count=N starts from nothing.
	opNS := localenvtest.NewNamespace(t, suite.Env.Client, operatorNamespace)
	for _, o := range rbacObjects(t, opNS) {
		if err := suite.Env.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
		if o.GetNamespace() == "" {
			t.Cleanup(func() {
				if err := suite.Env.Client.Delete(context.Background(), o); err != nil {
					t.Errorf("delete %T %s: %v", o, o.GetName(), err)
				}
			})
		}
	}
	user := "system:serviceaccount:" + opNS + ":" + serviceAccount
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + opNS, "system:authenticated"}

	// What the pin leaves out, the API server refuses.
	for _, attrs := range []authorizationv1.ResourceAttributes{
		{Verb: "update", Resource: "secrets", Namespace: "default"},
		{Verb: "create", Resource: "secrets", Namespace: "default"},
		{Verb: "delete", Resource: "secrets", Namespace: "default"},
		{Verb: "list", Resource: "pods"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "default"},
		{Verb: "delete", Group: "sources.aepoperator.dev", Resource: "capillarysources", Namespace: "default"},
		{Verb: "update", Resource: "namespaces"},
		{Verb: "update", Group: "sources.aepoperator.dev", Resource: "clusteradobecredentials"},
		{Verb: "delete", Group: "sources.aepoperator.dev", Resource: "clusteradobecredentials"},
		{Verb: "create", Group: "sources.aepoperator.dev", Resource: "clusteradobecredentials"},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups, ResourceAttributes: &attrs,
		}}
		if err := suite.Env.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed {
			t.Errorf("the operator may %s %s/%s in %q", attrs.Verb, attrs.Group, attrs.Resource, attrs.Namespace)
		}
	}

	cfg := rest.CopyConfig(suite.Env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	// The operator's client really acts as the service account: it is
	// refused what the service account is refused.
	as, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.List(ctx, &corev1.PodList{}); err == nil {
		t.Fatal("the impersonating client may list pods: impersonation is not in effect")
	}

	rec := suite.NewRecorder("", nil)
	o := suite.Env.ManagerOptions()
	o.HTTPClient = rec.Client()
	o.LeaderElect = true
	o.LeaderElectionNamespace = opNS
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	o.ResyncInterval = time.Hour
	o.AdobeQPS, o.AdobeBurst = 1000, 1000
	o.ClusterCredentialsNamespace = opNS
	mgr, err := manager.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with an error: %v", err)
		}
	}()
	select {
	case <-mgr.Elected():
	case err := <-done:
		t.Fatalf("operator stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the operator never became leader with the pinned RBAC")
	}

	// A ClusterAdobeCredential in use, and connection details: the new
	// grants are enough for them too.
	suite.CreateSecret(t, opNS, "shared-adobe", suite.ClientID, suite.ClientSecret)
	ns := suite.NewNamespace(t, "rbac")
	cred := &v1alpha1.ClusterAdobeCredential{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-"},
		Spec: v1alpha1.ClusterAdobeCredentialSpec{
			SecretRef:         v1alpha1.CredentialsSecretReference{Name: "shared-adobe", ClientIDKey: "clientId", ClientSecretKey: "clientSecret"},
			OrgID:             localenvtest.OrgID,
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{ns}},
		},
	}
	if err := suite.Env.Client.Create(ctx, cred); err != nil {
		t.Fatal(err)
	}
	cs := localenvtest.NewSource(ns, "least-privilege", localenvtest.Mappings(localenvtest.PointsMapping), func(cs *v1alpha1.CapillarySource) {
		cs.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
		cs.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: cred.Name}
		cs.Spec.WriteConnectionDetailsTo = &v1alpha1.ConnectionDetailsReference{Name: "inlet"}
	})
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	var details corev1.ConfigMap
	if err := suite.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "inlet"}, &details); err != nil {
		t.Errorf("no connection details with the pinned RBAC: %v", err)
	}
	if err := localenvtest.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := suite.Env.Client.Get(ctx, client.ObjectKeyFromObject(cred), cred); err != nil {
			return false, err
		}
		return cred.Status.Sources == 1 && meta.IsStatusConditionTrue(cred.Status.Conditions, v1alpha1.ConditionReady) &&
			slices.Contains(cred.Finalizers, v1alpha1.CredentialFinalizer), nil
	}); err != nil {
		t.Errorf("the ClusterAdobeCredential is not Ready with its finalizer and one source under the pinned RBAC: %v (status %+v)", err, cred.Status)
	}
	var evs eventsv1.EventList
	if err := suite.Env.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) == 0 {
		t.Error("no event recorded: the operator could not write events with the pinned RBAC")
	}
	suite.DeleteAndWait(t, got)
	if left := ownership.NewIndex(suite.Env.Emulator.Objects()).Owners(); slices.Contains(left, got.UID) {
		t.Error("the resource was released but its Adobe objects were not deleted")
	}
	if err := suite.Env.Client.Delete(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if err := localenvtest.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(suite.Env.Client.Get(ctx, client.ObjectKeyFromObject(cred), cred)), nil
	}); err != nil {
		t.Errorf("the unused ClusterAdobeCredential was not released under the pinned RBAC: %v", err)
	}
	fmt.Printf("RBAC: %d pinned grants; as %s the operator led, reconciled to Ready, recorded %d events and cleaned up\n", len(pinned), user, len(evs.Items))
}
