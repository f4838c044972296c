package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/ims"
)

// Indexes for the platform teams' credentials.
const (
	// clusterCredentialIndex indexes CapillarySources by the
	// ClusterAdobeCredential they name.
	clusterCredentialIndex = "spec.clusterCredentialRef.name"
	// credentialSecretIndex indexes ClusterAdobeCredentials by their Secret.
	credentialSecretIndex = "spec.secretRef.name"
	// maxUsersNamed bounds the sources an InUse message names.
	maxUsersNamed = 10
)

// ClusterAdobeCredentialReconciler reports whether Adobe IMS accepts each
// ClusterAdobeCredential and how many sources use it, and holds one being
// deleted until no source names it.
type ClusterAdobeCredentialReconciler struct {
	client.Client
	// APIReader reads the credential's Secret straight from the API server.
	APIReader client.Reader
	Adobe     AdobeConnector
	// Namespace holds the credentials' Secrets (--cluster-credentials-namespace).
	Namespace string
	// ResyncInterval is how often IMS's answer is checked again (jittered);
	// the token is shared with the sources, so a check mostly costs nothing.
	ResyncInterval time.Duration
}

// Patch on the credential itself is for its finalizer alone: a status write
// cannot carry metadata (the API server keeps the stored metadata on a CRD's
// status update), and the finalizers subresource only covers owner
// references that block deletion.
// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=clusteradobecredentials,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=clusteradobecredentials/status,verbs=update
// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=clusteradobecredentials/finalizers,verbs=update

// Reconcile checks one ClusterAdobeCredential.
func (r *ClusterAdobeCredentialReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// 1: Load the credential.
	cred := &v1alpha1.ClusterAdobeCredential{}
	if err := r.Get(ctx, req.NamespacedName, cred); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := cred.DeepCopy()

	// 2: Who uses it.
	users, err := r.users(ctx, cred.Name)
	if err != nil {
		return ctrl.Result{}, err
	}

	// 3: Being deleted: held while any source names it.
	if !cred.DeletionTimestamp.IsZero() {
		if len(users) > 0 {
			cred.Status.Sources = int32(len(users))
			setCredentialReady(cred, metav1.ConditionFalse, v1alpha1.ReasonInUse, inUseMessage(users))
			return ctrl.Result{}, r.writeStatus(ctx, before, cred)
		}
		if !controllerutil.RemoveFinalizer(cred, v1alpha1.CredentialFinalizer) {
			return ctrl.Result{}, nil
		}
		err := r.Patch(ctx, cred, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	// 4: The finalizer goes on before any source can depend on it.
	if controllerutil.AddFinalizer(cred, v1alpha1.CredentialFinalizer) {
		if err := r.Patch(ctx, cred, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("add finalizer: %w", err))
		}
		before = cred.DeepCopy()
	}
	cred.Status.Sources = int32(len(users))

	// 5: One token check, through the cache the sources share.
	status, reason, message, transient := r.check(ctx, cred)
	setCredentialReady(cred, status, reason, message)
	cred.Status.ObservedGeneration = cred.Generation
	if err := r.writeStatus(ctx, before, cred); err != nil {
		return ctrl.Result{}, err
	}
	if transient != nil {
		return ctrl.Result{}, transient
	}
	return ctrl.Result{RequeueAfter: jitter(r.ResyncInterval, 0.1)}, nil
}

// check reads the Secret and asks IMS for a token; transient is set when
// the answer may change by itself (the workqueue backs off).
func (r *ClusterAdobeCredentialReconciler) check(ctx context.Context, cred *v1alpha1.ClusterAdobeCredential) (metav1.ConditionStatus, string, string, error) {
	ref := cred.Spec.SecretRef
	where := r.Namespace + "/" + ref.Name
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound,
				fmt.Sprintf("Secret %s not found: create it with the keys %s and %s from the Adobe Developer Console", where, ref.ClientIDKey, ref.ClientSecretKey), nil
		}
		return metav1.ConditionUnknown, v1alpha1.ReasonKubernetesAPIError, "Could not read Secret " + where + "; retrying", fmt.Errorf("get secret: %w", err)
	}
	words := secretProblems{key: func(key, problem string) string {
		return fmt.Sprintf("Secret %s %s %s: fix the Secret, or spec.secretRef", where, problem, key)
	}}
	id, err := secretValue(secret, ref.ClientIDKey, words)
	if err == nil {
		var clientSecret string
		if clientSecret, err = secretValue(secret, ref.ClientSecretKey, words); err == nil {
			err = r.Adobe.Connect(Credentials{ClientID: id, ClientSecret: clientSecret, OrgID: cred.Spec.OrgID}).CheckCredentials(ctx)
		}
	}
	if err == nil {
		return metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Adobe IMS issues a token for this credential", nil
	}
	se := classify(v1alpha1.ConditionReady, "issue a token", err)
	if se.terminal {
		msg := se.message
		if ims.IsTerminal(err) {
			msg = fmt.Sprintf("Adobe IMS refused the credential (%s): check clientId and clientSecret in Secret %s against the Adobe Developer Console project", imsCode(err), where)
		}
		return metav1.ConditionFalse, se.reason, msg, nil
	}
	return metav1.ConditionUnknown, se.reason, se.message, err
}

func (r *ClusterAdobeCredentialReconciler) users(ctx context.Context, name string) ([]string, error) {
	var list v1alpha1.CapillarySourceList
	if err := r.List(ctx, &list, client.MatchingFields{clusterCredentialIndex: name}); err != nil {
		return nil, fmt.Errorf("list CapillarySources using ClusterAdobeCredential %s: %w", name, err)
	}
	out := make([]string, 0, len(list.Items))
	for _, cs := range list.Items {
		out = append(out, cs.Namespace+"/"+cs.Name)
	}
	slices.Sort(out)
	return out, nil
}

func inUseMessage(users []string) string {
	named := users[:min(len(users), maxUsersNamed)]
	more := ""
	if n := len(users) - len(named); n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("Deletion waits: used by CapillarySources %s%s; delete them or point them at another credential first", strings.Join(named, ", "), more)
}

func setCredentialReady(cred *v1alpha1.ClusterAdobeCredential, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&cred.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: cred.Generation,
	})
}

// writeStatus writes the status when it changed: a count that did not
// change costs nothing.
func (r *ClusterAdobeCredentialReconciler) writeStatus(ctx context.Context, before, cred *v1alpha1.ClusterAdobeCredential) error {
	if equality.Semantic.DeepEqual(before.Status, cred.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, cred); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // a newer version is on its way to this reconciler
		}
		return fmt.Errorf("write ClusterAdobeCredential status: %w", err)
	}
	return nil
}

// SetupWithManager registers the controller: credentials, the metadata of
// their Secrets, and the sources that name them.
func (r *ClusterAdobeCredentialReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.ResyncInterval <= 0 {
		r.ResyncInterval = DefaultResyncInterval
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.ClusterAdobeCredential{}, credentialSecretIndex,
		func(o client.Object) []string {
			return []string{o.(*v1alpha1.ClusterAdobeCredential).Spec.SecretRef.Name}
		}); err != nil {
		return fmt.Errorf("index ClusterAdobeCredentials by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ClusterAdobeCredential{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionStarted()))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.credentialsForSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&v1alpha1.CapillarySource{}, handler.EnqueueRequestsFromMapFunc(credentialOfSource),
			builder.WithPredicates(credentialRefChanged())).
		Named("clusteradobecredential").
		Complete(r)
}

func (r *ClusterAdobeCredentialReconciler) credentialsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	if secret.GetNamespace() != r.Namespace {
		return nil
	}
	return credentialRequests(ctx, r.Client, secret.GetName())
}

// credentialRequests are the ClusterAdobeCredentials that name the Secret.
func credentialRequests(ctx context.Context, c client.Reader, secretName string) []reconcile.Request {
	var list v1alpha1.ClusterAdobeCredentialList
	if err := c.List(ctx, &list, client.MatchingFields{credentialSecretIndex: secretName}); err != nil {
		logf.FromContext(ctx).Error(err, "list ClusterAdobeCredentials for Secret", "secret", secretName)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
	}
	return reqs
}

func credentialOfSource(_ context.Context, o client.Object) []reconcile.Request {
	if ref := o.(*v1alpha1.CapillarySource).Spec.ClusterCredentialRef; ref != nil {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ref.Name}}}
	}
	return nil
}

// credentialRefChanged passes a source's creation and deletion, and an update
// that changes the credential it names: the only events that change a count.
func credentialRefChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return credentialName(e.ObjectOld) != credentialName(e.ObjectNew)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

func credentialName(o client.Object) string {
	if ref := o.(*v1alpha1.CapillarySource).Spec.ClusterCredentialRef; ref != nil {
		return ref.Name
	}
	return ""
}

// deletionStarted passes the update that sets deletionTimestamp.
func deletionStarted() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
	}
}
