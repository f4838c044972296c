package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// Credentials are what one CapillarySource acts with in Adobe: the OAuth
// server-to-server credential from its Secret, and where the objects live.
type Credentials struct {
	ClientID     string
	ClientSecret string
	OrgID        string
	SandboxName  string
}

// key identifies the credential as the IMS token cache does: the client ID
// and a hash of the secret (the IMS URL is the operator's, one for all). It
// stays in memory and is never logged.
func (c Credentials) key() string {
	sum := sha256.Sum256([]byte(c.ClientSecret))
	return c.ClientID + "/" + hex.EncodeToString(sum[:])
}

// AdobeConnector binds credentials to an Adobe client. It is cheap: tokens
// and rate limits are shared by everything built from one connector.
type AdobeConnector interface {
	Connect(creds Credentials) Adobe
}

// Adobe is the Adobe I/O the reconciler needs, bound to one credential, org
// and sandbox; *flowservice.Session implements it. Find* answer (nil, nil)
// when no object has that name; Get* answer an error for which
// flowservice.IsNotFound holds when the object is gone.
type Adobe interface {
	// CheckCredentials gets (or reuses) an IMS token for the credential.
	CheckCredentials(ctx context.Context) error

	GetConnectionSpec(ctx context.Context, id string) (*flowservice.ConnectionSpec, error)
	FlowSpecFor(ctx context.Context, connectionSpecID string) (*flowservice.FlowSpec, error)

	baseConnectionAPI
	sourceConnectionAPI
	targetConnectionAPI
	mappingSetAPI
	dataflowAPI
}

var _ Adobe = (*flowservice.Session)(nil)

// FlowServiceConnector connects through the Flow Service client, sharing its
// token cache, rate limiters and metrics between all resources.
type FlowServiceConnector struct {
	Client *flowservice.Client
	Tokens flowservice.TokenSource
}

// Connect binds credentials to the client.
func (c FlowServiceConnector) Connect(creds Credentials) Adobe {
	return c.Client.Session(flowservice.Scope{
		ClientID:     creds.ClientID,
		ClientSecret: creds.ClientSecret,
		OrgID:        creds.OrgID,
		SandboxName:  creds.SandboxName,
		Tokens:       c.Tokens,
	})
}
