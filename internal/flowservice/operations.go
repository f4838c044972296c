package flowservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Operation names, the `operation` label of the client's metrics and logs.
const (
	OpGetConnectionSpec      = "get_connection_spec"
	OpCreateConnection       = "create_connection"
	OpGetConnection          = "get_connection"
	OpListConnections        = "list_connections"
	OpPatchConnection        = "patch_connection"
	OpDeleteConnection       = "delete_connection"
	OpGetFlowSpec            = "get_flow_spec"
	OpListFlowSpecs          = "list_flow_specs"
	OpCreateSourceConnection = "create_source_connection"
	OpGetSourceConnection    = "get_source_connection"
	OpListSourceConnections  = "list_source_connections"
	OpDeleteSourceConnection = "delete_source_connection"
	OpCreateTargetConnection = "create_target_connection"
	OpGetTargetConnection    = "get_target_connection"
	OpListTargetConnections  = "list_target_connections"
	OpDeleteTargetConnection = "delete_target_connection"
	OpCreateFlow             = "create_flow"
	OpGetFlow                = "get_flow"
	OpListFlows              = "list_flows"
	OpPatchFlow              = "patch_flow"
	OpDeleteFlow             = "delete_flow"
	OpFlowAction             = "flow_action"
	OpCreateMappingSet       = "create_mapping_set"
	OpGetMappingSet          = "get_mapping_set"
	OpListRuns               = "list_runs"
	OpUpdateMappingSet       = "update_mapping_set"
)

// Collections under Flow Service.
const (
	pathConnectionSpecs   = "/connectionSpecs"
	pathFlowSpecs         = "/flowSpecs"
	pathConnections       = "/connections"
	pathSourceConnections = "/sourceConnections"
	pathTargetConnections = "/targetConnections"
	pathFlows             = "/flows"
	pathMappingSets       = "/mappingSets"
	pathRuns              = "/runs"
)

func item(collection, id string) string { return collection + "/" + url.PathEscape(id) }

func requireID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%s: empty ID", what)
	}
	return nil
}

// listResponse is Flow Service's {"items": [...], "_links": {"next": ...}}.
type listResponse[T any] struct {
	Items []T `json:"items"`
	Links struct {
		Next struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
}

// getByID fetches one object; Flow Service wraps it in {"items": [...]}, and
// an empty list means the object is not there.
func getByID[T any](ctx context.Context, c *Client, s Scope, op, collection, id string) (*T, error) {
	var resp listResponse[T]
	path := item(collection, id)
	if err := c.do(ctx, s, call{op: op, api: FlowServicePath, method: http.MethodGet, path: path, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	if len(resp.Items) == 0 {
		return nil, &Error{StatusCode: http.StatusNotFound, Title: "Resource not found",
			Detail: fmt.Sprintf("GET %s answered no items", FlowServicePath+path)}
	}
	return &resp.Items[0], nil
}

// list fetches every object matching the property filters (ANDed, one
// property= parameter each, e.g. "name==capillary-orders"), following
// continuation links.
func list[T any](ctx context.Context, c *Client, s Scope, op, collection string, properties []string) ([]T, error) {
	var all []T
	token := ""
	for page := 0; page < maxListPages; page++ {
		q := url.Values{}
		for _, p := range properties {
			q.Add("property", p)
		}
		if token != "" {
			q.Set("continuationToken", token)
		}
		var resp listResponse[T]
		if err := c.do(ctx, s, call{op: op, api: FlowServicePath, method: http.MethodGet, path: collection, query: q, idempotent: true}, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.Items...)
		token = continuationToken(resp.Links.Next.Href)
		if token == "" || len(resp.Items) == 0 {
			return all, nil
		}
	}
	return nil, fmt.Errorf("more than %d pages of results", maxListPages)
}

func continuationToken(href string) string {
	if href == "" {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	return u.Query().Get("continuationToken")
}

func (c *Client) create(ctx context.Context, s Scope, op, collection string, body any) (Ref, error) {
	var ref Ref
	err := c.do(ctx, s, call{op: op, api: FlowServicePath, method: http.MethodPost, path: collection, body: body}, &ref)
	return ref, err
}

func (c *Client) patch(ctx context.Context, s Scope, op, collection, id, etag string, ops []PatchOp) (Ref, error) {
	if etag == "" {
		return Ref{}, errors.New("an etag is required for If-Match")
	}
	if len(ops) == 0 {
		return Ref{}, errors.New("no patch operations")
	}
	var ref Ref
	// A PATCH guarded by If-Match cannot apply twice, so it may be retried.
	err := c.do(ctx, s, call{op: op, api: FlowServicePath, method: http.MethodPatch, path: item(collection, id),
		body: ops, ifMatch: etag, idempotent: true}, &ref)
	return ref, err
}

func (c *Client) delete(ctx context.Context, s Scope, op, collection, id string) error {
	return c.do(ctx, s, call{op: op, api: FlowServicePath, method: http.MethodDelete, path: item(collection, id), idempotent: true}, nil)
}

// GetConnectionSpec reads a connection spec (GET /connectionSpecs/{id}).
func (s *Session) GetConnectionSpec(ctx context.Context, id string) (*ConnectionSpec, error) {
	if err := requireID("get connection spec", id); err != nil {
		return nil, err
	}
	spec, err := getByID[ConnectionSpec](ctx, s.c, s.scope, OpGetConnectionSpec, pathConnectionSpecs, id)
	if err != nil {
		return nil, fmt.Errorf("get connection spec %s: %w", id, err)
	}
	return spec, nil
}

// GetFlowSpec reads a flow spec (GET /flowSpecs/{id}).
func (s *Session) GetFlowSpec(ctx context.Context, id string) (*FlowSpec, error) {
	if err := requireID("get flow spec", id); err != nil {
		return nil, err
	}
	spec, err := getByID[FlowSpec](ctx, s.c, s.scope, OpGetFlowSpec, pathFlowSpecs, id)
	if err != nil {
		return nil, fmt.Errorf("get flow spec %s: %w", id, err)
	}
	return spec, nil
}

// ListFlowSpecs lists flow specs matching the property filters, e.g.
// "sourceConnectionSpecIds[]==6360f136-5980-4111-8bdf-15d29eab3b5a".
func (s *Session) ListFlowSpecs(ctx context.Context, properties ...string) ([]FlowSpec, error) {
	specs, err := list[FlowSpec](ctx, s.c, s.scope, OpListFlowSpecs, pathFlowSpecs, properties)
	if err != nil {
		return nil, fmt.Errorf("list flow specs: %w", err)
	}
	return specs, nil
}

// CreateConnection creates a base connection (POST /connections).
func (s *Session) CreateConnection(ctx context.Context, in ConnectionInput) (Ref, error) {
	ref, err := s.c.create(ctx, s.scope, OpCreateConnection, pathConnections, in)
	if err != nil {
		return Ref{}, fmt.Errorf("create base connection: %w", err)
	}
	return ref, nil
}

// GetConnection reads a base connection (GET /connections/{id}).
func (s *Session) GetConnection(ctx context.Context, id string) (*Connection, error) {
	if err := requireID("get base connection", id); err != nil {
		return nil, err
	}
	conn, err := getByID[Connection](ctx, s.c, s.scope, OpGetConnection, pathConnections, id)
	if err != nil {
		return nil, fmt.Errorf("get base connection %s: %w", id, err)
	}
	return conn, nil
}

// ListConnections lists base connections matching the property filters.
func (s *Session) ListConnections(ctx context.Context, properties ...string) ([]Connection, error) {
	out, err := list[Connection](ctx, s.c, s.scope, OpListConnections, pathConnections, properties)
	if err != nil {
		return nil, fmt.Errorf("list base connections: %w", err)
	}
	return out, nil
}

// PatchConnection applies a JSON Patch to a base connection, guarded by If-Match.
func (s *Session) PatchConnection(ctx context.Context, id, etag string, ops []PatchOp) (Ref, error) {
	if err := requireID("patch base connection", id); err != nil {
		return Ref{}, err
	}
	ref, err := s.c.patch(ctx, s.scope, OpPatchConnection, pathConnections, id, etag, ops)
	if err != nil {
		return Ref{}, fmt.Errorf("patch base connection %s: %w", id, err)
	}
	return ref, nil
}

// DeleteConnection deletes a base connection (DELETE /connections/{id}).
func (s *Session) DeleteConnection(ctx context.Context, id string) error {
	if err := requireID("delete base connection", id); err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.scope, OpDeleteConnection, pathConnections, id); err != nil {
		return fmt.Errorf("delete base connection %s: %w", id, err)
	}
	return nil
}

// CreateSourceConnection creates a source connection (POST /sourceConnections).
func (s *Session) CreateSourceConnection(ctx context.Context, in SourceConnectionInput) (Ref, error) {
	ref, err := s.c.create(ctx, s.scope, OpCreateSourceConnection, pathSourceConnections, in)
	if err != nil {
		return Ref{}, fmt.Errorf("create source connection %q: %w", in.Name, err)
	}
	return ref, nil
}

// GetSourceConnection reads a source connection.
func (s *Session) GetSourceConnection(ctx context.Context, id string) (*SourceConnection, error) {
	if err := requireID("get source connection", id); err != nil {
		return nil, err
	}
	sc, err := getByID[SourceConnection](ctx, s.c, s.scope, OpGetSourceConnection, pathSourceConnections, id)
	if err != nil {
		return nil, fmt.Errorf("get source connection %s: %w", id, err)
	}
	return sc, nil
}

// ListSourceConnections lists source connections matching the property
// filters, e.g. "name==capillary-orders".
func (s *Session) ListSourceConnections(ctx context.Context, properties ...string) ([]SourceConnection, error) {
	out, err := list[SourceConnection](ctx, s.c, s.scope, OpListSourceConnections, pathSourceConnections, properties)
	if err != nil {
		return nil, fmt.Errorf("list source connections: %w", err)
	}
	return out, nil
}

// DeleteSourceConnection deletes a source connection. A 404 is returned as
// an error (IsNotFound) for the caller to treat as already gone.
func (s *Session) DeleteSourceConnection(ctx context.Context, id string) error {
	if err := requireID("delete source connection", id); err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.scope, OpDeleteSourceConnection, pathSourceConnections, id); err != nil {
		return fmt.Errorf("delete source connection %s: %w", id, err)
	}
	return nil
}

// CreateTargetConnection creates a target connection (POST /targetConnections).
func (s *Session) CreateTargetConnection(ctx context.Context, in TargetConnectionInput) (Ref, error) {
	ref, err := s.c.create(ctx, s.scope, OpCreateTargetConnection, pathTargetConnections, in)
	if err != nil {
		return Ref{}, fmt.Errorf("create target connection %q: %w", in.Name, err)
	}
	return ref, nil
}

// GetTargetConnection reads a target connection.
func (s *Session) GetTargetConnection(ctx context.Context, id string) (*TargetConnection, error) {
	if err := requireID("get target connection", id); err != nil {
		return nil, err
	}
	tc, err := getByID[TargetConnection](ctx, s.c, s.scope, OpGetTargetConnection, pathTargetConnections, id)
	if err != nil {
		return nil, fmt.Errorf("get target connection %s: %w", id, err)
	}
	return tc, nil
}

// ListTargetConnections lists target connections matching the property filters.
func (s *Session) ListTargetConnections(ctx context.Context, properties ...string) ([]TargetConnection, error) {
	out, err := list[TargetConnection](ctx, s.c, s.scope, OpListTargetConnections, pathTargetConnections, properties)
	if err != nil {
		return nil, fmt.Errorf("list target connections: %w", err)
	}
	return out, nil
}

// DeleteTargetConnection deletes a target connection (404 → IsNotFound).
func (s *Session) DeleteTargetConnection(ctx context.Context, id string) error {
	if err := requireID("delete target connection", id); err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.scope, OpDeleteTargetConnection, pathTargetConnections, id); err != nil {
		return fmt.Errorf("delete target connection %s: %w", id, err)
	}
	return nil
}

// CreateFlow creates a dataflow (POST /flows).
func (s *Session) CreateFlow(ctx context.Context, in FlowInput) (Ref, error) {
	ref, err := s.c.create(ctx, s.scope, OpCreateFlow, pathFlows, in)
	if err != nil {
		return Ref{}, fmt.Errorf("create dataflow %q: %w", in.Name, err)
	}
	return ref, nil
}

// GetFlow reads a dataflow, including its state and inlet URL.
func (s *Session) GetFlow(ctx context.Context, id string) (*Flow, error) {
	if err := requireID("get dataflow", id); err != nil {
		return nil, err
	}
	f, err := getByID[Flow](ctx, s.c, s.scope, OpGetFlow, pathFlows, id)
	if err != nil {
		return nil, fmt.Errorf("get dataflow %s: %w", id, err)
	}
	return f, nil
}

// ListFlows lists dataflows matching the property filters, e.g.
// "name==capillary-orders" or "sourceConnectionIds[]=={id}".
func (s *Session) ListFlows(ctx context.Context, properties ...string) ([]Flow, error) {
	out, err := list[Flow](ctx, s.c, s.scope, OpListFlows, pathFlows, properties)
	if err != nil {
		return nil, fmt.Errorf("list dataflows: %w", err)
	}
	return out, nil
}

// PatchFlow applies JSON Patch operations to a dataflow, guarded by the etag.
func (s *Session) PatchFlow(ctx context.Context, id, etag string, ops []PatchOp) (Ref, error) {
	if err := requireID("patch dataflow", id); err != nil {
		return Ref{}, err
	}
	ref, err := s.c.patch(ctx, s.scope, OpPatchFlow, pathFlows, id, etag, ops)
	if err != nil {
		return Ref{}, fmt.Errorf("patch dataflow %s: %w", id, err)
	}
	return ref, nil
}

// DeleteFlow deletes a dataflow (404 → IsNotFound).
func (s *Session) DeleteFlow(ctx context.Context, id string) error {
	if err := requireID("delete dataflow", id); err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.scope, OpDeleteFlow, pathFlows, id); err != nil {
		return fmt.Errorf("delete dataflow %s: %w", id, err)
	}
	return nil
}

// FlowAction enables or disables a dataflow (POST /flows/{id}/action?op=...).
func (s *Session) FlowAction(ctx context.Context, id string, action Action) (Ref, error) {
	if err := requireID("dataflow action", id); err != nil {
		return Ref{}, err
	}
	if action != ActionEnable && action != ActionDisable {
		return Ref{}, fmt.Errorf("dataflow action %q: want %q or %q", action, ActionEnable, ActionDisable)
	}
	var ref Ref
	// Enabling an enabled flow changes nothing, so the action may be retried.
	err := s.c.do(ctx, s.scope, call{op: OpFlowAction, api: FlowServicePath, method: http.MethodPost,
		path: item(pathFlows, id) + "/action", query: url.Values{"op": {string(action)}}, idempotent: true}, &ref)
	if err != nil {
		return Ref{}, fmt.Errorf("%s dataflow %s: %w", action, id, err)
	}
	return ref, nil
}

// CreateMappingSet creates a Data Prep mapping set (POST /mappingSets).
func (s *Session) CreateMappingSet(ctx context.Context, in MappingSet) (MappingSetRef, error) {
	var ref MappingSetRef
	if err := s.c.do(ctx, s.scope, call{op: OpCreateMappingSet, api: DataPrepPath, method: http.MethodPost, path: pathMappingSets, body: in}, &ref); err != nil {
		return MappingSetRef{}, fmt.Errorf("create mapping set: %w", err)
	}
	return ref, nil
}

// GetMappingSet reads the latest version of a mapping set.
func (s *Session) GetMappingSet(ctx context.Context, id string) (*MappingSet, error) {
	if err := requireID("get mapping set", id); err != nil {
		return nil, err
	}
	var ms MappingSet
	if err := s.c.do(ctx, s.scope, call{op: OpGetMappingSet, api: DataPrepPath, method: http.MethodGet, path: item(pathMappingSets, id), idempotent: true}, &ms); err != nil {
		return nil, fmt.Errorf("get mapping set %s: %w", id, err)
	}
	return &ms, nil
}

// UpdateMappingSet replaces a mapping set's content (PUT /mappingSets/{id});
// Data Prep answers with the new version.
func (s *Session) UpdateMappingSet(ctx context.Context, id string, in MappingSet) (*MappingSet, error) {
	if err := requireID("update mapping set", id); err != nil {
		return nil, err
	}
	var ms MappingSet
	if err := s.c.do(ctx, s.scope, call{op: OpUpdateMappingSet, api: DataPrepPath, method: http.MethodPut, path: item(pathMappingSets, id), body: in, idempotent: true}, &ms); err != nil {
		return nil, fmt.Errorf("update mapping set %s: %w", id, err)
	}
	return &ms, nil
}

// ListRuns lists a flow's runs (GET /runs?property=flowId=={id}).
func (s *Session) ListRuns(ctx context.Context, flowID string) ([]Run, error) {
	if err := requireID("list runs", flowID); err != nil {
		return nil, err
	}
	runs, err := list[Run](ctx, s.c, s.scope, OpListRuns, pathRuns, []string{"flowId==" + flowID})
	if err != nil {
		return nil, fmt.Errorf("list runs of flow %s: %w", flowID, err)
	}
	return runs, nil
}
