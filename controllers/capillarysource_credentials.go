package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// credentials reads the Adobe credential from the Secret the resource names.
// The Secret is read straight from the API server: the manager caches only
// Secrets' metadata, never their data.
func (r *CapillarySourceReconciler) credentials(ctx context.Context, s *scope) (Credentials, error) {
	cs := s.cs
	ref := cs.Spec.CredentialsSecretRef
	where := cs.Namespace + "/" + ref.Name
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cs.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return Credentials{}, terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretNotFound,
				fmt.Sprintf("Secret %s not found: create it with the keys %s and %s from the Adobe Developer Console", where, ref.ClientIDKey, ref.ClientSecretKey), err)
		}
		return Credentials{}, kubernetesError(v1alpha1.ConditionCredentialsReady, "read Secret "+where, fmt.Errorf("get secret: %w", err))
	}
	id, err := secretValue(secret, where, ref.ClientIDKey)
	if err != nil {
		return Credentials{}, err
	}
	clientSecret, err := secretValue(secret, where, ref.ClientSecretKey)
	if err != nil {
		return Credentials{}, err
	}
	s.secret = secret
	return Credentials{ClientID: id, ClientSecret: clientSecret, OrgID: cs.Spec.OrgID, SandboxName: cs.Spec.SandboxName}, nil
}

func secretValue(secret *corev1.Secret, where, key string) (string, error) {
	v, ok := secret.Data[key]
	if !ok {
		return "", terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing,
			fmt.Sprintf("Secret %s has no key %s: add it, or point credentialsSecretRef at the key that holds it", where, key), nil)
	}
	s := strings.TrimSpace(string(v))
	if s == "" {
		return "", terminal(v1alpha1.ConditionCredentialsReady, v1alpha1.ReasonSecretKeyMissing,
			fmt.Sprintf("Secret %s has an empty %s: put the value from the Adobe Developer Console in it", where, key), nil)
	}
	return s, nil
}
