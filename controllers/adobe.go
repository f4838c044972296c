package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"

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
// and sandbox. Find* answer (nil, nil) when no object has that name; Get*
// answer an error for which flowservice.IsNotFound holds when the object is gone.
type Adobe interface {
	// CheckCredentials gets (or reuses) an IMS token for the credential.
	CheckCredentials(ctx context.Context) error

	GetConnectionSpec(ctx context.Context, id string) (*flowservice.ConnectionSpec, error)
	// FlowSpecFor finds the flow spec whose sourceConnectionSpecIds holds the connection spec.
	FlowSpecFor(ctx context.Context, connectionSpecID string) (*flowservice.FlowSpec, error)

	FindSourceConnection(ctx context.Context, name string) (*flowservice.SourceConnection, error)
	GetSourceConnection(ctx context.Context, id string) (*flowservice.SourceConnection, error)
	CreateSourceConnection(ctx context.Context, in flowservice.SourceConnectionInput) (string, error)
	DeleteSourceConnection(ctx context.Context, id string) error

	FindTargetConnection(ctx context.Context, name string) (*flowservice.TargetConnection, error)
	GetTargetConnection(ctx context.Context, id string) (*flowservice.TargetConnection, error)
	CreateTargetConnection(ctx context.Context, in flowservice.TargetConnectionInput) (string, error)
	DeleteTargetConnection(ctx context.Context, id string) error

	GetMappingSet(ctx context.Context, id string) (*flowservice.MappingSet, error)
	CreateMappingSet(ctx context.Context, in flowservice.MappingSet) (flowservice.MappingSetRef, error)
	UpdateMappingSet(ctx context.Context, id string, in flowservice.MappingSet) (flowservice.MappingSetRef, error)

	FindFlow(ctx context.Context, name string) (*flowservice.Flow, error)
	GetFlow(ctx context.Context, id string) (*flowservice.Flow, error)
	CreateFlow(ctx context.Context, in flowservice.FlowInput) (string, error)
	PatchFlow(ctx context.Context, id, etag string, ops []flowservice.PatchOp) error
	FlowAction(ctx context.Context, id string, action flowservice.Action) error
	DeleteFlow(ctx context.Context, id string) error
}

// StreamingFlowSpecID is the Streaming SDK flow spec (GenericStreamingAEP)
// that partner streaming sources such as Capillary use; it is tried first.
const StreamingFlowSpecID = "e77fde5a-22a8-11ed-861d-0242ac120002"

// FlowServiceConnector connects through the Flow Service client, sharing its
// token cache, rate limiters and metrics between all resources.
type FlowServiceConnector struct {
	Client *flowservice.Client
	Tokens flowservice.TokenSource
}

// Connect binds credentials to the client.
func (c FlowServiceConnector) Connect(creds Credentials) Adobe {
	return &flowServiceAdobe{
		c:      c.Client,
		tokens: c.Tokens,
		scope: flowservice.Scope{
			ClientID:     creds.ClientID,
			ClientSecret: creds.ClientSecret,
			OrgID:        creds.OrgID,
			SandboxName:  creds.SandboxName,
			Tokens:       c.Tokens,
		},
	}
}

type flowServiceAdobe struct {
	c      *flowservice.Client
	tokens flowservice.TokenSource
	scope  flowservice.Scope
}

func (a *flowServiceAdobe) CheckCredentials(ctx context.Context) error {
	_, err := a.tokens.Token(ctx, a.scope.ClientID, a.scope.ClientSecret)
	return err
}

func (a *flowServiceAdobe) GetConnectionSpec(ctx context.Context, id string) (*flowservice.ConnectionSpec, error) {
	return a.c.GetConnectionSpec(ctx, a.scope, id)
}

func (a *flowServiceAdobe) FlowSpecFor(ctx context.Context, connectionSpecID string) (*flowservice.FlowSpec, error) {
	spec, err := a.c.GetFlowSpec(ctx, a.scope, StreamingFlowSpecID)
	if err == nil && slices.Contains(spec.SourceConnectionSpecIDs, connectionSpecID) {
		return spec, nil
	}
	if err != nil && !flowservice.IsNotFound(err) {
		return nil, err
	}
	// Not the usual streaming flow spec: search them all.
	specs, err := a.c.ListFlowSpecs(ctx, a.scope)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		if slices.Contains(specs[i].SourceConnectionSpecIDs, connectionSpecID) {
			return &specs[i], nil
		}
	}
	return nil, &flowservice.Error{StatusCode: http.StatusNotFound, Title: "no flow spec lists connection spec " + connectionSpecID}
}

func first[T any](items []T, err error) (*T, error) {
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return &items[0], nil
}

func byName(name string) string { return "name==" + name }

func (a *flowServiceAdobe) FindSourceConnection(ctx context.Context, name string) (*flowservice.SourceConnection, error) {
	return first(a.c.ListSourceConnections(ctx, a.scope, byName(name)))
}

func (a *flowServiceAdobe) GetSourceConnection(ctx context.Context, id string) (*flowservice.SourceConnection, error) {
	return a.c.GetSourceConnection(ctx, a.scope, id)
}

func (a *flowServiceAdobe) CreateSourceConnection(ctx context.Context, in flowservice.SourceConnectionInput) (string, error) {
	ref, err := a.c.CreateSourceConnection(ctx, a.scope, in)
	return ref.ID, err
}

func (a *flowServiceAdobe) DeleteSourceConnection(ctx context.Context, id string) error {
	return a.c.DeleteSourceConnection(ctx, a.scope, id)
}

func (a *flowServiceAdobe) FindTargetConnection(ctx context.Context, name string) (*flowservice.TargetConnection, error) {
	return first(a.c.ListTargetConnections(ctx, a.scope, byName(name)))
}

func (a *flowServiceAdobe) GetTargetConnection(ctx context.Context, id string) (*flowservice.TargetConnection, error) {
	return a.c.GetTargetConnection(ctx, a.scope, id)
}

func (a *flowServiceAdobe) CreateTargetConnection(ctx context.Context, in flowservice.TargetConnectionInput) (string, error) {
	ref, err := a.c.CreateTargetConnection(ctx, a.scope, in)
	return ref.ID, err
}

func (a *flowServiceAdobe) DeleteTargetConnection(ctx context.Context, id string) error {
	return a.c.DeleteTargetConnection(ctx, a.scope, id)
}

func (a *flowServiceAdobe) GetMappingSet(ctx context.Context, id string) (*flowservice.MappingSet, error) {
	return a.c.GetMappingSet(ctx, a.scope, id)
}

func (a *flowServiceAdobe) CreateMappingSet(ctx context.Context, in flowservice.MappingSet) (flowservice.MappingSetRef, error) {
	return a.c.CreateMappingSet(ctx, a.scope, in)
}

func (a *flowServiceAdobe) UpdateMappingSet(ctx context.Context, id string, in flowservice.MappingSet) (flowservice.MappingSetRef, error) {
	ms, err := a.c.UpdateMappingSet(ctx, a.scope, id, in)
	if err != nil {
		return flowservice.MappingSetRef{}, err
	}
	return flowservice.MappingSetRef{ID: ms.ID, Version: ms.Version}, nil
}

func (a *flowServiceAdobe) FindFlow(ctx context.Context, name string) (*flowservice.Flow, error) {
	return first(a.c.ListFlows(ctx, a.scope, byName(name)))
}

func (a *flowServiceAdobe) GetFlow(ctx context.Context, id string) (*flowservice.Flow, error) {
	return a.c.GetFlow(ctx, a.scope, id)
}

func (a *flowServiceAdobe) CreateFlow(ctx context.Context, in flowservice.FlowInput) (string, error) {
	ref, err := a.c.CreateFlow(ctx, a.scope, in)
	return ref.ID, err
}

func (a *flowServiceAdobe) PatchFlow(ctx context.Context, id, etag string, ops []flowservice.PatchOp) error {
	_, err := a.c.PatchFlow(ctx, a.scope, id, etag, ops)
	return err
}

func (a *flowServiceAdobe) FlowAction(ctx context.Context, id string, action flowservice.Action) error {
	_, err := a.c.FlowAction(ctx, a.scope, id, action)
	return err
}

func (a *flowServiceAdobe) DeleteFlow(ctx context.Context, id string) error {
	return a.c.DeleteFlow(ctx, a.scope, id)
}
