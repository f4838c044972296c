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
)
