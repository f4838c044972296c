package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
)

func TestCredentials(t *testing.T) {
	source := func(ref v1alpha1.CredentialsSecretReference) *v1alpha1.CapillarySource {
		return &v1alpha1.CapillarySource{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: v1alpha1.CapillarySourceSpec{CredentialsSecretRef: ref}}
	}
	secret := func(stringData map[string]string, data map[string][]byte) map[string]*corev1.Secret {
		return map[string]*corev1.Secret{"adobe": {ObjectMeta: metav1.ObjectMeta{Name: "adobe"}, StringData: stringData, Data: data}}
	}
	tests := []struct {
		name    string
		source  *v1alpha1.CapillarySource
		secrets map[string]*corev1.Secret
		want    map[string]string
		wantErr bool
	}{
		{
			name:    "stringData with default keys",
			source:  source(v1alpha1.CredentialsSecretReference{Name: "adobe"}),
			secrets: secret(map[string]string{"clientId": "id", "clientSecret": "sec"}, nil),
			want:    map[string]string{"id": "sec"},
		},
		{
			name:    "data with custom keys",
			source:  source(v1alpha1.CredentialsSecretReference{Name: "adobe", ClientIDKey: "cid", ClientSecretKey: "csec"}),
			secrets: secret(nil, map[string][]byte{"cid": []byte("id"), "csec": []byte("sec")}),
			want:    map[string]string{"id": "sec"},
		},
		{
			name:    "missing key",
			source:  source(v1alpha1.CredentialsSecretReference{Name: "adobe"}),
			secrets: secret(map[string]string{"clientId": "id"}, nil),
			wantErr: true,
		},
		{
			name:    "Secret not among the samples",
			source:  source(v1alpha1.CredentialsSecretReference{Name: "other"}),
			secrets: secret(map[string]string{"clientId": "id", "clientSecret": "sec"}, nil),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &samples{sources: []*v1alpha1.CapillarySource{tt.source}, secrets: tt.secrets}
			got, err := s.credentials()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

// The shipped samples render, pair every source with its Secret, and put the
// Secret first so the operator never sees a source without its credentials.
func TestShippedSamples(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadSamples(root + "/config/samples")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := s.credentials()
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) == 0 {
		t.Fatal("the samples yield no credential")
	}
	seenSource := false
	for _, o := range s.objects {
		switch o.GetKind() {
		case "CapillarySource":
			seenSource = true
		case "Secret":
			if seenSource {
				t.Errorf("Secret %s comes after a CapillarySource", o.GetName())
			}
		}
	}
}
