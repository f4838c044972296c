// Package v1alpha1 contains the v1alpha1 API of the sources.aepoperator.dev group.
// +kubebuilder:object:generate=true
// +groupName=sources.aepoperator.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "sources.aepoperator.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme. It uses
	// apimachinery only, so the API package stays light to import.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &CapillarySource{}, &CapillarySourceList{},
		&ClusterAdobeCredential{}, &ClusterAdobeCredentialList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
