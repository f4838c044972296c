package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AdoptionPolicy says whether sources that use a ClusterAdobeCredential may
// adopt (or observe) dataflows they did not create.
// +kubebuilder:validation:Enum=Refused;Allowed
type AdoptionPolicy string

const (
	// AdoptionRefused: the adopt annotation is refused; a shared credential
	// reaches every dataflow of the org, other teams' included.
	AdoptionRefused AdoptionPolicy = "Refused"
	// AdoptionAllowed: the adopt annotation is honoured, except for a
	// dataflow that carries another CapillarySource's name.
	AdoptionAllowed AdoptionPolicy = "Allowed"
)

// ClusterAdobeCredentialSpec names an Adobe credential the platform team
// holds, and says who may act with it, where.
type ClusterAdobeCredentialSpec struct {
	// secretRef names the Secret, in the operator's credentials namespace
	// (--cluster-credentials-namespace), that holds the Adobe OAuth
	// server-to-server credential, and its keys. Sources never see it.
	// +required
	SecretRef CredentialsSecretReference `json:"secretRef"`

	// orgId is the Adobe organisation the credential may act in; a source
	// using it must name the same orgId.
	// +required
	// +kubebuilder:validation:MinLength=10
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]+@AdobeOrg$`
	OrgID string `json:"orgId"`

	// allowedSandboxes are the sandboxes sources may use it in. Absent or
	// empty: any sandbox of the org.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`
	AllowedSandboxes []string `json:"allowedSandboxes,omitempty"`

	// allowedNamespaces says which namespaces' sources may use it: the
	// namespaces listed in names, and those selector selects (a union). An
	// empty selector selects every namespace; neither names nor selector:
	// none.
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`

	// adoption says whether sources using it may adopt or observe a
	// dataflow they did not create (the adopt annotation). Refused by
	// default: the credential reaches every dataflow of the org.
	// +optional
	// +kubebuilder:default=Refused
	Adoption AdoptionPolicy `json:"adoption,omitempty"`
}

// AllowedNamespaces selects namespaces by name and by label.
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || !has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="selector.matchExpressions operators are In, NotIn, Exists and DoesNotExist"
type AllowedNamespaces struct {
	// names lists namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Names []string `json:"names,omitempty"`

	// selector selects namespaces by their labels; {} selects every namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ClusterAdobeCredentialStatus reports whether Adobe IMS accepts the
// credential and how many sources use it.
type ClusterAdobeCredentialStatus struct {
	// observedGeneration is the generation last handled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether Adobe IMS issues a token for the
	// credential (or, while it is being deleted, which sources still use it).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// sources is how many CapillarySources name this credential.
	// +optional
	Sources int32 `json:"sources"`
}

// ClusterAdobeCredential is an Adobe credential a platform team shares with
// the CapillarySources of the namespaces it allows, like cert-manager's
// ClusterIssuer: the Secret stays in the operator's credentials namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cac,categories=aep
// +kubebuilder:printcolumn:name="Org",type=string,JSONPath=`.spec.orgId`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Sources",type=integer,JSONPath=`.status.sources`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterAdobeCredential struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the credential and who may use it.
	// +required
	Spec ClusterAdobeCredentialSpec `json:"spec"`

	// status reports on it.
	// +optional
	Status ClusterAdobeCredentialStatus `json:"status,omitempty"`
}

// ClusterAdobeCredentialList is a list of ClusterAdobeCredentials.
// +kubebuilder:object:root=true
type ClusterAdobeCredentialList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterAdobeCredential `json:"items"`
}
