package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// platform is a platform team's set-up: a credentials namespace holding the
// Secret of a credential of its own (its client ID tells its calls apart in
// the emulator's counts), and an operator that reads it from there.
type platform struct {
	namespace, secretName, clientID, clientSecret string
	emu                                           *emulator.Emulator
}

func newPlatform(t *testing.T, emu *emulator.Emulator, mutate ...func(*manager.Options)) *platform {
	t.Helper()
	p := &platform{
		namespace:    localenvtest.NewNamespace(t, suite.Env.Client, "platform"),
		secretName:   "shared-adobe-credential",
		clientID:     "platform-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())),
		clientSecret: "platform-secret-5e0c1d2f3a4b",
		emu:          emu,
	}
	emu.AddCredential(p.clientID, p.clientSecret)
	suite.CreateSecret(t, p.namespace, p.secretName, p.clientID, p.clientSecret)
	opts := append([]func(*manager.Options){fastRetries, atEmulator(emu), func(o *manager.Options) {
		o.ClusterCredentialsNamespace = p.namespace
	}}, mutate...)
	startOperator(t, opts...)
	return p
}

// credential makes a ClusterAdobeCredential for the platform's Secret.
func (p *platform) credential(t *testing.T, mutate func(*v1alpha1.ClusterAdobeCredential)) *v1alpha1.ClusterAdobeCredential {
	t.Helper()
	c := &v1alpha1.ClusterAdobeCredential{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "shared-"},
		Spec: v1alpha1.ClusterAdobeCredentialSpec{
			SecretRef: v1alpha1.CredentialsSecretReference{Name: p.secretName, ClientIDKey: "clientId", ClientSecretKey: "clientSecret"},
			OrgID:     localenvtest.OrgID,
		},
	}
	mutate(c)
	if err := suite.Env.Client.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Sources are gone with their namespaces' tests; let the credential go.
		_ = suite.Env.Client.Delete(context.Background(), c)
	})
	return c
}

// writes counts the calls with the platform's credential that change Adobe.
func (p *platform) writes() int {
	n := 0
	for k, v := range p.emu.Calls() {
		if k.ClientID == p.clientID && isWrite(k.Operation) {
			n += v
		}
	}
	return n
}

func isWrite(op string) bool {
	for _, suffix := range []string{".create", ".patch", ".update", ".delete", ".action"} {
		if strings.HasSuffix(op, suffix) && op != emulator.OpIMSToken {
			return true
		}
	}
	return false
}

func waitCredential(t *testing.T, c *v1alpha1.ClusterAdobeCredential, what string, cond func(*v1alpha1.ClusterAdobeCredential) bool) *v1alpha1.ClusterAdobeCredential {
	t.Helper()
	cur := &v1alpha1.ClusterAdobeCredential{}
	localenvtest.WaitUntil(t, 30*time.Second, "ClusterAdobeCredential "+c.Name+" "+what, func(ctx context.Context) (bool, error) {
		if err := suite.Env.Client.Get(ctx, client.ObjectKeyFromObject(c), cur); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(cur), nil
	})
	return cur
}

func credentialReady(c *v1alpha1.ClusterAdobeCredential) *metav1.Condition {
	return meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
}

// usesCredential makes a NewSource option that names the ClusterAdobeCredential.
func usesCredential(name string) func(*v1alpha1.CapillarySource) {
	return func(cs *v1alpha1.CapillarySource) {
		cs.Spec.CredentialsSecretRef = v1alpha1.CredentialsSecretReference{}
		cs.Spec.ClusterCredentialRef = &v1alpha1.ClusterCredentialReference{Name: name}
	}
}

func labelNamespace(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	n := &corev1.Namespace{}
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Name: ns}, n); err != nil {
		t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	for k, v := range labels {
		n.Labels[k] = v
	}
	if err := suite.Env.Client.Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

// One ClusterAdobeCredential serves the namespaces it allows, by name and by
// label; a third namespace is refused without an Adobe call; its Secret's
// rotation reaches every user; no source's status names the Secret.
func TestClusterCredentialSharedAcrossNamespaces(t *testing.T) {
	emu := startEmulator(t, func(o *emulator.Options) { o.ConnectionAuth = emulator.ConnectionAuthOAuth2 })
	p := newPlatform(t, emu)
	byName, byLabel, refused := newNamespace(t), newNamespace(t), newNamespace(t)
	team := "team-" + strings.ToLower(fmt.Sprint(time.Now().UnixNano()))
	labelNamespace(t, byLabel, map[string]string{"capillary.example/team": team})
	cred := p.credential(t, func(c *v1alpha1.ClusterAdobeCredential) {
		c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{
			Names:    []string{byName},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"capillary.example/team": team}},
		}
	})

	a := localenvtest.NewSource(byName, "a", usesCredential(cred.Name))
	b := localenvtest.NewSource(byLabel, "b", usesCredential(cred.Name))
	c := localenvtest.NewSource(refused, "c", usesCredential(cred.Name))
	for _, cs := range []*v1alpha1.CapillarySource{a, b, c} {
		suite.Create(t, cs)
	}
	gotA := suite.WaitFor(t, a, "Ready", localenvtest.IsReady)
	gotB := suite.WaitFor(t, b, "Ready", localenvtest.IsReady)
	gotC := suite.WaitFor(t, c, "refused", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonNamespaceNotAllowed))
	if gotC.Status.SourceConnectionID != "" || len(connectionsOf(emu, emulator.KindSourceConnection, gotC)) != 0 {
		t.Errorf("the refused namespace's source reached Adobe: %+v", gotC.Status)
	}
	if got := waitCredential(t, cred, "Ready with three users", func(c *v1alpha1.ClusterAdobeCredential) bool {
		r := credentialReady(c)
		return r != nil && r.Status == metav1.ConditionTrue && c.Status.Sources == 3
	}); !slices.Contains(got.Finalizers, v1alpha1.CredentialFinalizer) {
		t.Errorf("finalizers %v, want %s", got.Finalizers, v1alpha1.CredentialFinalizer)
	}
	// The Secret stays the platform team's: no source's status names it.
	for _, cs := range []*v1alpha1.CapillarySource{gotA, gotB, gotC} {
		b, _ := json.Marshal(cs.Status)
		for _, leak := range []string{p.secretName, p.namespace, p.clientSecret} {
			if strings.Contains(string(b), leak) {
				t.Errorf("status of %s/%s names %q: %s", cs.Namespace, cs.Name, leak, b)
			}
		}
	}
	fmt.Printf("shared credential: %d IMS tokens for 2 sources in 2 namespaces and the credential's own check\n",
		emu.Calls().OpStatus(emulator.OpIMSToken, 200))

	// Relabelling the namespace takes its access away: the source stalls
	// (the namespace watch brings it back to the reconciler).
	labelNamespace(t, byLabel, map[string]string{"capillary.example/team": "another"})
	suite.WaitFor(t, b, "refused after relabel", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonNamespaceNotAllowed))
	labelNamespace(t, byLabel, map[string]string{"capillary.example/team": team})
	suite.WaitFor(t, b, "Ready again", func(cs *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(cs) && !localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonNamespaceNotAllowed)(cs)
	})

	// Rotation: the Developer Console's second secret goes into the shared
	// Secret; both users send it to their base connections.
	const rotated = "platform-secret-rotated-9a8b7c"
	emu.AddCredential(p.clientID, rotated)
	secret := &corev1.Secret{}
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: p.namespace, Name: p.secretName}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["clientSecret"] = []byte(rotated)
	if err := suite.Env.Client.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	for _, cs := range []*v1alpha1.CapillarySource{a, b} {
		got := suite.WaitFor(t, cs, "rotated", func(cs *v1alpha1.CapillarySource) bool {
			return cs.Status.BaseConnectionSecretVersion == secret.ResourceVersion
		})
		params, ok := emu.ConnectionParams(got.Status.BaseConnectionID)
		if n := len(connectionsOf(emu, emulator.KindConnection, got)); n != 1 || !ok || params["clientSecret"] != rotated {
			t.Errorf("%s: %d base connections, want 1 holding the rotated secret", got.Name, n)
		}
	}

	// A namespace that lost access can still delete what it made.
	labelNamespace(t, byLabel, map[string]string{"capillary.example/team": "another"})
	lost := suite.WaitFor(t, b, "refused again", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonNamespaceNotAllowed))
	suite.DeleteAndWait(t, lost)
	for _, kind := range []emulator.Kind{emulator.KindFlow, emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindConnection} {
		if n := len(connectionsOf(emu, kind, lost)); n != 0 {
			t.Errorf("%d %s left in Adobe after a source without access was deleted", n, kind)
		}
	}
}

// A ClusterAdobeCredential in use is held, with a message naming its users,
// until the last of them is gone; a source whose credential is missing
// stalls without an Adobe call.
func TestClusterCredentialDeletionHeldWhileInUse(t *testing.T) {
	p := newPlatform(t, suite.Env.Emulator)
	ns := newNamespace(t)
	cred := p.credential(t, func(c *v1alpha1.ClusterAdobeCredential) {
		c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{}} // every namespace
	})
	cs := localenvtest.NewSource(ns, "user", usesCredential(cred.Name))
	suite.Create(t, cs)
	got := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	waitCredential(t, cred, "counting its user", func(c *v1alpha1.ClusterAdobeCredential) bool { return c.Status.Sources == 1 })

	if err := suite.Env.Client.Delete(context.Background(), cred); err != nil {
		t.Fatal(err)
	}
	held := waitCredential(t, cred, "held in use", func(c *v1alpha1.ClusterAdobeCredential) bool {
		r := credentialReady(c)
		return r != nil && r.Reason == v1alpha1.ReasonInUse
	})
	if msg := credentialReady(held).Message; !strings.Contains(msg, ns+"/user") {
		t.Errorf("InUse message %q does not name the user %s/user", msg, ns)
	}
	// Deleting the user still cleans up in Adobe with the credential being deleted.
	suite.DeleteAndWait(t, got)
	if n := len(objectsOf(emulator.KindFlow, got)); n != 0 {
		t.Errorf("%d dataflows left in Adobe after the user was deleted", n)
	}
	localenvtest.WaitUntil(t, 30*time.Second, "the credential released", func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(suite.Env.Client.Get(ctx, client.ObjectKeyFromObject(cred), &v1alpha1.ClusterAdobeCredential{})), nil
	})

	// A source naming a credential that does not exist stalls, and says so.
	before := p.emu.Calls().Client(p.clientID)
	orphan := localenvtest.NewSource(ns, "orphan", usesCredential(cred.Name))
	suite.Create(t, orphan)
	suite.WaitFor(t, orphan, "stalled", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonClusterCredentialNotFound))
	if n := p.emu.Calls().Client(p.clientID) - before; n != 0 {
		t.Errorf("%d Adobe calls for a source without its credential, want 0", n)
	}
}

// Through a shared credential a tenant cannot adopt or observe another
// tenant's dataflow; adoption is refused unless the credential allows it.
func TestTenantCannotReachAnothersDataflow(t *testing.T) {
	p := newPlatform(t, suite.Env.Emulator)
	tenantA, tenantB := newNamespace(t), newNamespace(t)
	open := p.credential(t, func(c *v1alpha1.ClusterAdobeCredential) {
		c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Names: []string{tenantA, tenantB}}
		c.Spec.Adoption = v1alpha1.AdoptionAllowed
	})
	closed := p.credential(t, func(c *v1alpha1.ClusterAdobeCredential) {
		c.Spec.AllowedNamespaces = &v1alpha1.AllowedNamespaces{Names: []string{tenantA, tenantB}}
	})
	a := localenvtest.NewSource(tenantA, "a", usesCredential(open.Name))
	suite.Create(t, a)
	gotA := suite.WaitFor(t, a, "Ready", localenvtest.IsReady)
	writes := p.writes()

	adoptA := func(policy v1alpha1.ManagementPolicy, cred string) func(*v1alpha1.CapillarySource) {
		return func(cs *v1alpha1.CapillarySource) {
			usesCredential(cred)(cs)
			cs.Spec.ManagementPolicy = policy
			cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: gotA.Status.DataflowID}
		}
	}
	for _, tc := range []struct {
		name   string
		policy v1alpha1.ManagementPolicy
		cred   string
	}{
		{"adopt", v1alpha1.ManagementPolicyFull, open.Name},
		{"observe", v1alpha1.ManagementPolicyObserveOnly, open.Name},
		{"adopt-closed", v1alpha1.ManagementPolicyFull, closed.Name},
		{"observe-closed", v1alpha1.ManagementPolicyObserveOnly, closed.Name},
	} {
		cs := localenvtest.NewSource(tenantB, tc.name, adoptA(tc.policy, tc.cred))
		suite.Create(t, cs)
		got := suite.WaitFor(t, cs, "refused", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonAdoptionRefused))
		if got.Status.DataflowID != "" || got.Status.InletURL != "" {
			t.Errorf("%s: tenant B sees tenant A's dataflow: %+v", tc.name, got.Status)
		}
	}
	if n := p.writes() - writes; n != 0 {
		t.Errorf("%d Adobe writes while tenant B tried tenant A's dataflow, want 0", n)
	}
	if cur := suite.Get(t, gotA); cur.Status.DataflowID != gotA.Status.DataflowID || !localenvtest.IsReady(cur) {
		t.Errorf("tenant A's source changed: %+v", cur.Status)
	}

	// A dataflow no source owns (made by hand): only a credential that
	// allows adoption may take it over.
	orphan := localenvtest.NewSource(tenantA, "orphan", usesCredential(open.Name))
	orphan.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	suite.Create(t, orphan)
	made := suite.WaitFor(t, orphan, "Ready", localenvtest.IsReady)
	suite.DeleteAndWait(t, made)
	suite.Env.Emulator.Modify(emulator.KindFlow, made.Status.DataflowID, func(doc map[string]any) { doc["name"] = "made by hand" })
	suite.Env.Emulator.Modify(emulator.KindSourceConnection, made.Status.SourceConnectionID, func(doc map[string]any) { doc["name"] = "made by hand" })
	byHand := func(cred string) func(*v1alpha1.CapillarySource) {
		return func(cs *v1alpha1.CapillarySource) {
			usesCredential(cred)(cs)
			cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: made.Status.DataflowID}
		}
	}
	refused := localenvtest.NewSource(tenantB, "by-hand-closed", byHand(closed.Name))
	suite.Create(t, refused)
	suite.WaitFor(t, refused, "refused", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonAdoptionRefused))
	allowed := localenvtest.NewSource(tenantB, "by-hand-open", byHand(open.Name))
	suite.Create(t, allowed)
	if got := suite.WaitFor(t, allowed, "Ready", localenvtest.IsReady); got.Status.DataflowID != made.Status.DataflowID {
		t.Errorf("adopted %s, want the dataflow made by hand %s", got.Status.DataflowID, made.Status.DataflowID)
	}
}

// ObserveOnly adopts with zero Adobe writes and reports what it sees;
// without a dataflow named it manages nothing; the switch to Full takes
// ownership; deleting an ObserveOnly source leaves Adobe alone.
func TestObserveOnly(t *testing.T) {
	p := newPlatform(t, suite.Env.Emulator)
	ns := newNamespace(t)
	suite.CreateSecret(t, ns, "observer", p.clientID, p.clientSecret)
	withObserver := func(cs *v1alpha1.CapillarySource) { cs.Spec.CredentialsSecretRef.Name = "observer" }

	// A dataflow made by someone else: an Orphan source, deleted.
	orig := localenvtest.NewSource(ns, "original")
	orig.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	suite.Create(t, orig)
	made := suite.WaitFor(t, orig, "Ready", localenvtest.IsReady)
	suite.DeleteAndWait(t, made)

	nothing := localenvtest.NewSource(ns, "nothing", withObserver, func(cs *v1alpha1.CapillarySource) {
		cs.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserveOnly
	})
	suite.Create(t, nothing)
	suite.WaitFor(t, nothing, "managing nothing", func(cs *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(cs) && localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonNothingManaged)(cs)
	})

	obs := localenvtest.NewSource(ns, "observer", withObserver, func(cs *v1alpha1.CapillarySource) {
		cs.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserveOnly
		cs.Annotations = map[string]string{v1alpha1.AdoptDataflowAnnotation: made.Status.DataflowID}
	})
	suite.Create(t, obs)
	got := suite.WaitFor(t, obs, "observing", func(cs *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(cs) && localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonObserving)(cs)
	})
	if got.Status.DataflowID != made.Status.DataflowID || got.Status.InletURL != made.Status.InletURL ||
		got.Status.SourceConnectionID != made.Status.SourceConnectionID || got.Status.DataflowState != "enabled" {
		t.Errorf("observed status %+v, want the IDs, inlet and state of %+v", got.Status, made.Status)
	}
	if n := p.writes(); n != 0 {
		t.Fatalf("%d Adobe writes while observing, want 0 (%v)", n, p.emu.Calls().List())
	}

	// Someone disables the dataflow in Adobe: reported, not corrected.
	suite.Env.Emulator.Modify(emulator.KindFlow, made.Status.DataflowID, func(doc map[string]any) { doc["state"] = "disabled" })
	requestReconcile(t, obs, "look")
	drifted := suite.WaitFor(t, obs, "drift reported", func(cs *v1alpha1.CapillarySource) bool {
		return cs.Status.LastHandledReconcileAt == "look" && meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionDrifted)
	})
	if msg := meta.FindStatusCondition(drifted.Status.Conditions, v1alpha1.ConditionDrifted).Message; !strings.Contains(msg, "dataflow state is disabled") {
		t.Errorf("Drifted says %q, want the state named", msg)
	}
	if drifted.Status.DataflowState != "disabled" || !localenvtest.IsReady(drifted) {
		t.Errorf("observed state %q, Ready %v: want disabled, and Ready unchanged", drifted.Status.DataflowState, localenvtest.IsReady(drifted))
	}
	if n := p.writes(); n != 0 {
		t.Fatalf("%d Adobe writes while observing drift, want 0", n)
	}

	// Full takes ownership as adoption does: the drift is corrected.
	suite.Update(t, obs, func(cs *v1alpha1.CapillarySource) { cs.Spec.ManagementPolicy = v1alpha1.ManagementPolicyFull })
	owned := suite.WaitFor(t, obs, "Ready under Full", func(cs *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(cs) && localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonSucceeded)(cs)
	})
	if owned.Status.DataflowID != made.Status.DataflowID || flowState(t, owned) != "enabled" {
		t.Errorf("after the switch to Full: dataflow %s state %s, want %s enabled", owned.Status.DataflowID, flowState(t, owned), made.Status.DataflowID)
	}
	if meta.FindStatusCondition(owned.Status.Conditions, v1alpha1.ConditionDrifted) != nil {
		t.Error("Drifted is still reported under Full with driftPolicy Correct")
	}

	// Back to ObserveOnly: every write stops, the IDs stay, and deleting
	// leaves Adobe alone whatever deletionPolicy says.
	suite.Update(t, obs, func(cs *v1alpha1.CapillarySource) { cs.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserveOnly })
	back := suite.WaitFor(t, obs, "observing again", localenvtest.ReasonIs(v1alpha1.ConditionReady, v1alpha1.ReasonObserving))
	if back.Status.DataflowID != made.Status.DataflowID {
		t.Errorf("IDs lost on the switch to ObserveOnly: %+v", back.Status)
	}
	writes := p.writes()
	suite.DeleteAndWait(t, back)
	if n := p.writes() - writes; n != 0 {
		t.Errorf("%d Adobe writes deleting an ObserveOnly source, want 0", n)
	}
	if _, ok := suite.Env.Emulator.Objects().Find(emulator.KindFlow, made.Status.DataflowID); !ok {
		t.Error("deleting an ObserveOnly source deleted the dataflow in Adobe")
	}
	var evs eventsv1.EventList
	if err := suite.Env.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs.Items, func(e eventsv1.Event) bool {
		return e.Regarding.Name == obs.Name && e.Reason == "Orphaned" && strings.Contains(e.Note, "ObserveOnly")
	}) {
		t.Error("no event says ObserveOnly left the Adobe objects in place")
	}
}

// driftPolicy Report lists the differences, writes nothing and leaves Ready
// alone; switching to Correct puts Adobe back.
func TestDriftReported(t *testing.T) {
	p := newPlatform(t, suite.Env.Emulator)
	ns := newNamespace(t)
	suite.CreateSecret(t, ns, "reporter", p.clientID, p.clientSecret)
	cs := localenvtest.NewSource(ns, "reported", func(cs *v1alpha1.CapillarySource) {
		cs.Spec.CredentialsSecretRef.Name = "reporter"
		cs.Spec.DriftPolicy = v1alpha1.DriftPolicyReport
	})
	suite.Create(t, cs)
	first := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	if c := meta.FindStatusCondition(first.Status.Conditions, v1alpha1.ConditionDrifted); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Drifted = %+v, want False on a fresh source", c)
	}
	writes := p.writes()

	suite.Env.Emulator.Modify(emulator.KindFlow, first.Status.DataflowID, func(doc map[string]any) {
		doc["state"] = "disabled"
		doc["name"] = "renamed by hand"
	})
	requestReconcile(t, cs, "look")
	drifted := suite.WaitFor(t, cs, "drift reported", func(cs *v1alpha1.CapillarySource) bool {
		return cs.Status.LastHandledReconcileAt == "look" && meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionDrifted)
	})
	msg := meta.FindStatusCondition(drifted.Status.Conditions, v1alpha1.ConditionDrifted).Message
	for _, want := range []string{`dataflow name is "renamed by hand"`, "dataflow state is disabled, declared enabled"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Drifted says %q, want it to name %q", msg, want)
		}
	}
	if !localenvtest.IsReady(drifted) {
		t.Error("Drifted changed Ready")
	}
	if n := p.writes() - writes; n != 0 {
		t.Errorf("%d Adobe writes under driftPolicy Report, want 0", n)
	}
	if s := flowState(t, drifted); s != "disabled" {
		t.Errorf("flow state %s, want left disabled", s)
	}
	// Another look at the same drift: no second event.
	requestReconcile(t, cs, "look-again")
	suite.WaitFor(t, cs, "looked again", func(cs *v1alpha1.CapillarySource) bool { return cs.Status.LastHandledReconcileAt == "look-again" })
	if n := eventsOf(t, drifted, v1alpha1.ReasonDriftDetected); n != 1 {
		t.Errorf("%d DriftDetected events for one difference, want 1", n)
	}

	suite.Update(t, cs, func(cs *v1alpha1.CapillarySource) { cs.Spec.DriftPolicy = v1alpha1.DriftPolicyCorrect })
	fixed := suite.WaitFor(t, cs, "corrected", func(cs *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(cs) && meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionDrifted) == nil
	})
	if s := flowState(t, fixed); s != "enabled" {
		t.Errorf("flow state %s after the switch to Correct, want enabled", s)
	}
	if n := objectsOf(emulator.KindFlow, fixed); len(n) != 1 || n[0].Name() == "renamed by hand" {
		t.Errorf("flow name not restored after the switch to Correct")
	}
}

// The connection-details ConfigMap is written, follows the inlet, comes
// back when deleted, never overwrites someone else's ConfigMap, and goes
// with the source.
func TestConnectionDetails(t *testing.T) {
	startOperator(t, fastRetries)
	ns := newNamespace(t)
	cs := localenvtest.NewSource(ns, "details", func(cs *v1alpha1.CapillarySource) {
		cs.Spec.WriteConnectionDetailsTo = &v1alpha1.ConnectionDetailsReference{Name: "capillary-inlet"}
	})
	suite.Create(t, cs)
	first := suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	cm := waitDetails(t, ns, "capillary-inlet", first.Status.InletURL)
	want := map[string]string{
		"inletUrl": first.Status.InletURL, "dataflowId": first.Status.DataflowID, "sourceConnectionId": first.Status.SourceConnectionID,
		"orgId": first.Spec.OrgID, "sandboxName": first.Spec.SandboxName, "inletAuthentication": string(first.Status.InletAuthentication),
	}
	for k, v := range want {
		if cm.Data[k] != v || v == "" {
			t.Errorf("connection details %s = %q, want %q", k, cm.Data[k], v)
		}
	}
	if len(cm.Data) != len(want) {
		t.Errorf("connection details hold %d keys, want exactly %d: %v", len(cm.Data), len(want), cm.Data)
	}
	if !metav1.IsControlledBy(cm, first) || cm.Labels[v1alpha1.ConnectionDetailsSourceLabel] != first.Name {
		t.Errorf("ConfigMap not owned and labelled: owners %v labels %v", cm.OwnerReferences, cm.Labels)
	}
	hash := cm.Annotations[v1alpha1.ConnectionDetailsHashAnnotation]
	if hash == "" {
		t.Error("no content hash annotation")
	}

	// A new dataflow (deleted in Adobe, made again) has a new inlet.
	suite.Env.Emulator.Vanish(emulator.KindFlow, first.Status.DataflowID)
	requestReconcile(t, cs, "new-inlet")
	moved := suite.WaitFor(t, cs, "Ready with a new dataflow", func(c *v1alpha1.CapillarySource) bool {
		return localenvtest.IsReady(c) && c.Status.DataflowID != first.Status.DataflowID && c.Status.LastHandledReconcileAt == "new-inlet"
	})
	cm = waitDetails(t, ns, "capillary-inlet", moved.Status.InletURL)
	if cm.Data["dataflowId"] != moved.Status.DataflowID || cm.Annotations[v1alpha1.ConnectionDetailsHashAnnotation] == hash {
		t.Errorf("connection details not updated with the new dataflow: %v %v", cm.Data, cm.Annotations)
	}

	// Deleted: made again.
	if err := suite.Env.Client.Delete(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	localenvtest.WaitUntil(t, 30*time.Second, "the ConfigMap recreated", func(ctx context.Context) (bool, error) {
		again := &corev1.ConfigMap{}
		err := suite.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "capillary-inlet"}, again)
		return err == nil && again.UID != cm.UID && again.Data["inletUrl"] == moved.Status.InletURL, nil
	})

	// Someone else's ConfigMap is never overwritten; ours under the old name goes.
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config"}, Data: map[string]string{"keep": "me"}}
	if err := suite.Env.Client.Create(context.Background(), theirs); err != nil {
		t.Fatal(err)
	}
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.WriteConnectionDetailsTo.Name = "app-config" })
	suite.WaitFor(t, cs, "refused", localenvtest.ReasonIs(v1alpha1.ConditionStalled, v1alpha1.ReasonConnectionDetailsConflict))
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(theirs), theirs); err != nil || theirs.Data["keep"] != "me" || len(theirs.Data) != 1 {
		t.Errorf("someone else's ConfigMap changed: %v %v", theirs.Data, err)
	}
	localenvtest.WaitUntil(t, 30*time.Second, "the old connection details gone", func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(suite.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "capillary-inlet"}, &corev1.ConfigMap{})), nil
	})

	// Back to a name of its own, then deleted with the source (envtest runs
	// no garbage collector: the operator deletes it itself).
	suite.Update(t, cs, func(c *v1alpha1.CapillarySource) { c.Spec.WriteConnectionDetailsTo.Name = "capillary-inlet" })
	suite.WaitFor(t, cs, "Ready", localenvtest.IsReady)
	waitDetails(t, ns, "capillary-inlet", moved.Status.InletURL)
	suite.DeleteAndWait(t, moved)
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "capillary-inlet"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("connection details outlived the source: %v", err)
	}
	if err := suite.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(theirs), theirs); err != nil {
		t.Errorf("someone else's ConfigMap was deleted with the source: %v", err)
	}
}

func waitDetails(t *testing.T, ns, name, inlet string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	localenvtest.WaitUntil(t, 30*time.Second, "connection details with inlet "+inlet, func(ctx context.Context) (bool, error) {
		if err := suite.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cm.Data["inletUrl"] == inlet, nil
	})
	return cm
}
