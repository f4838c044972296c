package controllers

import (
	"context"
	"fmt"
	"slices"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

type mappingSetAPI interface {
	GetMappingSet(ctx context.Context, id string) (*flowservice.MappingSet, error)
	CreateMappingSet(ctx context.Context, in flowservice.MappingSet) (flowservice.MappingSetRef, error)
	UpdateMappingSet(ctx context.Context, id string, in flowservice.MappingSet) (*flowservice.MappingSet, error)
}

// mappingSet is the Data Prep mapping set that holds spec.mappings. Mapping
// sets have no name to look up and no delete API: a create whose answer is
// lost leaves an unused mapping set behind, which costs nothing.
type mappingSet struct{ s *scope }

func newMappingSet(s *scope) external { return mappingSet{s} }

func (mappingSet) kind() kind {
	return kind{name: "mapping", title: "mapping set", event: "MappingSet",
		condition: v1alpha1.ConditionMappingReady,
		rejected: &rejection{reason: v1alpha1.ReasonMappingRejected,
			hint: "fix spec.mappings (each destinationXdmPath must exist in spec.target.schemaId)"}}
}

func (c mappingSet) id() *string { return &c.s.cs.Status.MappingSetID }

func (c mappingSet) notWanted() (string, bool) {
	if len(c.s.cs.Spec.Mappings) > 0 {
		return "", false
	}
	c.s.cs.Status.MappingSetID = ""
	c.s.cs.Status.MappingSetVersion = 0
	return "No mappings: the events are ingested as they are, so they must already be XDM", true
}

func (c mappingSet) Get(ctx context.Context, id string) (observation, error) {
	current, err := c.s.adobe.GetMappingSet(ctx, id)
	if flowservice.IsNotFound(err) {
		return observation{}, nil
	}
	if err != nil {
		return observation{}, err
	}
	upToDate := sameMappings(current.Mappings, mappingSetFor(c.s.cs).Mappings)
	if upToDate {
		c.s.cs.Status.MappingSetVersion = int64(current.Version)
	}
	return observation{exists: true, upToDate: upToDate}, nil
}

func (c mappingSet) Create(ctx context.Context) (observation, error) {
	ref, err := c.s.adobe.CreateMappingSet(ctx, mappingSetFor(c.s.cs))
	c.s.cs.Status.MappingSetVersion = int64(ref.Version)
	return created(ref.ID, err)
}

// Update writes a new version of the mapping set (PUT).
func (c mappingSet) Update(ctx context.Context) error {
	id := *c.id()
	ms, err := c.s.adobe.UpdateMappingSet(ctx, id, mappingSetFor(c.s.cs))
	if err != nil {
		return err
	}
	c.s.cs.Status.MappingSetVersion = int64(ms.Version)
	c.s.changed("Updated", "Update", fmt.Sprintf("Updated mapping set %s to version %d", id, ms.Version))
	return nil
}

// Delete leaves the mapping set: Data Prep has no delete API.
func (mappingSet) Delete(context.Context, string) error { return nil }

func (c mappingSet) Ready() (string, error) {
	st := c.s.cs.Status
	return fmt.Sprintf("Mapping set %s version %d holds %d mappings", st.MappingSetID, st.MappingSetVersion, len(c.s.cs.Spec.Mappings)), nil
}

func mappingSetFor(cs *v1alpha1.CapillarySource) flowservice.MappingSet {
	ms := flowservice.MappingSet{
		Version: 0,
		OutputSchema: &flowservice.OutputSchema{SchemaRef: flowservice.XDMSchemaRef{
			ID: cs.Spec.Target.SchemaID, ContentType: cs.Spec.Target.SchemaVersion,
		}},
	}
	for _, m := range cs.Spec.Mappings {
		ms.Mappings = append(ms.Mappings, flowservice.Mapping{
			SourceType:  flowservice.SourceTypeAttribute,
			Source:      m.SourceAttribute,
			Destination: m.DestinationXdmPath,
			Identity:    m.Identity,
		})
	}
	return ms
}

// sameMappings compares what matters of two mapping lists, in any order.
func sameMappings(a, b []flowservice.Mapping) bool {
	key := func(ms []flowservice.Mapping) []string {
		out := make([]string, 0, len(ms))
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%s\x00%s\x00%t", m.Source, m.Destination, m.Identity))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}
