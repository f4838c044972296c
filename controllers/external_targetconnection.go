package controllers

import (
	"context"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

type targetConnectionAPI interface {
	GetTargetConnection(ctx context.Context, id string) (*flowservice.TargetConnection, error)
	FindTargetConnection(ctx context.Context, name string) (*flowservice.TargetConnection, error)
	CreateTargetConnection(ctx context.Context, in flowservice.TargetConnectionInput) (flowservice.Ref, error)
	DeleteTargetConnection(ctx context.Context, id string) error
}

// targetConnection is the data lake target connection that writes to
// spec.target's dataset. It is kept by existing.
type targetConnection struct{ s *scope }

func newTargetConnection(s *scope) external { return targetConnection{s} }

func (targetConnection) kind() kind {
	return kind{name: kindTarget, title: "target connection", event: "TargetConnection",
		condition: v1alpha1.ConditionTargetConnectionReady,
		rejected: &rejection{reason: v1alpha1.ReasonTargetRejected,
			hint: "check that spec.target.datasetId exists in this sandbox and uses spec.target.schemaId"}}
}

func (c targetConnection) id() *string { return &c.s.cs.Status.TargetConnectionID }

func (c targetConnection) Get(ctx context.Context, id string) (observation, error) {
	return existence(c.s.adobe.GetTargetConnection(ctx, id))
}

func (c targetConnection) Find(ctx context.Context, name string) (observation, error) {
	found, err := c.s.adobe.FindTargetConnection(ctx, name)
	if err != nil || found == nil {
		return observation{}, err
	}
	return observation{exists: true, upToDate: true, id: found.ID}, nil
}

func (c targetConnection) Create(ctx context.Context) (observation, error) {
	cs := c.s.cs
	ref, err := c.s.adobe.CreateTargetConnection(ctx, flowservice.TargetConnectionInput{
		Name:           adobeName(cs, kindTarget),
		Description:    description(cs),
		ConnectionSpec: flowservice.SpecRef{ID: flowservice.DataLakeConnectionSpecID, Version: flowservice.DefaultSpecVersion},
		Data: flowservice.TargetData{
			Format: "json",
			Schema: &flowservice.SchemaRef{ID: cs.Spec.Target.SchemaID, Version: cs.Spec.Target.SchemaVersion},
		},
		Params: flowservice.TargetParams{DataSetID: cs.Spec.Target.DatasetID},
	})
	return created(ref.ID, err)
}

func (targetConnection) Update(context.Context) error { return nil }

func (c targetConnection) Delete(ctx context.Context, id string) error {
	return c.s.adobe.DeleteTargetConnection(ctx, id)
}

func (c targetConnection) Ready() (string, error) {
	return "Target connection " + *c.id() + " writes to dataset " + c.s.cs.Spec.Target.DatasetID, nil
}
