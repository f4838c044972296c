package badinput_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

var credentialGVR = schema.GroupVersionResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: "clusteradobecredentials"}

// credentialAPICovered maps rules to the api/v1alpha1 case that refuses them.
var credentialAPICovered = map[string]string{
	"spec.orgId:minLength":                                "TestClusterAdobeCredentialValidation/orgId missing",
	"spec.orgId:pattern":                                  "TestClusterAdobeCredentialValidation/orgId without @AdobeOrg",
	"spec.secretRef.name:minLength":                       "TestClusterAdobeCredentialValidation/Secret name missing",
	"spec.secretRef:rule":                                 "TestClusterAdobeCredentialValidation/same key for id and secret",
	"spec.allowedSandboxes[]:pattern":                     "TestClusterAdobeCredentialValidation/sandbox with capitals",
	"spec.allowedNamespaces.names[]:pattern":              "TestClusterAdobeCredentialValidation/namespace not a name",
	"spec.allowedNamespaces:rule":                         "TestClusterAdobeCredentialValidation/selector with an unknown operator",
	"spec.adoption:enum":                                  "TestClusterAdobeCredentialValidation/unknown adoption",
	"spec.allowedSandboxes:x-kubernetes-list-type":        "TestClusterAdobeCredentialValidation/sandbox twice",
	"spec.secretRef.authParamKeys[].param:minLength":      "TestCRDValidationAtApply/authParamKeys param empty (the same type as credentialsSecretRef)",
	"spec.secretRef.authParamKeys[].param:maxLength":      "TestCRDValidationAtApply/authParamKeys param too long (the same type)",
	"spec.secretRef.authParamKeys[].param:pattern":        "TestCRDValidationAtApply/authParamKeys param with a space (the same type)",
	"spec.secretRef.authParamKeys[].key:minLength":        "TestCRDValidationAtApply/authParamKeys key empty (the same type)",
	"spec.secretRef.authParamKeys[].key:maxLength":        "TestCRDValidationAtApply/authParamKeys key too long (the same type)",
	"spec.secretRef.authParamKeys[].key:pattern":          "TestCRDValidationAtApply/authParamKeys key with a slash (the same type)",
	"spec.secretRef.authParamKeys[]:required:key":         "TestCRDValidationAtApply/authParamKeys without key (the same type)",
	"spec.secretRef.clientIdKey:maxLength":                "TestCRDValidationAtApply/clientIdKey too long (the same type)",
	"spec.secretRef.clientSecretKey:maxLength":            "TestCRDValidationAtApply/clientSecretKey too long (the same type)",
	"spec.secretRef.clientSecretKey:pattern":              "TestCRDValidationAtApply/clientSecretKey not a Secret key (the same type)",
	"spec.secretRef.clientSecretKey:minLength":            "TestCRDValidationAtApply/clientSecretKey empty (the same type)",
	"spec.secretRef.authParamKeys:x-kubernetes-list-type": "TestCRDValidationAtApply/authParamKeys maps a param twice (the same type)",
}

// A ClusterAdobeCredential's rules at `kubectl apply --server-side` time;
// every rule of its CRD has a case here or in api/v1alpha1.
func TestClusterAdobeCredentialValidationAtApply(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	names := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprintf("ns-%d", i)
		}
		return out
	}
	cases := []applyCase{
		{name: "a credential applies", mutate: func(o obj) {}},
		{name: "every namespace, every sandbox", mutate: set("spec.allowedNamespaces", obj{"selector": obj{}})},
		{name: "no spec", rules: []string{":required:spec"}, mutate: del("spec"), wantField: "spec", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no secretRef", rules: []string{"spec:required:secretRef"}, mutate: del("spec.secretRef"), wantField: "spec.secretRef", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no orgId", rules: []string{"spec:required:orgId"}, mutate: del("spec.orgId"), wantField: "spec.orgId", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no Secret name", rules: []string{"spec.secretRef:required:name"}, mutate: del("spec.secretRef.name"), wantField: "spec.secretRef.name", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "Secret name too long", rules: []string{"spec.secretRef.name:maxLength"}, mutate: set("spec.secretRef.name", long(254)), wantField: "spec.secretRef.name", wantType: metav1.CauseTypeTooLong},
		{name: "Secret name not a DNS subdomain", rules: []string{"spec.secretRef.name:pattern"}, mutate: set("spec.secretRef.name", "Adobe_Credentials"), wantField: "spec.secretRef.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientIdKey empty", rules: []string{"spec.secretRef.clientIdKey:minLength"}, mutate: set("spec.secretRef.clientIdKey", ""), wantField: "spec.secretRef.clientIdKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientIdKey not a Secret key", rules: []string{"spec.secretRef.clientIdKey:pattern"}, mutate: set("spec.secretRef.clientIdKey", "client id"), wantField: "spec.secretRef.clientIdKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "too many authParamKeys", rules: []string{"spec.secretRef.authParamKeys:maxItems"}, mutate: func(o obj) {
			var keys []any
			for i := range 65 {
				keys = append(keys, obj{"param": fmt.Sprintf("param%d", i), "key": "key"})
			}
			set("spec.secretRef.authParamKeys", keys)(o)
		}, wantField: "spec.secretRef.authParamKeys", wantType: metav1.CauseTypeTooMany},
		{name: "authParamKeys without param", rules: []string{"spec.secretRef.authParamKeys[]:required:param"},
			mutate: set("spec.secretRef.authParamKeys", []any{obj{"key": "a"}}), wantField: ".spec.secretRef.authParamKeys: element 0", wantType: refusedByApply},
		{name: "orgId too long", rules: []string{"spec.orgId:maxLength"}, mutate: set("spec.orgId", long(120)+"@AdobeOrg"), wantField: "spec.orgId", wantType: metav1.CauseTypeTooLong},
		{name: "too many sandboxes", rules: []string{"spec.allowedSandboxes:maxItems"}, mutate: set("spec.allowedSandboxes", names(65)), wantField: "spec.allowedSandboxes", wantType: metav1.CauseTypeTooMany},
		{name: "sandbox empty", rules: []string{"spec.allowedSandboxes[]:minLength"}, mutate: set("spec.allowedSandboxes", []any{""}), wantField: "spec.allowedSandboxes[0]", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "sandbox too long", rules: []string{"spec.allowedSandboxes[]:maxLength"}, mutate: set("spec.allowedSandboxes", []any{long(64)}), wantField: "spec.allowedSandboxes[0]", wantType: metav1.CauseTypeTooLong},
		{name: "too many namespaces", rules: []string{"spec.allowedNamespaces.names:maxItems"}, mutate: set("spec.allowedNamespaces.names", names(257)), wantField: "spec.allowedNamespaces.names", wantType: metav1.CauseTypeTooMany},
		{name: "a namespace twice", rules: []string{"spec.allowedNamespaces.names:x-kubernetes-list-type"}, mutate: set("spec.allowedNamespaces.names", []any{"a", "a"}), wantField: ".spec.allowedNamespaces.names: duplicate entries", wantType: refusedByApply},
		{name: "namespace empty", rules: []string{"spec.allowedNamespaces.names[]:minLength"}, mutate: set("spec.allowedNamespaces.names", []any{""}), wantField: "spec.allowedNamespaces.names[0]", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "namespace too long", rules: []string{"spec.allowedNamespaces.names[]:maxLength"}, mutate: set("spec.allowedNamespaces.names", []any{long(64)}), wantField: "spec.allowedNamespaces.names[0]", wantType: metav1.CauseTypeTooLong},
		{name: "selector expression without key", rules: []string{"spec.allowedNamespaces.selector.matchExpressions[]:required:key"},
			mutate: set("spec.allowedNamespaces.selector", obj{"matchExpressions": []any{obj{"operator": "Exists"}}}), wantField: "spec.allowedNamespaces.selector.matchExpressions[0].key", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "selector expression without operator", rules: []string{"spec.allowedNamespaces.selector.matchExpressions[]:required:operator"},
			mutate: set("spec.allowedNamespaces.selector", obj{"matchExpressions": []any{obj{"key": "team"}}}), wantField: "spec.allowedNamespaces.selector.matchExpressions[0].operator", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "a field the API does not have", mutate: set("spec.clientSecret", "inline"), wantField: ".spec.clientSecret", wantType: refusedByApply},
	}
	run := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	runApplyCases(t, cases, credentialObject(), func(ctx context.Context, i int, o obj) error {
		name := fmt.Sprintf("apply-%s-%02d", run, i)
		o["metadata"] = obj{"name": name}
		t.Cleanup(func() { _ = dyn.Resource(credentialGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
		return applyCredential(ctx, name, o)
	})
	t.Run("every rule has a case", func(t *testing.T) {
		checkRulesCovered(t, "TestClusterAdobeCredentialValidationAtApply", cases, credentialAPICovered, crdRules(t, localenvtest.CRDOf(t, credentialGVR.Resource)))
	})
}

func credentialObject() obj {
	return obj{"spec": obj{
		"secretRef":         obj{"name": "adobe-credentials"},
		"orgId":             "0A7D42FC5DB9D3360A495FD3@AdobeOrg",
		"allowedSandboxes":  []any{"prod"},
		"allowedNamespaces": obj{"names": []any{"loyalty"}},
	}}
}

func applyCredential(ctx context.Context, name string, o obj) error {
	o["apiVersion"] = v1alpha1.GroupVersion.String()
	o["kind"] = "ClusterAdobeCredential"
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	force := true
	_, err = dyn.Resource(credentialGVR).Patch(ctx, name, types.ApplyPatchType, b, metav1.PatchOptions{
		FieldManager: "kubectl", Force: &force, FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}
