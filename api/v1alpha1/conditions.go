package v1alpha1

// Annotations and the finalizer the operator reads or writes.
const (
	// Finalizer holds the resource until the Adobe objects are cleaned up.
	Finalizer = "sources.aepoperator.dev/finalizer"

	// ReconcileRequestAnnotation forces a full check when its value changes;
	// the handled value is copied to status.lastHandledReconcileAt.
	ReconcileRequestAnnotation = "sources.aepoperator.dev/reconcile-requested-at"

	// AdoptDataflowAnnotation names an existing dataflow to take over, with its
	// source and target connections, when they match the spec.
	AdoptDataflowAnnotation = "sources.aepoperator.dev/adopt-dataflow-id"

	// ResyncIntervalAnnotation overrides --resync-interval for one resource
	// (a Go duration, at least 1m).
	ResyncIntervalAnnotation = "sources.aepoperator.dev/resync-interval"

	// CredentialFinalizer holds a ClusterAdobeCredential while sources use it.
	CredentialFinalizer = "sources.aepoperator.dev/credential-in-use"

	// ConnectionDetailsSourceLabel marks a connection-details ConfigMap with
	// the name of the CapillarySource that owns it; the operator caches only
	// ConfigMaps with this label.
	ConnectionDetailsSourceLabel = "sources.aepoperator.dev/source"
	// ConnectionDetailsHashAnnotation is a hash of the connection-details
	// ConfigMap's data, so a consumer can roll when it changes.
	ConnectionDetailsHashAnnotation = "sources.aepoperator.dev/connection-details-hash"
)

// Condition types.
const (
	// ConditionReady summarises: True when the dataflow exists as declared and
	// its inlet URL is known.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is working towards the spec.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot go on without a change
	// from the user (spec, Secret or Adobe permissions).
	ConditionStalled = "Stalled"

	ConditionCredentialsReady      = "CredentialsReady"
	ConditionBaseConnectionReady   = "BaseConnectionReady"
	ConditionSourceConnectionReady = "SourceConnectionReady"
	ConditionTargetConnectionReady = "TargetConnectionReady"
	ConditionMappingReady          = "MappingReady"
	ConditionDataflowReady         = "DataflowReady"
	// ConditionIngestionHealthy says whether Capillary's records land in the
	// dataset; it does not change Ready.
	ConditionIngestionHealthy = "IngestionHealthy"
	// ConditionDrifted lists what differs in Adobe from the declared state,
	// when driftPolicy is Report or managementPolicy ObserveOnly; it does
	// not change Ready.
	ConditionDrifted = "Drifted"
)

// Condition reasons.
const (
	ReasonSucceeded            = "Succeeded"
	ReasonProgressing          = "Progressing"
	ReasonProgressingWithRetry = "ProgressingWithRetry"
	ReasonSuspended            = "Suspended"
	ReasonDeleting             = "Deleting"

	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretKeyMissing       = "SecretKeyMissing"
	ReasonInvalidCredentials     = "InvalidCredentials"
	ReasonNotEntitled            = "NotEntitled"
	ReasonConnectionSpecNotFound = "ConnectionSpecNotFound"
	ReasonFlowSpecNotFound       = "FlowSpecNotFound"
	ReasonTargetRejected         = "TargetRejected"
	ReasonMappingRejected        = "MappingRejected"
	ReasonAdoptionMismatch       = "AdoptionMismatch"
	ReasonAdobeUnavailable       = "AdobeUnavailable"
	ReasonAdobeRejected          = "AdobeRejected"
	ReasonDeleteBlocked          = "DeleteBlocked"
	ReasonNotApplicable          = "NotApplicable"

	// ReasonReconcileTimeout: one reconcile ran out of --reconcile-timeout;
	// what it did is on record and the next pass goes on from there.
	ReasonReconcileTimeout = "ReconcileTimeout"
	// ReasonKubernetesAPIError: the Kubernetes API server failed a read or a
	// write the operator needed; not an Adobe failure.
	ReasonKubernetesAPIError = "KubernetesAPIError"

	// ReasonAuthSpecUnsupported: the connection spec's authSpec is of a kind
	// the operator cannot fill or does not know how the inlet authenticates.
	ReasonAuthSpecUnsupported = "AuthSpecUnsupported"
	// ReasonAuthParamsInvalid: the params filled from the Secret do not pass
	// the authSpec's schema (a value too short, of the wrong type...).
	ReasonAuthParamsInvalid = "AuthParamsInvalid"
	// ReasonDataflowOptionUnsupported: spec.dataflow asks for an option the
	// flow spec's optionSpec does not offer, or a value it does not allow.
	ReasonDataflowOptionUnsupported = "DataflowOptionUnsupported"

	// ReasonInletWarmingUp: the dataflow is new and its inlet does not accept
	// traffic yet (status.inletReadyAt says when it will).
	ReasonInletWarmingUp = "InletWarmingUp"
	// IngestionHealthy reasons.
	ReasonRecordsFailing   = "RecordsFailing"
	ReasonRecordsIngesting = "RecordsIngesting"
	ReasonNoRunsYet        = "NoRunsYet"
	ReasonRunsUnavailable  = "RunsUnavailable"

	// Platform teams: the ClusterAdobeCredential a source names.
	ReasonClusterCredentialNotFound = "ClusterCredentialNotFound"
	ReasonNamespaceNotAllowed       = "NamespaceNotAllowed"
	ReasonOrgNotAllowed             = "OrgNotAllowed"
	ReasonSandboxNotAllowed         = "SandboxNotAllowed"
	// ReasonAdoptionRefused: the source's ClusterAdobeCredential does not
	// allow adoption, or the dataflow belongs to another CapillarySource.
	ReasonAdoptionRefused = "AdoptionRefused"
	// ReasonInUse: a ClusterAdobeCredential being deleted is still named by sources.
	ReasonInUse = "InUse"

	// ObserveOnly: Ready reasons.
	ReasonObserving      = "Observing"
	ReasonNothingManaged = "NothingManaged"
	// ReasonNotFoundInAdobe: an object on record is gone from Adobe and the
	// policy (ObserveOnly, or driftPolicy Report) does not recreate it.
	ReasonNotFoundInAdobe = "NotFoundInAdobe"

	// Drifted reasons.
	ReasonDriftDetected = "DriftDetected"
	ReasonNoDrift       = "NoDrift"

	// ReasonConnectionDetailsConflict: the ConfigMap writeConnectionDetailsTo
	// names exists and is not this resource's.
	ReasonConnectionDetailsConflict = "ConnectionDetailsConflict"
)
