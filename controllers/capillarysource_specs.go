package controllers

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// resolvedSpecs are the connection spec and the flow spec that holds it.
type resolvedSpecs struct {
	connection *flowservice.ConnectionSpec
	flow       *flowservice.FlowSpec
	// auth is the authSpec the base connection follows; nil: no base connection.
	auth *authMethod
	// options are the dataflow options the flow spec offers.
	options *optionSpec
}

// resolveSpecs checks the connection spec and finds its flow spec. Results
// are shared for an hour by the resources of one credential, org and sandbox:
// what one credential may read says nothing of another, so neither an answer
// nor a failure crosses credentials.
func (r *CapillarySourceReconciler) resolveSpecs(ctx context.Context, s *scope) error {
	specs, err := r.sharedSpecs(ctx, s)
	if err != nil {
		return err
	}
	s.specs = specs
	s.cs.Status.InletAuthentication = specs.inletAuthentication()
	return nil
}

// sharedSpecs answers from the cache, or from one lookup shared by the
// workers that miss it together. The lookup runs detached from whichever
// worker started it, under a deadline of its own, so that worker's
// cancellation does not fail the others; each worker waits only as long as
// its own context allows (as internal/ims does for tokens).
func (r *CapillarySourceReconciler) sharedSpecs(ctx context.Context, s *scope) (resolvedSpecs, error) {
	cs := s.cs
	key := specKey{credential: s.credential, org: cs.Spec.OrgID, sandbox: cs.Spec.SandboxName, connectionSpec: cs.Spec.ConnectionSpecID}
	if got, ok := r.specs.get(key, s.now); ok {
		return got, nil
	}
	detached := context.WithoutCancel(ctx)
	ch := r.specs.flight.DoChan(key.String(), func() (any, error) {
		lookupCtx, cancel := context.WithTimeout(detached, cmp.Or(r.ReconcileTimeout, DefaultReconcileTimeout))
		defer cancel()
		got, err := r.lookUpSpecs(lookupCtx, cs, s.adobe)
		if err == nil {
			r.specs.put(key, got, s.now)
		}
		return got, err
	})
	select {
	case <-ctx.Done():
		return resolvedSpecs{}, fmt.Errorf("wait for the connection spec lookup: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return resolvedSpecs{}, res.Err
		}
		return res.Val.(resolvedSpecs), nil
	}
}

// lookUpSpecs reads the connection spec and finds the flow spec that holds it.
func (r *CapillarySourceReconciler) lookUpSpecs(ctx context.Context, cs *v1alpha1.CapillarySource, adobe Adobe) (resolvedSpecs, error) {
	conn, err := adobe.GetConnectionSpec(ctx, cs.Spec.ConnectionSpecID)
	if err != nil {
		if flowservice.IsNotFound(err) {
			return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound,
				fmt.Sprintf("Adobe has no connection spec %s in org %s sandbox %s: check spec.connectionSpecId against the Capillary source in the Sources catalogue", cs.Spec.ConnectionSpecID, cs.Spec.OrgID, cs.Spec.SandboxName), err)
		}
		return resolvedSpecs{}, classify(v1alpha1.ConditionSourceConnectionReady, "read the connection spec", err)
	}
	if !conn.Attributes.IsSource && (conn.SourceSpec == nil || !conn.SourceSpec.Attributes.UIAttributes.IsSource) {
		return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonConnectionSpecNotFound,
			fmt.Sprintf("connection spec %s (%s) is not a source: check spec.connectionSpecId", conn.ID, conn.Name), nil)
	}
	auth, err := readAuthSpec(conn)
	if err != nil {
		return resolvedSpecs{}, terminal(v1alpha1.ConditionSourceConnectionReady, v1alpha1.ReasonAuthSpecUnsupported,
			err.Error()+": check spec.connectionSpecId, and report the connection spec to the operator's maintainers", nil)
	}
	flow, err := adobe.FlowSpecFor(ctx, conn.ID)
	if err != nil {
		if flowservice.IsNotFound(err) {
			return resolvedSpecs{}, terminal(v1alpha1.ConditionDataflowReady, v1alpha1.ReasonFlowSpecNotFound,
				fmt.Sprintf("no flow spec in org %s sandbox %s lists connection spec %s in sourceConnectionSpecIds: the source is not enabled for this org", cs.Spec.OrgID, cs.Spec.SandboxName, conn.ID), err)
		}
		return resolvedSpecs{}, classify(v1alpha1.ConditionDataflowReady, "find the flow spec", err)
	}
	options, err := readOptionSpec(flow)
	if err != nil {
		return resolvedSpecs{}, terminal(v1alpha1.ConditionDataflowReady, v1alpha1.ReasonDataflowOptionUnsupported, err.Error(), nil)
	}
	return resolvedSpecs{connection: conn, flow: flow, auth: auth, options: options}, nil
}

func (rs resolvedSpecs) inletAuthentication() v1alpha1.InletAuthentication {
	if rs.auth == nil {
		return v1alpha1.InletAuthenticationNone
	}
	return rs.auth.inlet
}

func specVersion(v string) string {
	if v == "" {
		return flowservice.DefaultSpecVersion
	}
	return v
}

// specKey identifies a connection spec lookup: specs are per org and
// sandbox, and what may be read of them is per credential.
type specKey struct{ credential, org, sandbox, connectionSpec string }

func (k specKey) String() string {
	return k.credential + "\x00" + k.org + "\x00" + k.sandbox + "\x00" + k.connectionSpec
}

type specEntry struct {
	specs   resolvedSpecs
	expires time.Time
}

// specCache shares spec lookups between resources.
type specCache struct {
	flight  singleflight.Group
	mu      sync.Mutex
	entries map[specKey]specEntry
}

func (c *specCache) get(k specKey, now time.Time) (resolvedSpecs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || now.After(e.expires) {
		return resolvedSpecs{}, false
	}
	return e.specs, true
}

func (c *specCache) put(k specKey, v resolvedSpecs, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[specKey]specEntry{}
	}
	c.entries[k] = specEntry{specs: v, expires: now.Add(specCacheTTL)}
}
