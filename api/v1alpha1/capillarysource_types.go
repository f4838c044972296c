package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultConnectionSpecID is the connection spec Adobe prints for the
// Capillary Streaming Events source.
const DefaultConnectionSpecID = "6360f136-5980-4111-8bdf-15d29eab3b5a"

// DeletionPolicy says what happens to the Adobe objects when the
// CapillarySource is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete removes the dataflow and the connections from Adobe.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the Adobe objects in place.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// InletAuthentication is how posts to a streaming inlet authenticate.
type InletAuthentication string

const (
	InletAuthenticationNone   InletAuthentication = "None"
	InletAuthenticationOAuth2 InletAuthentication = "OAuth2"
	InletAuthenticationHMAC   InletAuthentication = "HMAC"
)

// CapillarySourceSpec declares a Capillary Streaming Events source in Adobe
// Experience Platform: the credentials to act with, where the events land, how
// they are mapped, and whether the dataflow runs.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.connectionSpecId) || (has(self.connectionSpecId) && self.connectionSpecId == oldSelf.connectionSpecId)",message="connectionSpecId is immutable: create a new CapillarySource to use another connection spec"
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef) != has(self.clusterCredentialRef)",message="set exactly one of credentialsSecretRef (a Secret in this namespace) and clusterCredentialRef (a ClusterAdobeCredential)"
type CapillarySourceSpec struct {
	// credentialsSecretRef names the Secret, in the namespace of this
	// CapillarySource, that holds the Adobe OAuth server-to-server credential
	// (client ID and client secret) from the Adobe Developer Console.
	// Exactly one of credentialsSecretRef and clusterCredentialRef is set.
	// +optional
	CredentialsSecretRef CredentialsSecretReference `json:"credentialsSecretRef,omitzero"`

	// clusterCredentialRef names a ClusterAdobeCredential the platform team
	// shares with this namespace, instead of a Secret of its own. Exactly one
	// of credentialsSecretRef and clusterCredentialRef is set.
	// +optional
	ClusterCredentialRef *ClusterCredentialReference `json:"clusterCredentialRef,omitempty"`

	// managementPolicy says what the operator may do in Adobe: Full
	// (create, update and delete, the default) or ObserveOnly (read and
	// report, never write: with the adopt annotation it observes that
	// dataflow; deleting the resource never deletes in Adobe, whatever
	// deletionPolicy says). Switching to Full takes ownership as adoption does.
	// +optional
	// +kubebuilder:default=Full
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`

	// driftPolicy says what happens when the Adobe objects are changed
	// outside the operator: Correct (the default) puts them back as
	// declared; Report leaves them and lists the differences in the Drifted
	// condition. A change of this spec is applied either way.
	// +optional
	// +kubebuilder:default=Correct
	DriftPolicy DriftPolicy `json:"driftPolicy,omitempty"`

	// writeConnectionDetailsTo names a ConfigMap in this namespace that the
	// operator keeps with what a sender needs (inletUrl, dataflowId,
	// sourceConnectionId, orgId, sandboxName, inletAuthentication; never a
	// secret). It is owned by this resource and removed with it; an existing
	// ConfigMap this resource does not own is never overwritten.
	// +optional
	WriteConnectionDetailsTo *ConnectionDetailsReference `json:"writeConnectionDetailsTo,omitempty"`

	// orgId is the Adobe organisation ID, for example
	// 0A7D42FC5DB9D3360A495FD3@AdobeOrg. It cannot be changed: the Adobe objects
	// live in that organisation.
	// +required
	// +kubebuilder:validation:MinLength=10
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]+@AdobeOrg$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="orgId is immutable: create a new CapillarySource for another organisation"
	OrgID string `json:"orgId"`

	// sandboxName is the Experience Platform sandbox, the all-lowercase name
	// (not its title). It cannot be changed: the Adobe objects live in that
	// sandbox.
	// +optional
	// +kubebuilder:default=prod
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sandboxName is immutable: create a new CapillarySource for another sandbox"
	SandboxName string `json:"sandboxName,omitempty"`

	// connectionSpecId is the Flow Service connection spec of the Capillary
	// Streaming Events source. The operator checks it with
	// GET /connectionSpecs/{id} and uses the flow spec whose
	// sourceConnectionSpecIds holds it. It cannot be changed.
	// +optional
	// +kubebuilder:default="6360f136-5980-4111-8bdf-15d29eab3b5a"
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	ConnectionSpecID string `json:"connectionSpecId,omitempty"`

	// target is the dataset the dataflow writes to, and its XDM schema. It
	// cannot be changed: Adobe advises a new source connection, target
	// connection and dataflow rather than editing connections in place, so
	// create a new CapillarySource (and delete this one) to move the data.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="target is immutable: create a new CapillarySource to write to another dataset"
	Target Target `json:"target"`

	// mappings map attributes of Capillary's events onto XDM paths of the
	// target schema, as a Data Prep mapping set. Empty means no mapping set:
	// the events must already be XDM. Changes update the mapping set and the
	// dataflow in place.
	// +optional
	// +listType=map
	// +listMapKey=destinationXdmPath
	// +kubebuilder:validation:MaxItems=500
	Mappings []Mapping `json:"mappings,omitempty"`

	// suspend disables the dataflow in Adobe while true; events sent to the
	// inlet are not ingested. Setting it back to false enables the dataflow.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// deletionPolicy says what happens to the Adobe objects when this resource
	// is deleted: Delete removes the dataflow and both connections (mapping sets
	// have no delete API and stay); Orphan leaves everything in Adobe.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// dataflow sets the dataflow's options, as the flow spec's optionSpec
	// offers them. A change is patched into the dataflow in place.
	// +optional
	Dataflow *DataflowOptions `json:"dataflow,omitempty"`

	// ingestion says when ingestion counts as healthy.
	// +optional
	Ingestion *IngestionPolicy `json:"ingestion,omitempty"`
}

// ManagementPolicy says what the operator may do in Adobe.
// +kubebuilder:validation:Enum=Full;ObserveOnly
type ManagementPolicy string

const (
	ManagementPolicyFull        ManagementPolicy = "Full"
	ManagementPolicyObserveOnly ManagementPolicy = "ObserveOnly"
)

// DriftPolicy says what happens to changes made in Adobe outside the operator.
// +kubebuilder:validation:Enum=Correct;Report
type DriftPolicy string

const (
	DriftPolicyCorrect DriftPolicy = "Correct"
	DriftPolicyReport  DriftPolicy = "Report"
)

// ClusterCredentialReference names a ClusterAdobeCredential.
type ClusterCredentialReference struct {
	// name of the ClusterAdobeCredential.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ConnectionDetailsReference names the ConfigMap the connection details go to.
type ConnectionDetailsReference struct {
	// name of the ConfigMap, in the namespace of the CapillarySource.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// IngestionPolicy says when the IngestionHealthy condition is True.
type IngestionPolicy struct {
	// maxFailedRecordsPercent is the share of a run's records that may fail
	// while ingestion still counts as healthy (0: none may fail).
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxFailedRecordsPercent int32 `json:"maxFailedRecordsPercent,omitempty"`
}

// Ingestion is what Adobe reports of the dataflow's latest run.
type Ingestion struct {
	// lastRunId is the latest run of the dataflow.
	// +optional
	LastRunID string `json:"lastRunId,omitempty"`
	// lastRunState is its state as Adobe reports it (success, failed, ...).
	// +optional
	LastRunState string `json:"lastRunState,omitempty"`
	// lastRunStartedAt is when it started.
	// +optional
	LastRunStartedAt *metav1.MicroTime `json:"lastRunStartedAt,omitempty"`
	// lastRunCompletedAt is when it completed; a streaming run stays open
	// for about an hour and this moves while records arrive (to the
	// millisecond Adobe reports, so a move within a second is seen).
	// +optional
	LastRunCompletedAt *metav1.MicroTime `json:"lastRunCompletedAt,omitempty"`
	// recordsReceived is the run's input record count.
	// +optional
	RecordsReceived int64 `json:"recordsReceived,omitempty"`
	// recordsIngested is the run's output record count.
	// +optional
	RecordsIngested int64 `json:"recordsIngested,omitempty"`
	// recordsFailed is the run's failed record count.
	// +optional
	RecordsFailed int64 `json:"recordsFailed,omitempty"`
	// recordsWithWarnings is the run's warning record count.
	// +optional
	RecordsWithWarnings int64 `json:"recordsWithWarnings,omitempty"`
	// errors are the run's most frequent errors, at most five.
	// +optional
	// +kubebuilder:validation:MaxItems=5
	Errors []IngestionError `json:"errors,omitempty"`
}

// IngestionError is one error of a run.
type IngestionError struct {
	// code is Adobe's error code, e.g. MAPPER-3700-400.
	Code string `json:"code"`
	// message is Adobe's message for it.
	// +optional
	Message string `json:"message,omitempty"`
	// count is how many records failed with it, where Adobe says.
	// +optional
	Count int64 `json:"count,omitempty"`
}

// DataflowOptions are the options of the GenericStreamingAEP flow spec.
type DataflowOptions struct {
	// errorDiagnosticsEnabled keeps Adobe's error diagnostics for records
	// that fail ingestion, for download and inspection.
	// +optional
	ErrorDiagnosticsEnabled bool `json:"errorDiagnosticsEnabled,omitempty"`

	// partialIngestionPercent lets a run ingest while at most this percentage
	// of its records fail (1-100). Absent: the option is not sent, and any
	// failed record fails the batch.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	PartialIngestionPercent *int32 `json:"partialIngestionPercent,omitempty"`
}

// CredentialsSecretReference names a Secret in the same namespace and the keys
// in it that hold the Adobe credential.
// +kubebuilder:validation:XValidation:rule="self.clientIdKey != self.clientSecretKey",message="clientIdKey and clientSecretKey must name different keys"
type CredentialsSecretReference struct {
	// name of the Secret: in the namespace of the CapillarySource, or for a
	// ClusterAdobeCredential in the operator's credentials namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// clientIdKey is the key of the OAuth client ID (the API key) in the Secret.
	// +optional
	// +kubebuilder:default=clientId
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	ClientIDKey string `json:"clientIdKey,omitempty"`

	// clientSecretKey is the key of the OAuth client secret in the Secret.
	// +optional
	// +kubebuilder:default=clientSecret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	ClientSecretKey string `json:"clientSecretKey,omitempty"`

	// authParamKeys maps params of the connection spec's authSpec to keys of
	// the Secret, for params stored under another name. A param not listed
	// comes from the key of its own name; one the Secret lacks takes its
	// const or default from the authSpec, if it has one. Used only when the
	// connection spec asks for a base connection.
	// +optional
	// +listType=map
	// +listMapKey=param
	// +kubebuilder:validation:MaxItems=64
	AuthParamKeys []AuthParamKey `json:"authParamKeys,omitempty"`
}

// AuthParamKey names the Secret key that holds one authSpec param.
type AuthParamKey struct {
	// param is the name of the param in the authSpec's schema.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Param string `json:"param"`

	// key is the key of the Secret that holds it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ParamKeys is authParamKeys as a map from param to key.
func (r CredentialsSecretReference) ParamKeys() map[string]string {
	out := make(map[string]string, len(r.AuthParamKeys))
	for _, k := range r.AuthParamKeys {
		out[k.Param] = k.Key
	}
	return out
}

// Target is the Experience Platform dataset that receives the events.
type Target struct {
	// datasetId is the ID of the dataset the dataflow writes to, as Catalog
	// Service shows it (for example 6889f4f89b982b2b90bc1207). The dataset
	// must exist and use the schema below.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	DatasetID string `json:"datasetId"`

	// schemaId is the XDM schema $id of that dataset, for example
	// https://ns.adobe.com/{TENANT_ID}/schemas/52b59140414aa6a370ef5e21155fd7a686744b8739ecc168.
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https://ns\.adobe\.com/\S+$`
	SchemaID string `json:"schemaId"`

	// schemaVersion is the content type of the schema version.
	// +optional
	// +kubebuilder:default="application/vnd.adobe.xed-full+json;version=1"
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^application/vnd\.adobe\.xed(-full)?\+json(;version=[0-9.]+)?$`
	SchemaVersion string `json:"schemaVersion,omitempty"`
}

// Mapping maps one attribute of Capillary's events onto one XDM path.
type Mapping struct {
	// sourceAttribute is the attribute of the incoming event, for example
	// loyalty.points.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	SourceAttribute string `json:"sourceAttribute"`

	// destinationXdmPath is the XDM path it lands on, for example
	// loyalty.points or identityMap.email[0].id. Each path appears once.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	DestinationXdmPath string `json:"destinationXdmPath"`

	// identity marks the destination as an identity field.
	// +optional
	Identity bool `json:"identity,omitempty"`
}

// CapillarySourceStatus reports what the operator did and what it saw in Adobe.
type CapillarySourceStatus struct {
	// observedGeneration is the generation last handled in full (to Ready or to
	// a terminal failure). It is -1 until the controller first handles the
	// resource, so tools read a new resource as in progress.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready summarises; Reconciling and Stalled follow kstatus;
	// CredentialsReady, SourceConnectionReady, TargetConnectionReady,
	// MappingReady and DataflowReady say where the chain stands.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// sourceConnectionId is the Flow Service source connection this resource owns.
	// +optional
	SourceConnectionID string `json:"sourceConnectionId,omitempty"`

	// targetConnectionId is the Flow Service target connection this resource owns.
	// +optional
	TargetConnectionID string `json:"targetConnectionId,omitempty"`

	// mappingSetId is the Data Prep mapping set the dataflow uses, if any.
	// +optional
	MappingSetID string `json:"mappingSetId,omitempty"`

	// mappingSetVersion is the version of that mapping set the dataflow uses.
	// +optional
	MappingSetVersion int64 `json:"mappingSetVersion,omitempty"`

	// dataflowId is the Flow Service dataflow this resource owns.
	// +optional
	DataflowID string `json:"dataflowId,omitempty"`

	// flowSpecId is the flow spec the dataflow was created with.
	// +optional
	FlowSpecID string `json:"flowSpecId,omitempty"`

	// inletUrl is the streaming endpoint Capillary sends events to.
	// +optional
	InletURL string `json:"inletUrl,omitempty"`

	// dataflowState is the dataflow's state as Adobe reports it: enabled or disabled.
	// +optional
	DataflowState string `json:"dataflowState,omitempty"`

	// lastHandledReconcileAt is the last value of the
	// sources.aepoperator.dev/reconcile-requested-at annotation that was handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// failures counts the transient failures in a row; it sets the retry backoff
	// and survives a restart of the operator. A spec change resets it.
	// +optional
	Failures int32 `json:"failures,omitempty"`

	// lastFailureTime is when the last failure counted in failures happened.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastSyncTime is when a reconcile last changed the Adobe objects or this
	// status and left everything as declared. A resync that finds nothing to
	// change leaves it alone, so steady state costs no write.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// baseConnectionId is the base connection this resource owns, when the
	// connection spec's authSpec asks for one.
	// +optional
	BaseConnectionID string `json:"baseConnectionId,omitempty"`

	// baseConnectionSecretVersion is the resourceVersion of the Secret the
	// base connection's params were last sent from; when the Secret changes,
	// they are sent again. Nothing derived from the Secret's data is kept.
	// +optional
	BaseConnectionSecretVersion string `json:"baseConnectionSecretVersion,omitempty"`

	// inletAuthentication is how Capillary must authenticate its posts to
	// inletUrl, as the connection spec says: None, OAuth2 (a bearer token
	// from Adobe IMS for the same credential) or HMAC (a signature of each
	// body with the shared secret).
	// +optional
	// +kubebuilder:validation:Enum=None;OAuth2;HMAC
	InletAuthentication InletAuthentication `json:"inletAuthentication,omitempty"`

	// ingestion is what Adobe reports of the dataflow's latest run.
	// +optional
	Ingestion *Ingestion `json:"ingestion,omitempty"`

	// inletReadyAt is when the inlet accepts traffic: the dataflow's
	// creation as Adobe reports it, plus the warm-up Adobe documents for a
	// new streaming dataflow (--inlet-warmup).
	// +optional
	InletReadyAt *metav1.Time `json:"inletReadyAt,omitempty"`

	// mappingAppliesAt is when the latest mapping change applies to the
	// events the inlet receives (the change, plus the warm-up); the source
	// stays Ready meanwhile, since the inlet keeps accepting.
	// +optional
	MappingAppliesAt *metav1.Time `json:"mappingAppliesAt,omitempty"`

	// createStartedAt is when the operator was first about to create an Adobe
	// object for this resource. From then on, an object whose ID is not in
	// status may still exist in Adobe (a create whose answer was lost), so it
	// is looked up by name before it is created again; before then nothing
	// can exist, and the resource is deleted without asking Adobe.
	// +optional
	CreateStartedAt *metav1.Time `json:"createStartedAt,omitempty"`
}

// CapillarySource connects Capillary's loyalty and transaction events to Adobe
// Experience Platform: a streaming source connection, a data lake target
// connection, an optional Data Prep mapping set and a dataflow, kept as declared.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=capsrc,categories=aep
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Dataflow",type=string,JSONPath=`.status.dataflowId`
// +kubebuilder:printcolumn:name="Inlet",type=string,JSONPath=`.status.inletUrl`,priority=1
// +kubebuilder:printcolumn:name="Ingested",type=integer,JSONPath=`.status.ingestion.recordsIngested`,priority=1
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.ingestion.recordsFailed`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CapillarySource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the source.
	// +required
	Spec CapillarySourceSpec `json:"spec"`

	// status reports what the operator did.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status CapillarySourceStatus `json:"status,omitempty"`
}

// CapillarySourceList is a list of CapillarySources.
// +kubebuilder:object:root=true
type CapillarySourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CapillarySource `json:"items"`
}
