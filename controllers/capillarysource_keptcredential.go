package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unique"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// Deleting a namespace deletes its Secrets at once, often before the
// sources that name them are reconciled for deletion. So that their Adobe
// objects can still be deleted, the reconciler keeps, per source and in
// memory only, the access token of the last pass whose credential IMS
// accepted, and uses it for deletion only. Nothing is written anywhere: a
// restart loses it, and then deletion is DeleteBlocked with its way out.

// keptCredential is what a source's deletion may use once its Secret is gone.
type keptCredential struct {
	creds Credentials // without the client secret
	token string
}

// tokenKeeper is an AdobeConnector that can hand out the access token it
// holds for a credential (from its cache, right after a successful check),
// and connect with such a token instead of a client secret.
type tokenKeeper interface {
	accessToken(ctx context.Context, creds Credentials) (string, error)
	connectWithToken(creds Credentials, token string) Adobe
}

// keepToken records the token of the credential the source just used.
func (r *CapillarySourceReconciler) keepToken(ctx context.Context, s *scope, creds Credentials) {
	k, ok := r.Adobe.(tokenKeeper)
	if !ok {
		return
	}
	token, err := k.accessToken(ctx, creds)
	if err != nil || token == "" {
		return
	}
	// One copy of a credential's strings for all the sources that use it,
	// not one per source and pass (a pass decodes the Secret anew).
	kept := keptCredential{token: unique.Make(token).Value(), creds: Credentials{
		ClientID:    unique.Make(creds.ClientID).Value(),
		OrgID:       unique.Make(creds.OrgID).Value(),
		SandboxName: unique.Make(creds.SandboxName).Value(),
	}}
	key := client.ObjectKeyFromObject(s.cs)
	if m := r.memoOf(key, s.cs.UID); m.kept == nil || *m.kept != kept {
		m.kept = &kept
		r.remember(key, m)
	}
}

// connectForDelete connects as connect does; when the Secret is gone, with
// the token kept from the last good pass.
func (r *CapillarySourceReconciler) connectForDelete(ctx context.Context, s *scope) error {
	err := r.connect(ctx, s, forDelete)
	var se *stepError
	if err == nil || !errors.As(err, &se) || se.reason != v1alpha1.ReasonSecretNotFound {
		return err
	}
	kept := r.memoOf(client.ObjectKeyFromObject(s.cs), s.cs.UID).kept
	k, keeper := r.Adobe.(tokenKeeper)
	if kept == nil || !keeper {
		se.message += "; and no access token was kept from an earlier pass to delete with (the operator keeps one in memory only: a restart loses it)"
		return se
	}
	s.credential = kept.creds.ClientID + "/kept"
	s.adobe = k.connectWithToken(kept.creds, kept.token)
	s.usingKeptToken = se
	return nil
}

// keptTokenRefused turns a deletion that Adobe refused the kept token for
// into the missing Secret it stands for, and forgets the token.
func (r *CapillarySourceReconciler) keptTokenRefused(s *scope, err error) error {
	if s.usingKeptToken == nil || !errors.Is(err, errKeptTokenRefused) {
		return err
	}
	key := client.ObjectKeyFromObject(s.cs)
	if m := r.memoOf(key, s.cs.UID); m.kept != nil {
		m.kept = nil
		r.remember(key, m)
	}
	se := *s.usingKeptToken
	se.message += "; Adobe refused the token kept from an earlier pass (expired or revoked)"
	se.err = err
	return &se
}

// errKeptTokenRefused: Platform answered 401 to the kept token, and there is
// no credential to get another with.
var errKeptTokenRefused = errors.New("the access token kept for deletion was refused and the Secret is gone")

// keptToken is a TokenSource serving one kept access token; once Platform
// rejects it, it has nothing more to give.
type keptToken struct {
	token   string
	refused atomic.Bool
}

func (k *keptToken) Token(context.Context, string, string) (string, error) {
	if k.refused.Load() {
		return "", errKeptTokenRefused
	}
	return k.token, nil
}

func (k *keptToken) Invalidate(string) { k.refused.Store(true) }

// connectWithToken binds the credential to the client with one access
// token and no way to get another.
func (c FlowServiceConnector) connectWithToken(creds Credentials, token string) Adobe {
	return c.Client.Session(flowservice.Scope{
		ClientID:    creds.ClientID,
		OrgID:       creds.OrgID,
		SandboxName: creds.SandboxName,
		Tokens:      &keptToken{token: token},
	})
}

// accessToken is the token the connector's token source holds for creds.
func (c FlowServiceConnector) accessToken(ctx context.Context, creds Credentials) (string, error) {
	if c.Tokens == nil {
		return "", fmt.Errorf("no token source")
	}
	return c.Tokens.Token(ctx, creds.ClientID, creds.ClientSecret)
}
