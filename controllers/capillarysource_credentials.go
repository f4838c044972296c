package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=sources.aepoperator.dev,resources=clusteradobecredentials,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// access says what the credentials are for: a delete may use a cluster
// credential whose namespaces no longer include the source's, so a team
// that lost access can still clean up what it made.
type access int

const (
	forReconcile access = iota
	forDelete
)

// credentials reads the Adobe credential the resource names: its own Secret,
// or a ClusterAdobeCredential's, after checking that the credential may be
// used from this namespace, org and sandbox. Secrets are read straight from
// the API server: the manager caches only Secrets' metadata, never their data.
func (r *CapillarySourceReconciler) credentials(ctx context.Context, s *scope, purpose access) (Credentials, error) {
	cs := s.cs
	if ref := cs.Spec.ClusterCredentialRef; ref != nil {
		cred, err := r.clusterCredential(ctx, s, ref.Name, purpose)
		if err != nil {
			return Credentials{}, err
		}
		s.clusterCredential = cred
		s.secretRef = cred.Spec.SecretRef
		s.credentialName = "ClusterAdobeCredential " + cred.Name
		return r.readCredential(ctx, s, types.NamespacedName{Namespace: r.ClusterCredentialsNamespace, Name: cred.Spec.SecretRef.Name},
			secretProblems{
				notFound: fmt.Sprintf("The Secret of ClusterAdobeCredential %s is missing: ask the platform team to check the credential's status", cred.Name),
				key: func(key, problem string) string {
					return fmt.Sprintf("The Secret of ClusterAdobeCredential %s %s %s: ask the platform team to check the credential's status", cred.Name, problem, key)
				},
			})
	}
	ref := cs.Spec.CredentialsSecretRef
	s.secretRef = ref
	where := cs.Namespace + "/" + ref.Name
	s.credentialName = "the credential in Secret " + where
	return r.readCredential(ctx, s, types.NamespacedName{Namespace: cs.Namespace, Name: ref.Name}, secretProblems{
		notFound: fmt.Sprintf("Secret %s not found: create it with the keys %s and %s from the Adobe Developer Console", where, ref.ClientIDKey, ref.ClientSecretKey),
		key: func(key, problem string) string {
			hint := "add it, or point credentialsSecretRef at the key that holds it"
			if problem == problemEmpty {
				hint = "put the value from the Adobe Developer Console in it"
			}
			return fmt.Sprintf("Secret %s %s %s: %s", where, problem, key, hint)
		},
	})
}

// secretProblems words what is wrong with a credential's Secret for the
// source's status: a ClusterAdobeCredential's Secret is never named there.
type secretProblems struct {
	notFound string
	key      func(key, problem string) string
}

const (
	problemMissing = "has no key"
	problemEmpty   = "has an empty"
)

func (r *CapillarySourceReconciler) readCredential(ctx context.Context, s *scope, key types.NamespacedName, words secretProblems) (Credentials, error) {
	ref := s.secretRef
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return Credentials{}, terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretNotFound, words.notFound, err)
		}
		return Credentials{}, kubernetesError(v1alpha1.ConditionCredentialsReady, "read the credential's Secret", fmt.Errorf("get secret: %w", err))
	}
	id, err := secretValue(secret, ref.ClientIDKey, words)
	if err != nil {
		return Credentials{}, err
	}
	clientSecret, err := secretValue(secret, ref.ClientSecretKey, words)
	if err != nil {
		return Credentials{}, err
	}
	s.secret = secret
	return Credentials{ClientID: id, ClientSecret: clientSecret, OrgID: s.cs.Spec.OrgID, SandboxName: s.cs.Spec.SandboxName}, nil
}

func secretValue(secret *corev1.Secret, key string, words secretProblems) (string, error) {
	v, ok := secret.Data[key]
	if !ok {
		return "", terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing, words.key(key, problemMissing), nil)
	}
	s := strings.TrimSpace(string(v))
	if s == "" {
		return "", terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing, words.key(key, problemEmpty), nil)
	}
	return s, nil
}

// clusterCredential reads the ClusterAdobeCredential a source names and
// checks that the source may act with it: from its namespace (not needed to
// delete), in its org, in its sandbox. A refusal makes no Adobe call.
func (r *CapillarySourceReconciler) clusterCredential(ctx context.Context, s *scope, name string, purpose access) (*v1alpha1.ClusterAdobeCredential, error) {
	const cond = v1alpha1.ConditionCredentialsReady
	cs := s.cs
	cred := &v1alpha1.ClusterAdobeCredential{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, cred); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, terminal(cond, v1alpha1.ReasonClusterCredentialNotFound,
				fmt.Sprintf("ClusterAdobeCredential %s not found: ask the platform team for the name of the credential this namespace may use", name), err)
		}
		return nil, kubernetesError(cond, "read ClusterAdobeCredential "+name, fmt.Errorf("get ClusterAdobeCredential: %w", err))
	}
	if cred.Spec.OrgID != cs.Spec.OrgID {
		return nil, terminal(cond, v1alpha1.ReasonOrgNotAllowed,
			fmt.Sprintf("ClusterAdobeCredential %s acts in org %s, not in spec.orgId %s: use a credential for that org", name, cred.Spec.OrgID, cs.Spec.OrgID), nil)
	}
	if purpose == forDelete {
		return cred, nil
	}
	if allowed := cred.Spec.AllowedSandboxes; len(allowed) > 0 && !slices.Contains(allowed, cs.Spec.SandboxName) {
		return nil, terminal(cond, v1alpha1.ReasonSandboxNotAllowed,
			fmt.Sprintf("ClusterAdobeCredential %s may be used in the sandboxes %s, not in %s: ask the platform team to allow it, or use another sandbox", name, strings.Join(allowed, ", "), cs.Spec.SandboxName), nil)
	}
	ok, err := r.namespaceAllowed(ctx, cred, cs.Namespace)
	if err != nil {
		return nil, kubernetesError(cond, "read namespace "+cs.Namespace, err)
	}
	if !ok {
		return nil, terminal(cond, v1alpha1.ReasonNamespaceNotAllowed,
			fmt.Sprintf("ClusterAdobeCredential %s does not allow namespace %s (spec.allowedNamespaces): ask the platform team to allow it", name, cs.Namespace), nil)
	}
	return cred, nil
}

// namespaceAllowed: names and selector are a union; an empty selector
// selects every namespace; neither selects none.
func (r *CapillarySourceReconciler) namespaceAllowed(ctx context.Context, cred *v1alpha1.ClusterAdobeCredential, namespace string) (bool, error) {
	an := cred.Spec.AllowedNamespaces
	if an == nil {
		return false, nil
	}
	if slices.Contains(an.Names, namespace) {
		return true, nil
	}
	if an.Selector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(an.Selector)
	if err != nil {
		return false, nil // refused at apply by the CRD's rule; never selects
	}
	if sel.Empty() {
		return true, nil
	}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("get namespace: %w", err)
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}
