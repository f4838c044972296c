package controllers

import (
	"context"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

type sourceConnectionAPI interface {
	GetSourceConnection(ctx context.Context, id string) (*flowservice.SourceConnection, error)
	FindSourceConnection(ctx context.Context, name string) (*flowservice.SourceConnection, error)
	CreateSourceConnection(ctx context.Context, in flowservice.SourceConnectionInput) (flowservice.Ref, error)
	DeleteSourceConnection(ctx context.Context, id string) error
}

// sourceConnection is the streaming source connection Capillary's events
// enter through. Nothing in it can drift: it is kept by existing.
type sourceConnection struct{ s *scope }

func newSourceConnection(s *scope) external { return sourceConnection{s} }

func (sourceConnection) kind() kind {
	return kind{name: kindSource, title: "source connection", event: "SourceConnection",
		condition: v1alpha1.ConditionSourceConnectionReady}
}

func (c sourceConnection) id() *string { return &c.s.cs.Status.SourceConnectionID }

func (c sourceConnection) Get(ctx context.Context, id string) (observation, error) {
	return existence(c.s.adobe.GetSourceConnection(ctx, id))
}

func (c sourceConnection) Find(ctx context.Context, name string) (observation, error) {
	found, err := c.s.adobe.FindSourceConnection(ctx, name)
	if err != nil || found == nil {
		return observation{}, err
	}
	return observation{exists: true, upToDate: true, id: found.ID}, nil
}

func (c sourceConnection) Create(ctx context.Context) (observation, error) {
	cs, conn := c.s.cs, c.s.specs.connection
	ref, err := c.s.adobe.CreateSourceConnection(ctx, flowservice.SourceConnectionInput{
		Name:        adobeName(cs, kindSource),
		Description: description(cs),
		ProviderID:  conn.ProviderID,
		// Set when the connection spec asks for a base connection (the
		// base connection step runs first); empty otherwise.
		BaseConnectionID: cs.Status.BaseConnectionID,
		ConnectionSpec:   flowservice.SpecRef{ID: cs.Spec.ConnectionSpecID, Version: specVersion(conn.Version)},
		Data:             flowservice.SourceData{Format: "json"},
	})
	return created(ref.ID, err)
}

func (sourceConnection) Update(context.Context) error { return nil }

func (c sourceConnection) Delete(ctx context.Context, id string) error {
	return c.s.adobe.DeleteSourceConnection(ctx, id)
}

func (c sourceConnection) Ready() (string, error) {
	return "Source connection " + *c.id() + " exists", nil
}

// created is the observation of an object made as declared.
func created(id string, err error) (observation, error) {
	return observation{exists: err == nil, upToDate: true, id: id}, err
}

// existence is the observation of a kind kept by existing: there and as
// declared, or gone.
func existence[T any](_ *T, err error) (observation, error) {
	if flowservice.IsNotFound(err) {
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	return observation{exists: true, upToDate: true}, nil
}
