package controllers

import (
	"context"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

type baseConnectionAPI interface {
	GetConnection(ctx context.Context, id string) (*flowservice.Connection, error)
	FindConnection(ctx context.Context, name string) (*flowservice.Connection, error)
	CreateConnection(ctx context.Context, in flowservice.ConnectionInput) (flowservice.Ref, error)
	PatchConnection(ctx context.Context, id, etag string, ops []flowservice.PatchOp) (flowservice.Ref, error)
	DeleteConnection(ctx context.Context, id string) error
}

// baseConnection authenticates the source when the connection spec has an
// authSpec: its params come from the credential's Secret (see authMethod).
// Adobe masks secret params in its answers, so whether they are current is
// told by the Secret's resourceVersion recorded when they were sent.
type baseConnection struct {
	s *scope
	// etag of the connection Get or Find read, for the PATCH of a rotation.
	etag string
	// params, filled from the Secret by prepare.
	params map[string]any
}

func newBaseConnection(s *scope) external { return &baseConnection{s: s} }

func (*baseConnection) kind() kind {
	return kind{name: "base", title: "base connection", event: "BaseConnection",
		condition: v1alpha1.ConditionBaseConnectionReady,
		rejected: &rejection{reason: v1alpha1.ReasonAuthParamsInvalid,
			hint: "check the Secret's values for the params of the connection spec's authSpec"}}
}

func (c *baseConnection) id() *string { return &c.s.cs.Status.BaseConnectionID }

// notWanted: a connection spec without an authSpec needs no base connection.
func (c *baseConnection) notWanted() (string, bool) {
	if c.s.specs.auth != nil {
		return "", false
	}
	c.s.cs.Status.BaseConnectionID = ""
	c.s.cs.Status.BaseConnectionSecretVersion = ""
	return "", true
}

// outdated: the Secret changed since the params were sent.
func (c *baseConnection) outdated() bool {
	return c.s.cs.Status.BaseConnectionSecretVersion != c.s.secret.ResourceVersion
}

func (c *baseConnection) Get(ctx context.Context, id string) (observation, error) {
	conn, err := c.s.adobe.GetConnection(ctx, id)
	if flowservice.IsNotFound(err) {
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	c.etag = conn.ETag
	return observation{exists: true, upToDate: !c.outdated(), id: conn.ID}, nil
}

func (c *baseConnection) Find(ctx context.Context, name string) (observation, error) {
	// Only a connection spec with an authSpec leads to a base connection, and
	// status says so (inletAuthentication, written with createStartedAt
	// before the first create): the delete path, which reads no specs, asks
	// Adobe only then.
	if ia := c.s.cs.Status.InletAuthentication; ia == "" || ia == v1alpha1.InletAuthenticationNone {
		return observation{}, nil
	}
	conn, err := c.s.adobe.FindConnection(ctx, name)
	if err != nil || conn == nil {
		return observation{}, err
	}
	c.etag = conn.ETag
	// Found after a lost answer: which Secret version it holds is unknown.
	return observation{exists: true, id: conn.ID}, nil
}

// prepare fills the params from the Secret and checks them against the
// authSpec's schema.
func (c *baseConnection) prepare() error {
	var err error
	c.params, err = c.s.specs.auth.params(c.s.secret, c.s.secretRef.ParamKeys())
	return err
}

func (c *baseConnection) Create(ctx context.Context) (observation, error) {
	cs, auth := c.s.cs, c.s.specs.auth
	ref, err := c.s.adobe.CreateConnection(ctx, flowservice.ConnectionInput{
		Name:           adobeName(cs, "base"),
		Description:    description(cs),
		Auth:           flowservice.Auth{SpecName: auth.name, Params: c.params},
		ConnectionSpec: flowservice.SpecRef{ID: cs.Spec.ConnectionSpecID, Version: specVersion(c.s.specs.connection.Version)},
	})
	if err == nil {
		cs.Status.BaseConnectionSecretVersion = c.s.secret.ResourceVersion
	}
	return created(ref.ID, err)
}

// Update sends the params again from the rotated Secret (PATCH, If-Match).
func (c *baseConnection) Update(ctx context.Context) error {
	cs := c.s.cs
	if err := c.prepare(); err != nil {
		return err
	}
	id := *c.id()
	if _, err := c.s.adobe.PatchConnection(ctx, id, c.etag, []flowservice.PatchOp{
		{Op: flowservice.PatchReplace, Path: "/auth/params", Value: c.params},
	}); err != nil {
		return err
	}
	cs.Status.BaseConnectionSecretVersion = c.s.secret.ResourceVersion
	c.s.changed("Updated", "Update", "Updated base connection "+id+" from "+c.s.credentialName)
	return nil
}

func (c *baseConnection) Delete(ctx context.Context, id string) error {
	return c.s.adobe.DeleteConnection(ctx, id)
}

func (c *baseConnection) Ready() (string, error) {
	return "Base connection " + *c.id() + " authenticates with authSpec " + c.s.specs.auth.name, nil
}
