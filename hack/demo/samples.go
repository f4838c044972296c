package main

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// samples are the objects of config/samples, as `kubectl apply -k` would
// send them.
type samples struct {
	objects []*unstructured.Unstructured
	sources []*v1alpha1.CapillarySource
	secrets map[string]*corev1.Secret
}

// loadSamples renders the kustomization in dir. Secrets and other plain
// objects come before the CapillarySources that refer to them.
func loadSamples(dir string) (*samples, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	rm, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", dir, err)
	}
	s := &samples{secrets: map[string]*corev1.Secret{}}
	for _, r := range rm.Resources() {
		// Through JSON, so numbers are int64 as in any decoded object.
		data, err := r.MarshalJSON()
		u := &unstructured.Unstructured{}
		if err == nil {
			err = u.UnmarshalJSON(data)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		m := u.Object
		s.objects = append(s.objects, u)
		switch u.GroupVersionKind() {
		case corev1.SchemeGroupVersion.WithKind("Secret"):
			sec := &corev1.Secret{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, sec); err != nil {
				return nil, fmt.Errorf("read Secret %s: %w", u.GetName(), err)
			}
			s.secrets[sec.Name] = sec
		case v1alpha1.GroupVersion.WithKind("CapillarySource"):
			cs := &v1alpha1.CapillarySource{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, cs); err != nil {
				return nil, fmt.Errorf("read CapillarySource %s: %w", u.GetName(), err)
			}
			s.sources = append(s.sources, cs)
		}
	}
	if len(s.sources) == 0 {
		return nil, fmt.Errorf("%s holds no CapillarySource", dir)
	}
	return s, nil
}

// credentials are the client IDs and secrets the samples' CapillarySources
// use, so the emulator accepts exactly them.
func (s *samples) credentials() (map[string]string, error) {
	creds := map[string]string{}
	for _, cs := range s.sources {
		ref := cs.Spec.CredentialsSecretRef
		sec, ok := s.secrets[ref.Name]
		if !ok {
			return nil, fmt.Errorf("CapillarySource %s names Secret %q, which is not among the samples", cs.Name, ref.Name)
		}
		idKey, secretKey := ref.ClientIDKey, ref.ClientSecretKey
		if idKey == "" {
			idKey = "clientId"
		}
		if secretKey == "" {
			secretKey = "clientSecret"
		}
		id, err := secretValue(sec, idKey)
		if err != nil {
			return nil, err
		}
		secret, err := secretValue(sec, secretKey)
		if err != nil {
			return nil, err
		}
		creds[id] = secret
	}
	return creds, nil
}

func secretValue(sec *corev1.Secret, key string) (string, error) {
	if v, ok := sec.StringData[key]; ok {
		return v, nil
	}
	if v, ok := sec.Data[key]; ok {
		return string(v), nil
	}
	return "", fmt.Errorf("sample Secret %s has no key %q", sec.Name, key)
}
