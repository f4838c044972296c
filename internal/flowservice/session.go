package flowservice

import (
	"context"
	"errors"
	"net/http"
	"slices"
)

// StreamingFlowSpecID is the Streaming SDK flow spec (GenericStreamingAEP)
// that partner streaming sources such as Capillary use; FlowSpecFor tries it
// first (aep-api.md, "Flow specs").
const StreamingFlowSpecID = "e77fde5a-22a8-11ed-861d-0242ac120002"

// Session is the client bound to one credential, org and sandbox: the
// operations of this package are its methods. It is cheap to make; tokens,
// rate limits and metrics are the Client's, shared by all its sessions.
type Session struct {
	c     *Client
	scope Scope
}

// Session binds the client to s.
func (c *Client) Session(s Scope) *Session { return &Session{c: c, scope: s} }

// CheckCredentials gets (or reuses) an IMS token for the session's credential.
func (s *Session) CheckCredentials(ctx context.Context) error {
	tokens := s.scope.Tokens
	if tokens == nil {
		tokens = s.c.tokens
	}
	if tokens == nil {
		return errors.New("no token source: configure the client with WithTokenSource or set Scope.Tokens")
	}
	_, err := tokens.Token(ctx, s.scope.ClientID, s.scope.ClientSecret)
	return err
}

// FlowSpecFor finds the flow spec whose sourceConnectionSpecIds holds the
// connection spec: the streaming flow spec when it does (one read), else the
// first listed one that does.
func (s *Session) FlowSpecFor(ctx context.Context, connectionSpecID string) (*FlowSpec, error) {
	spec, err := s.GetFlowSpec(ctx, StreamingFlowSpecID)
	if err == nil && slices.Contains(spec.SourceConnectionSpecIDs, connectionSpecID) {
		return spec, nil
	}
	if err != nil && !IsNotFound(err) {
		return nil, err
	}
	specs, err := s.ListFlowSpecs(ctx)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		if slices.Contains(specs[i].SourceConnectionSpecIDs, connectionSpecID) {
			return &specs[i], nil
		}
	}
	return nil, &Error{StatusCode: http.StatusNotFound, Title: "no flow spec lists connection spec " + connectionSpecID}
}

// FindConnection is the base connection named name, or nil.
func (s *Session) FindConnection(ctx context.Context, name string) (*Connection, error) {
	return first(s.ListConnections(ctx, byName(name)))
}

// FindSourceConnection is the source connection named name, or nil.
func (s *Session) FindSourceConnection(ctx context.Context, name string) (*SourceConnection, error) {
	return first(s.ListSourceConnections(ctx, byName(name)))
}

// FindTargetConnection is the target connection named name, or nil.
func (s *Session) FindTargetConnection(ctx context.Context, name string) (*TargetConnection, error) {
	return first(s.ListTargetConnections(ctx, byName(name)))
}

// FindFlow is the dataflow named name, or nil.
func (s *Session) FindFlow(ctx context.Context, name string) (*Flow, error) {
	return first(s.ListFlows(ctx, byName(name)))
}

func byName(name string) string { return "name==" + name }

func first[T any](items []T, err error) (*T, error) {
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return &items[0], nil
}
