package flowservice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Well-known IDs (aep-api.md §0).
const (
	// DataLakeConnectionSpecID is the target connection spec for the data lake.
	DataLakeConnectionSpecID = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
	// StreamingProviderID is the provider of Streaming-SDK sources.
	StreamingProviderID = "521eee4d-8cbe-4906-bb48-fb6bd4450033"
	// DefaultSpecVersion is the version every spec reference uses today.
	DefaultSpecVersion = "1.0"
	// XDMFullContentType is the content type of a full XDM schema reference.
	XDMFullContentType = "application/vnd.adobe.xed-full+json;version=1"
)

// SpecRef points at a connection or flow spec. Adobe requires both fields
// when creating connections (SpecInfoDTO).
type SpecRef struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
}

// Ref is what create, PATCH and action calls answer: the object's ID and its
// new etag, quotes included, exactly as If-Match wants it back.
type Ref struct {
	ID   string `json:"id"`
	ETag string `json:"etag"`
}

// Text is a display string that Adobe sends either as a plain string or as an
// object such as {"key": "..."} or {"text": "..."} (Streaming-SDK specs).
// Unknown shapes decode to "" rather than failing the whole response.
type Text string

// UnmarshalJSON accepts a string or an object with a text, key or value field.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
		return nil
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err == nil {
		for _, k := range []string{"text", "label", "key", "value"} {
			if s, ok := obj[k].(string); ok && s != "" {
				*t = Text(s)
				return nil
			}
		}
	}
	*t = ""
	return nil
}

// ConnectionSpec describes a source type (GET /connectionSpecs/{id}).
type ConnectionSpec struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name,omitempty"`
	ProviderID string                   `json:"providerId,omitempty"`
	Version    string                   `json:"version,omitempty"`
	Attributes ConnectionSpecAttributes `json:"attributes"`
	// AuthSpec lists the ways to authenticate a base connection; empty for
	// Streaming-SDK sources, which need no base connection.
	AuthSpec   []AuthSpec  `json:"authSpec,omitempty"`
	SourceSpec *SourceSpec `json:"sourceSpec,omitempty"`
}

// ConnectionSpecAttributes are the spec's catalogue attributes.
type ConnectionSpecAttributes struct {
	Category      Text `json:"category,omitempty"`
	ConnectorName Text `json:"connectorName,omitempty"`
	IsSource      bool `json:"isSource,omitempty"`
}

// AuthSpec is one authentication method of a connection spec.
type AuthSpec struct {
	Name string          `json:"name,omitempty"`
	Type string          `json:"type,omitempty"`
	Spec json.RawMessage `json:"spec,omitempty"`
}

// SourceSpec holds a connection spec's source attributes.
type SourceSpec struct {
	Name       string               `json:"name,omitempty"`
	Type       string               `json:"type,omitempty"`
	Attributes SourceSpecAttributes `json:"attributes"`
	Spec       json.RawMessage      `json:"spec,omitempty"`
}

// SourceSpecAttributes wraps the UI attributes.
type SourceSpecAttributes struct {
	UIAttributes UIAttributes `json:"uiAttributes"`
	// AuthRequired says whether the source's inlet requires authentication
	// (Streaming SDK specs, sources-sdk/streaming); nil when not said.
	AuthRequired *bool `json:"authRequired,omitempty"`
}

// UIAttributes are what the sources catalogue shows; Label is how a
// Streaming-SDK source such as Capillary is told apart (every one of them is
// named generic-streaming).
type UIAttributes struct {
	IsSource    bool `json:"isSource,omitempty"`
	IsBeta      bool `json:"isBeta,omitempty"`
	Category    Text `json:"category,omitempty"`
	Label       Text `json:"label,omitempty"`
	Description Text `json:"description,omitempty"`
}

// FlowSpec describes a kind of dataflow (GET /flowSpecs/{id}).
type FlowSpec struct {
	ID                      string   `json:"id"`
	Name                    string   `json:"name,omitempty"`
	ProviderID              string   `json:"providerId,omitempty"`
	Version                 string   `json:"version,omitempty"`
	SourceConnectionSpecIDs []string `json:"sourceConnectionSpecIds,omitempty"`
	TargetConnectionSpecIDs []string `json:"targetConnectionSpecIds,omitempty"`
	// OptionSpec is the JSON schema of the dataflow options the flow spec
	// offers (GenericStreamingAEP: error diagnostics, partial ingestion).
	OptionSpec json.RawMessage `json:"optionSpec,omitempty"`
}

// ConnectionInput is the body of POST /connections: a base connection.
type ConnectionInput struct {
	Name           string  `json:"name"`
	Description    string  `json:"description,omitempty"`
	Auth           Auth    `json:"auth"`
	ConnectionSpec SpecRef `json:"connectionSpec"`
}

// Auth names the authSpec a base connection follows and carries its params.
type Auth struct {
	SpecName string         `json:"specName"`
	Params   map[string]any `json:"params"`
}

// Connection is a base connection as Adobe reports it. Adobe masks secret
// params in answers, so Params never says what was sent.
type Connection struct {
	ID             string  `json:"id"`
	Name           string  `json:"name,omitempty"`
	Description    string  `json:"description,omitempty"`
	Auth           *Auth   `json:"auth,omitempty"`
	ConnectionSpec SpecRef `json:"connectionSpec"`
	State          string  `json:"state,omitempty"`
	ETag           string  `json:"etag,omitempty"`
}

// SourceConnectionInput is the body of POST /sourceConnections.
type SourceConnectionInput struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// ProviderID is sent by Streaming-SDK sources (SSDK-API).
	ProviderID       string         `json:"providerId,omitempty"`
	BaseConnectionID string         `json:"baseConnectionId,omitempty"`
	ConnectionSpec   SpecRef        `json:"connectionSpec"`
	Data             SourceData     `json:"data"`
	Params           map[string]any `json:"params,omitempty"`
}

// SourceData is a source connection's data format ("json" for streaming).
type SourceData struct {
	Format string `json:"format,omitempty"`
}

// SourceConnection is a source connection as Adobe reports it.
type SourceConnection struct {
	ID               string         `json:"id"`
	Name             string         `json:"name,omitempty"`
	Description      string         `json:"description,omitempty"`
	BaseConnectionID string         `json:"baseConnectionId,omitempty"`
	ProviderRefID    string         `json:"providerRefId,omitempty"`
	ConnectionSpec   SpecRef        `json:"connectionSpec"`
	Data             SourceData     `json:"data"`
	Params           map[string]any `json:"params,omitempty"`
	State            string         `json:"state,omitempty"`
	ETag             string         `json:"etag,omitempty"`
	CreatedAt        int64          `json:"createdAt,omitempty"`
	UpdatedAt        int64          `json:"updatedAt,omitempty"`
	SandboxName      string         `json:"sandboxName,omitempty"`
	IMSOrgID         string         `json:"imsOrgId,omitempty"`
}

// TargetConnectionInput is the body of POST /targetConnections.
type TargetConnectionInput struct {
	Name           string       `json:"name,omitempty"`
	Description    string       `json:"description,omitempty"`
	ConnectionSpec SpecRef      `json:"connectionSpec"`
	Data           TargetData   `json:"data"`
	Params         TargetParams `json:"params"`
}

// TargetData names the format and XDM schema written to.
type TargetData struct {
	Format string     `json:"format,omitempty"`
	Schema *SchemaRef `json:"schema,omitempty"`
}

// SchemaRef is an XDM schema $id and content-type version.
type SchemaRef struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
}

// TargetParams names the dataset written to.
type TargetParams struct {
	DataSetID string `json:"dataSetId,omitempty"`
}

// TargetConnection is a target connection as Adobe reports it.
type TargetConnection struct {
	ID             string       `json:"id"`
	Name           string       `json:"name,omitempty"`
	Description    string       `json:"description,omitempty"`
	ConnectionSpec SpecRef      `json:"connectionSpec"`
	Data           TargetData   `json:"data"`
	Params         TargetParams `json:"params"`
	State          string       `json:"state,omitempty"`
	ETag           string       `json:"etag,omitempty"`
	CreatedAt      int64        `json:"createdAt,omitempty"`
	UpdatedAt      int64        `json:"updatedAt,omitempty"`
	SandboxName    string       `json:"sandboxName,omitempty"`
	IMSOrgID       string       `json:"imsOrgId,omitempty"`
}

// FlowInput is the body of POST /flows. State is not part of it: Adobe
// refuses a state on create (FLOW-1410-400).
type FlowInput struct {
	Name                string           `json:"name"`
	Description         string           `json:"description,omitempty"`
	FlowSpec            SpecRef          `json:"flowSpec"`
	SourceConnectionIDs []string         `json:"sourceConnectionIds"`
	TargetConnectionIDs []string         `json:"targetConnectionIds"`
	Transformations     []Transformation `json:"transformations,omitempty"`
	// Options are sent as the flow spec's optionSpec describes them
	// (flow-service.yaml's create-flow schema has no options field).
	Options map[string]any `json:"options,omitempty"`
}

// Transformation is one step of a dataflow; Name is "Mapping" for Data Prep.
type Transformation struct {
	Name   string               `json:"name"`
	Params TransformationParams `json:"params"`
}

// TransformationMapping is the name Adobe requires on a mapping transformation.
const TransformationMapping = "Mapping"

// TransformationParams points at a mapping set version.
type TransformationParams struct {
	MappingID      string `json:"mappingId,omitempty"`
	MappingVersion int    `json:"mappingVersion"`
}

// UnmarshalJSON accepts mappingVersion as a number (Adobe's examples) or a
// numeric string (Adobe's spec).
func (p *TransformationParams) UnmarshalJSON(b []byte) error {
	var raw struct {
		MappingID      string          `json:"mappingId"`
		MappingVersion json.RawMessage `json:"mappingVersion"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	p.MappingID = raw.MappingID
	p.MappingVersion = 0
	v := bytes.TrimSpace(raw.MappingVersion)
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("mappingVersion %q is not a number", s)
		}
		p.MappingVersion = n
		return nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return fmt.Errorf("mappingVersion: %w", err)
	}
	p.MappingVersion = int(f)
	return nil
}

// Flow is a dataflow as Adobe reports it (GET /flows/{id}).
type Flow struct {
	ID                  string           `json:"id"`
	Name                string           `json:"name,omitempty"`
	Description         string           `json:"description,omitempty"`
	FlowSpec            SpecRef          `json:"flowSpec"`
	State               string           `json:"state,omitempty"`
	ETag                string           `json:"etag,omitempty"`
	SourceConnectionIDs []string         `json:"sourceConnectionIds,omitempty"`
	TargetConnectionIDs []string         `json:"targetConnectionIds,omitempty"`
	Transformations     []Transformation `json:"transformations,omitempty"`
	Options             FlowOptions      `json:"options"`
	LastOperation       *LastOperation   `json:"lastOperation,omitempty"`
	// LastRunDetails is the flow's latest run (flow-service.yaml, FlowItemDTO):
	// what a resync's GET /flows/{id} says of ingestion without another call.
	LastRunDetails *RunDetails `json:"lastRunDetails,omitempty"`
	CreatedAt      int64       `json:"createdAt,omitempty"`
	UpdatedAt      int64       `json:"updatedAt,omitempty"`
	SandboxName    string      `json:"sandboxName,omitempty"`
	IMSOrgID       string      `json:"imsOrgId,omitempty"`
}

// Flow states Adobe reports.
const (
	StateEnabled  = "enabled"
	StateDisabled = "disabled"
)

// FlowOptions carries the streaming endpoint of a Streaming-SDK dataflow.
type FlowOptions struct {
	InletURL                string   `json:"inletUrl,omitempty"`
	ErrorDiagnosticsEnabled bool     `json:"errorDiagnosticsEnabled,omitempty"`
	PartialIngestionPercent *float64 `json:"partialIngestionPercent,omitempty"`
}

// LastOperation is the last state change Adobe applied to a flow.
type LastOperation struct {
	Operation string `json:"operation,omitempty"`
}

// PatchOp is one RFC 6902 operation of a PATCH body.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// JSON Patch operations, lowercase as in Adobe's examples and RFC 6902.
const (
	PatchAdd     = "add"
	PatchReplace = "replace"
	PatchRemove  = "remove"
)

// Action is a flow state transition (POST /flows/{id}/action?op=...).
type Action string

// Flow actions, lowercase as in Adobe's examples.
const (
	ActionEnable  Action = "enable"
	ActionDisable Action = "disable"
)

// MappingSet is a Data Prep mapping set, in the field names of data-prep.yaml.
// On create and update set OutputSchema (and leave ID and Version to Adobe);
// Adobe reports XDMSchema and XDMVersion back as well.
type MappingSet struct {
	ID           string        `json:"id,omitempty"`
	Version      int           `json:"version"`
	Name         string        `json:"name,omitempty"`
	OutputSchema *OutputSchema `json:"outputSchema,omitempty"`
	XDMSchema    string        `json:"xdmSchema,omitempty"`
	XDMVersion   string        `json:"xdmVersion,omitempty"`
	Mappings     []Mapping     `json:"mappings"`
}

// OutputSchema names the XDM schema a mapping set writes.
type OutputSchema struct {
	SchemaRef XDMSchemaRef `json:"schemaRef"`
}

// XDMSchemaRef is data-prep.yaml's SchemaReference.
type XDMSchemaRef struct {
	ID          string `json:"id"`
	ContentType string `json:"contentType,omitempty"`
}

// SourceTypeAttribute maps a source attribute as is.
const SourceTypeAttribute = "ATTRIBUTE"

// Mapping is one mapping of a mapping set (data-prep.yaml MappingOperation).
type Mapping struct {
	ID          string `json:"id,omitempty"`
	SourceType  string `json:"sourceType,omitempty"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Identity marks the destination as an identity field; Adobe's mapping
	// examples carry it although the spec's MappingOperation does not list it.
	Identity    bool   `json:"identity,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// UnmarshalJSON also accepts the sourceAttribute/destinationXdmPath names some
// Data Prep answers use instead of source/destination.
func (m *Mapping) UnmarshalJSON(b []byte) error {
	type plain Mapping
	var raw struct {
		plain
		SourceAttribute    string `json:"sourceAttribute"`
		DestinationXDMPath string `json:"destinationXdmPath"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = Mapping(raw.plain)
	if m.Source == "" {
		m.Source = raw.SourceAttribute
	}
	if m.Destination == "" {
		m.Destination = raw.DestinationXDMPath
	}
	return nil
}

// MappingSetRef is what creating a mapping set answers.
type MappingSetRef struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
}

// RunDetails is a flow's lastRunDetails; times are epoch milliseconds.
type RunDetails struct {
	ID             string `json:"id,omitempty"`
	State          string `json:"state,omitempty"`
	StartedAtUTC   int64  `json:"startedAtUTC,omitempty"`
	CompletedAtUTC int64  `json:"completedAtUTC,omitempty"`
}

// Run is one iteration of a flow (GET /runs; flow-service.yaml FlowRunItemDTO,
// help/sources/tutorials/api/monitor.md). A streaming run covers about an
// hour and its counts grow while it is open.
type Run struct {
	ID         string        `json:"id"`
	FlowID     string        `json:"flowId,omitempty"`
	Metrics    RunMetrics    `json:"metrics"`
	Activities []RunActivity `json:"activities,omitempty"`
}

// RunMetrics are a run's summaries.
type RunMetrics struct {
	DurationSummary DurationSummary `json:"durationSummary"`
	RecordSummary   RecordSummary   `json:"recordSummary"`
	StatusSummary   StatusSummary   `json:"statusSummary"`
}

// DurationSummary: epoch milliseconds.
type DurationSummary struct {
	StartedAtUTC   int64 `json:"startedAtUTC,omitempty"`
	CompletedAtUTC int64 `json:"completedAtUTC,omitempty"`
}

// RecordSummary counts a run's records (RecordSummaryDTO).
type RecordSummary struct {
	InputRecordCount   int64 `json:"inputRecordCount,omitempty"`
	OutputRecordCount  int64 `json:"outputRecordCount,omitempty"`
	CreatedRecordCount int64 `json:"createdRecordCount,omitempty"`
	FailedRecordCount  int64 `json:"failedRecordCount,omitempty"`
	WarningRecordCount int64 `json:"warningRecordCount,omitempty"`
	SkippedRecordCount int64 `json:"skippedRecordCount,omitempty"`
}

// StatusSummary is a run's or an activity's status and errors.
type StatusSummary struct {
	Status     string           `json:"status,omitempty"`
	Errors     []RunError       `json:"errors,omitempty"`
	Extensions *StatusExtension `json:"extensions,omitempty"`
}

// StatusExtension carries an activity's errors (monitor.md).
type StatusExtension struct {
	Errors []RunError `json:"errors,omitempty"`
}

// RunError is one error of a run, e.g. MAPPER-3700-400 or INGEST-1212-400.
type RunError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Count of records that failed with it, where Adobe gives one: an
	// activity's extensions carry it as recordCount (monitor.md).
	Count       int64 `json:"count,omitempty"`
	RecordCount int64 `json:"recordCount,omitempty"`
}

// Records is the count of records an error stands for, as Adobe gives it.
func (e RunError) Records() int64 { return max(e.Count, e.RecordCount) }

// RunActivity is one activity of a run, with its own status and errors.
type RunActivity struct {
	ID            string        `json:"id,omitempty"`
	Name          string        `json:"name,omitempty"`
	StatusSummary StatusSummary `json:"statusSummary"`
}
