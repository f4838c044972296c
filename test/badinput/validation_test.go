package badinput_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/localenv/localenvtest"
)

// The CRD's rules at `kubectl apply --server-side` time, through the real
// API server. api/v1alpha1's TestCreateValidation and TestUpdateValidation
// (typed Create and Update) already cover the rules listed in apiCovered;
// this table adds every other rule, applied the way kubectl applies: a
// server-side apply patch with strict field validation. TestEveryRuleIsCovered
// walks the CRD so that a new rule without a case fails.

var gvr = schema.GroupVersionResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: "capillarysources"}

// apiCovered maps rules to the api/v1alpha1 case that refuses them.
var apiCovered = map[string]string{
	"spec.orgId:pattern":                        "TestCreateValidation/orgId without @AdobeOrg",
	"spec.orgId:minLength":                      "TestCreateValidation/orgId missing",
	"spec.orgId:rule":                           "TestUpdateValidation/orgId is immutable",
	"spec.connectionSpecId:pattern":             "TestCreateValidation/connectionSpecId not a UUID",
	"spec.sandboxName:pattern":                  "TestCreateValidation/sandbox name with capitals",
	"spec.sandboxName:rule":                     "TestUpdateValidation/sandboxName is immutable",
	"spec.deletionPolicy:enum":                  "TestCreateValidation/unknown deletionPolicy",
	"spec.target.datasetId:minLength":           "TestCreateValidation/datasetId missing",
	"spec.target.schemaId:pattern":              "TestCreateValidation/schemaId not an XDM $id",
	"spec.target:rule":                          "TestUpdateValidation/target is immutable",
	"spec.credentialsSecretRef.name:minLength":  "TestCreateValidation/secret name missing",
	"spec.credentialsSecretRef:rule":            "TestCreateValidation/same key for id and secret",
	"spec.mappings[].sourceAttribute:minLength": "TestCreateValidation/mapping without source",
	"spec.mappings:x-kubernetes-list-type":      "TestCreateValidation/two mappings to one XDM path",
	"spec.mappings:maxItems":                    "TestCreateValidation/too many mappings",
	"spec:rule":                                 "TestUpdateValidation/connectionSpecId is immutable",
}

type obj = map[string]any

type applyCase struct {
	name string
	// rules are the CRD rules the case exercises (see crdRules).
	rules  []string
	mutate func(o obj)
	// wantField and wantType are the cause the API server reports; an empty
	// wantType means the object is accepted.
	wantField string
	wantType  metav1.CauseType
}

// refusedByApply marks a manifest the API server refuses while building the
// apply patch, before validation: it names the field but gives no cause
// (kube-apiserver answers 500 "failed to create typed patch object", which
// kubectl prints as is).
const refusedByApply metav1.CauseType = "RefusedByApply"

func TestCRDValidationAtApply(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []applyCase{
		{name: "the sample applies", mutate: func(o obj) {}},

		// Required fields, absent (not empty) as in a manifest that forgot them.
		{name: "no spec", rules: []string{":required:spec"}, mutate: func(o obj) { delete(o, "spec") }, wantField: "spec", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no credential", rules: []string{"spec:rule#1"}, mutate: del("spec.credentialsSecretRef"), wantField: "spec", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "two credentials", rules: []string{"spec:rule#1"}, mutate: set("spec.clusterCredentialRef", obj{"name": "shared"}), wantField: "spec", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "a ClusterAdobeCredential instead of a Secret", mutate: func(o obj) {
			del("spec.credentialsSecretRef")(o)
			set("spec.clusterCredentialRef", obj{"name": "shared"})(o)
		}},
		{name: "clusterCredentialRef without name", rules: []string{"spec.clusterCredentialRef:required:name"}, mutate: func(o obj) {
			del("spec.credentialsSecretRef")(o)
			set("spec.clusterCredentialRef", obj{})(o)
		}, wantField: "spec.clusterCredentialRef.name", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "clusterCredentialRef name empty", rules: []string{"spec.clusterCredentialRef.name:minLength"}, mutate: func(o obj) {
			del("spec.credentialsSecretRef")(o)
			set("spec.clusterCredentialRef", obj{"name": ""})(o)
		}, wantField: "spec.clusterCredentialRef.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clusterCredentialRef name too long", rules: []string{"spec.clusterCredentialRef.name:maxLength"}, mutate: func(o obj) {
			del("spec.credentialsSecretRef")(o)
			set("spec.clusterCredentialRef", obj{"name": long(254)})(o)
		}, wantField: "spec.clusterCredentialRef.name", wantType: metav1.CauseTypeTooLong},
		{name: "clusterCredentialRef name not a DNS subdomain", rules: []string{"spec.clusterCredentialRef.name:pattern"}, mutate: func(o obj) {
			del("spec.credentialsSecretRef")(o)
			set("spec.clusterCredentialRef", obj{"name": "Shared_Credential"})(o)
		}, wantField: "spec.clusterCredentialRef.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "writeConnectionDetailsTo without name", rules: []string{"spec.writeConnectionDetailsTo:required:name"}, mutate: set("spec.writeConnectionDetailsTo", obj{}), wantField: "spec.writeConnectionDetailsTo.name", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "writeConnectionDetailsTo name empty", rules: []string{"spec.writeConnectionDetailsTo.name:minLength"}, mutate: set("spec.writeConnectionDetailsTo", obj{"name": ""}), wantField: "spec.writeConnectionDetailsTo.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "writeConnectionDetailsTo name too long", rules: []string{"spec.writeConnectionDetailsTo.name:maxLength"}, mutate: set("spec.writeConnectionDetailsTo", obj{"name": long(254)}), wantField: "spec.writeConnectionDetailsTo.name", wantType: metav1.CauseTypeTooLong},
		{name: "writeConnectionDetailsTo name not a DNS subdomain", rules: []string{"spec.writeConnectionDetailsTo.name:pattern"}, mutate: set("spec.writeConnectionDetailsTo", obj{"name": "Inlet Details"}), wantField: "spec.writeConnectionDetailsTo.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "writeConnectionDetailsTo as documented", mutate: set("spec.writeConnectionDetailsTo", obj{"name": "capillary-inlet"})},
		{name: "unknown managementPolicy", rules: []string{"spec.managementPolicy:enum"}, mutate: set("spec.managementPolicy", "ReadOnly"), wantField: "spec.managementPolicy", wantType: metav1.CauseTypeFieldValueNotSupported},
		{name: "unknown driftPolicy", rules: []string{"spec.driftPolicy:enum"}, mutate: set("spec.driftPolicy", "Ignore"), wantField: "spec.driftPolicy", wantType: metav1.CauseTypeFieldValueNotSupported},
		{name: "the policies as documented", mutate: func(o obj) {
			set("spec.managementPolicy", "ObserveOnly")(o)
			set("spec.driftPolicy", "Report")(o)
		}},
		{name: "no orgId", rules: []string{"spec:required:orgId"}, mutate: del("spec.orgId"), wantField: "spec.orgId", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no target", rules: []string{"spec:required:target"}, mutate: del("spec.target"), wantField: "spec.target", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no Secret name", rules: []string{"spec.credentialsSecretRef:required:name"}, mutate: del("spec.credentialsSecretRef.name"), wantField: "spec.credentialsSecretRef.name", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no datasetId", rules: []string{"spec.target:required:datasetId"}, mutate: del("spec.target.datasetId"), wantField: "spec.target.datasetId", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "no schemaId", rules: []string{"spec.target:required:schemaId"}, mutate: del("spec.target.schemaId"), wantField: "spec.target.schemaId", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "mapping without sourceAttribute", rules: []string{"spec.mappings[]:required:sourceAttribute"},
			mutate: set("spec.mappings", []any{obj{"destinationXdmPath": "loyalty.points"}}), wantField: "spec.mappings[0].sourceAttribute", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "mapping without destinationXdmPath", rules: []string{"spec.mappings[]:required:destinationXdmPath"},
			mutate: set("spec.mappings", []any{obj{"sourceAttribute": "loyalty.points"}}), wantField: ".spec.mappings: element 0", wantType: refusedByApply},

		// Lengths.
		{name: "Secret name too long", rules: []string{"spec.credentialsSecretRef.name:maxLength"}, mutate: set("spec.credentialsSecretRef.name", long(254)), wantField: "spec.credentialsSecretRef.name", wantType: metav1.CauseTypeTooLong},
		{name: "clientIdKey empty", rules: []string{"spec.credentialsSecretRef.clientIdKey:minLength"}, mutate: set("spec.credentialsSecretRef.clientIdKey", ""), wantField: "spec.credentialsSecretRef.clientIdKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientIdKey too long", rules: []string{"spec.credentialsSecretRef.clientIdKey:maxLength"}, mutate: set("spec.credentialsSecretRef.clientIdKey", long(254)), wantField: "spec.credentialsSecretRef.clientIdKey", wantType: metav1.CauseTypeTooLong},
		{name: "clientSecretKey empty", rules: []string{"spec.credentialsSecretRef.clientSecretKey:minLength"}, mutate: set("spec.credentialsSecretRef.clientSecretKey", ""), wantField: "spec.credentialsSecretRef.clientSecretKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientSecretKey too long", rules: []string{"spec.credentialsSecretRef.clientSecretKey:maxLength"}, mutate: set("spec.credentialsSecretRef.clientSecretKey", long(254)), wantField: "spec.credentialsSecretRef.clientSecretKey", wantType: metav1.CauseTypeTooLong},
		{name: "orgId too long", rules: []string{"spec.orgId:maxLength"}, mutate: set("spec.orgId", long(120)+"@AdobeOrg"), wantField: "spec.orgId", wantType: metav1.CauseTypeTooLong},
		{name: "orgId at its longest", mutate: set("spec.orgId", long(119)+"@AdobeOrg")},
		{name: "sandboxName empty", rules: []string{"spec.sandboxName:minLength"}, mutate: set("spec.sandboxName", ""), wantField: "spec.sandboxName", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "sandboxName too long", rules: []string{"spec.sandboxName:maxLength"}, mutate: set("spec.sandboxName", long(64)), wantField: "spec.sandboxName", wantType: metav1.CauseTypeTooLong},
		{name: "sandboxName at its longest", mutate: set("spec.sandboxName", long(63))},
		{name: "datasetId too long", rules: []string{"spec.target.datasetId:maxLength"}, mutate: set("spec.target.datasetId", long(65)), wantField: "spec.target.datasetId", wantType: metav1.CauseTypeTooLong},
		{name: "schemaId too long", rules: []string{"spec.target.schemaId:maxLength"}, mutate: set("spec.target.schemaId", "https://ns.adobe.com/"+long(492)), wantField: "spec.target.schemaId", wantType: metav1.CauseTypeTooLong},
		{name: "schemaVersion too long", rules: []string{"spec.target.schemaVersion:maxLength"}, mutate: set("spec.target.schemaVersion", "application/vnd.adobe.xed+json;version="+strings.Repeat("1", 90)), wantField: "spec.target.schemaVersion", wantType: metav1.CauseTypeTooLong},
		{name: "sourceAttribute too long", rules: []string{"spec.mappings[].sourceAttribute:maxLength"},
			mutate: set("spec.mappings", []any{obj{"sourceAttribute": long(513), "destinationXdmPath": "x"}}), wantField: "spec.mappings[0].sourceAttribute", wantType: metav1.CauseTypeTooLong},
		{name: "destinationXdmPath empty", rules: []string{"spec.mappings[].destinationXdmPath:minLength"},
			mutate: set("spec.mappings", []any{obj{"sourceAttribute": "a", "destinationXdmPath": ""}}), wantField: "spec.mappings[0].destinationXdmPath", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "destinationXdmPath too long", rules: []string{"spec.mappings[].destinationXdmPath:maxLength"},
			mutate: set("spec.mappings", []any{obj{"sourceAttribute": "a", "destinationXdmPath": long(513)}}), wantField: "spec.mappings[0].destinationXdmPath", wantType: metav1.CauseTypeTooLong},

		// Patterns.
		{name: "Secret name not a DNS subdomain", rules: []string{"spec.credentialsSecretRef.name:pattern"}, mutate: set("spec.credentialsSecretRef.name", "Adobe_Credentials"), wantField: "spec.credentialsSecretRef.name", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientIdKey not a Secret key", rules: []string{"spec.credentialsSecretRef.clientIdKey:pattern"}, mutate: set("spec.credentialsSecretRef.clientIdKey", "client id"), wantField: "spec.credentialsSecretRef.clientIdKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "clientSecretKey not a Secret key", rules: []string{"spec.credentialsSecretRef.clientSecretKey:pattern"}, mutate: set("spec.credentialsSecretRef.clientSecretKey", "client/secret"), wantField: "spec.credentialsSecretRef.clientSecretKey", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "datasetId with a dot", rules: []string{"spec.target.datasetId:pattern"}, mutate: set("spec.target.datasetId", "6889f4f8.9b98"), wantField: "spec.target.datasetId", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "schemaVersion not an XED content type", rules: []string{"spec.target.schemaVersion:pattern"}, mutate: set("spec.target.schemaVersion", "application/json"), wantField: "spec.target.schemaVersion", wantType: metav1.CauseTypeFieldValueInvalid},

		// Dataflow options and authSpec param keys.
		{name: "partialIngestionPercent 0", rules: []string{"spec.dataflow.partialIngestionPercent:minimum"}, mutate: set("spec.dataflow", obj{"partialIngestionPercent": 0}), wantField: "spec.dataflow.partialIngestionPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "partialIngestionPercent 101", rules: []string{"spec.dataflow.partialIngestionPercent:maximum"}, mutate: set("spec.dataflow", obj{"partialIngestionPercent": 101}), wantField: "spec.dataflow.partialIngestionPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "partialIngestionPercent beyond int32", rules: []string{"spec.dataflow.partialIngestionPercent:format"}, mutate: set("spec.dataflow", obj{"partialIngestionPercent": int64(1) << 32}), wantField: "spec.dataflow.partialIngestionPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "partialIngestionPercent at its bounds", mutate: set("spec.dataflow", obj{"partialIngestionPercent": 100, "errorDiagnosticsEnabled": true})},
		{name: "maxFailedRecordsPercent negative", rules: []string{"spec.ingestion.maxFailedRecordsPercent:minimum"}, mutate: set("spec.ingestion", obj{"maxFailedRecordsPercent": -1}), wantField: "spec.ingestion.maxFailedRecordsPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "maxFailedRecordsPercent 101", rules: []string{"spec.ingestion.maxFailedRecordsPercent:maximum"}, mutate: set("spec.ingestion", obj{"maxFailedRecordsPercent": 101}), wantField: "spec.ingestion.maxFailedRecordsPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "maxFailedRecordsPercent beyond int32", rules: []string{"spec.ingestion.maxFailedRecordsPercent:format"}, mutate: set("spec.ingestion", obj{"maxFailedRecordsPercent": int64(1) << 32}), wantField: "spec.ingestion.maxFailedRecordsPercent", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "maxFailedRecordsPercent at its bounds", mutate: set("spec.ingestion", obj{"maxFailedRecordsPercent": 100})},
		{name: "too many authParamKeys", rules: []string{"spec.credentialsSecretRef.authParamKeys:maxItems"}, mutate: func(o obj) {
			var keys []any
			for i := range 65 {
				keys = append(keys, obj{"param": fmt.Sprintf("param%d", i), "key": "key"})
			}
			set("spec.credentialsSecretRef.authParamKeys", keys)(o)
		}, wantField: "spec.credentialsSecretRef.authParamKeys", wantType: metav1.CauseTypeTooMany},
		{name: "authParamKeys maps a param twice", rules: []string{"spec.credentialsSecretRef.authParamKeys:x-kubernetes-list-type"},
			mutate:    set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "p", "key": "a"}, obj{"param": "p", "key": "b"}}),
			wantField: ".spec.credentialsSecretRef.authParamKeys: duplicate entries", wantType: refusedByApply},
		{name: "authParamKeys without param", rules: []string{"spec.credentialsSecretRef.authParamKeys[]:required:param"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"key": "a"}}), wantField: ".spec.credentialsSecretRef.authParamKeys: element 0", wantType: refusedByApply},
		{name: "authParamKeys without key", rules: []string{"spec.credentialsSecretRef.authParamKeys[]:required:key"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "p"}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].key", wantType: metav1.CauseTypeFieldValueRequired},
		{name: "authParamKeys param empty", rules: []string{"spec.credentialsSecretRef.authParamKeys[].param:minLength"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "", "key": "k"}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].param", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "authParamKeys param too long", rules: []string{"spec.credentialsSecretRef.authParamKeys[].param:maxLength"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": long(254), "key": "k"}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].param", wantType: metav1.CauseTypeTooLong},
		{name: "authParamKeys param with a space", rules: []string{"spec.credentialsSecretRef.authParamKeys[].param:pattern"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "a b", "key": "k"}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].param", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "authParamKeys key empty", rules: []string{"spec.credentialsSecretRef.authParamKeys[].key:minLength"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "p", "key": ""}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].key", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "authParamKeys key too long", rules: []string{"spec.credentialsSecretRef.authParamKeys[].key:maxLength"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "p", "key": long(254)}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].key", wantType: metav1.CauseTypeTooLong},
		{name: "authParamKeys key with a slash", rules: []string{"spec.credentialsSecretRef.authParamKeys[].key:pattern"},
			mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "p", "key": "a/b"}}), wantField: "spec.credentialsSecretRef.authParamKeys[0].key", wantType: metav1.CauseTypeFieldValueInvalid},
		{name: "authParamKeys as documented", mutate: set("spec.credentialsSecretRef.authParamKeys", []any{obj{"param": "clientSecret", "key": "adobe-client-secret"}})},

		// Types and fields the schema does not know (not rules of their own:
		// structural schema and kubectl's strict field validation).
		{name: "suspend as a string", mutate: set("spec.suspend", "yes"), wantField: ".spec.suspend", wantType: refusedByApply},
		{name: "an endpoint field the API does not have", mutate: set("spec.platformUrl", "https://attacker.example"), wantField: ".spec.platformUrl", wantType: refusedByApply},
	}

	ns := localenvtest.NewNamespace(t, suite.Env.Client, "validation")
	runApplyCases(t, cases, sampleObject(t), func(ctx context.Context, i int, o obj) error {
		name := fmt.Sprintf("apply-%02d", i)
		o["metadata"] = obj{"name": name, "namespace": ns}
		return apply(ctx, ns, name, o)
	})
	t.Run("every rule has a case", func(t *testing.T) {
		checkRulesCovered(t, "TestCRDValidationAtApply", cases, apiCovered, crdRules(t, localenvtest.CRD(t)))
	})
}

// runApplyCases applies each case's manifest (base, mutated) and checks the
// API server's answer.
func runApplyCases(t *testing.T, cases []applyCase, base obj, applyOne func(ctx context.Context, i int, o obj) error) {
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := deepCopy(t, base)
			tc.mutate(o)
			err := applyOne(context.Background(), i, o)
			switch {
			case tc.wantType == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantType == "":
				return
			case err == nil:
				t.Fatalf("accepted, want %s on %q", tc.wantType, tc.wantField)
			case tc.wantType == refusedByApply:
				if !strings.Contains(err.Error(), tc.wantField) {
					t.Fatalf("error %v, want it to name %s", err, tc.wantField)
				}
				return
			}
			var st apierrors.APIStatus
			if !errors.As(err, &st) || st.Status().Reason != metav1.StatusReasonInvalid || st.Status().Details == nil {
				t.Fatalf("error %v, want reason Invalid with causes", err)
			}
			var got []string
			for _, c := range st.Status().Details.Causes {
				if c.Field == tc.wantField && c.Type == tc.wantType {
					return
				}
				got = append(got, fmt.Sprintf("%s on %q", c.Type, c.Field))
			}
			t.Errorf("causes %v, want %s on %q", got, tc.wantType, tc.wantField)
		})
	}
}

// checkRulesCovered: every rule of the CRD has a case, and every case names
// a rule the CRD has.
func checkRulesCovered(t *testing.T, test string, cases []applyCase, elsewhere map[string]string, rules []string) {
	covered := map[string]string{}
	for k, v := range elsewhere {
		covered[k] = v
	}
	for _, tc := range cases {
		for _, r := range tc.rules {
			covered[r] = test + "/" + tc.name
		}
	}
	for _, r := range rules {
		if covered[r] == "" {
			t.Errorf("CRD rule %s has no case: add one to %s", r, test)
		}
	}
	for r, by := range covered {
		if !slices.Contains(rules, r) {
			t.Errorf("%s names rule %s, which the CRD does not have", by, r)
		}
	}
}

// apply is `kubectl apply --server-side`: an apply patch, strict field
// validation, kubectl's field manager.
func apply(ctx context.Context, ns, name string, o obj) error {
	o["apiVersion"] = v1alpha1.GroupVersion.String()
	o["kind"] = "CapillarySource"
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	force := true
	_, err = dyn.Resource(gvr).Namespace(ns).Patch(ctx, name, types.ApplyPatchType, b, metav1.PatchOptions{
		FieldManager: "kubectl", Force: &force, FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

func sampleObject(t *testing.T) obj {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", "sources_v1alpha1_capillarysource.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o := obj{}
	if err := yaml.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func deepCopy(t *testing.T, o obj) obj {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	out := obj{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// parent walks a dotted path to the map that holds its last element.
func parent(o obj, path string) (obj, string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := o[p].(obj)
		if !ok {
			next = obj{}
			o[p] = next
		}
		o = next
	}
	return o, parts[len(parts)-1]
}

func set(path string, v any) func(obj) {
	return func(o obj) { m, k := parent(o, path); m[k] = v }
}

func del(path string) func(obj) {
	return func(o obj) { m, k := parent(o, path); delete(m, k) }
}

// crdRules lists every validation rule of the CRD a user's manifest can hit:
// "<path>:<keyword>" (minLength, maxLength, pattern, enum, maxItems,
// x-kubernetes-list-type, ...), "<path>:required:<field>" and "<path>:rule"
// for CEL rules. Status is the operator's to write (kubectl apply does not
// send it through the status subresource), so it is not walked.
func crdRules(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) []string {
	t.Helper()
	var rules []string
	var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
		add := func(kw string, present bool) {
			if present {
				rules = append(rules, path+":"+kw)
			}
		}
		add("minLength", s.MinLength != nil)
		add("maxLength", s.MaxLength != nil)
		add("pattern", s.Pattern != "")
		add("enum", len(s.Enum) > 0)
		add("format", s.Format != "")
		add("minItems", s.MinItems != nil)
		add("maxItems", s.MaxItems != nil)
		add("uniqueItems", s.UniqueItems)
		add("minimum", s.Minimum != nil)
		add("maximum", s.Maximum != nil)
		add("minProperties", s.MinProperties != nil)
		add("maxProperties", s.MaxProperties != nil)
		add("x-kubernetes-list-type", s.XListType != nil && *s.XListType != "atomic")
		for i := range s.XValidations {
			kw := "rule"
			if i > 0 {
				kw = fmt.Sprintf("rule#%d", i)
			}
			add(kw, true)
		}
		for _, r := range s.Required {
			rules = append(rules, path+":required:"+r)
		}
		for name, p := range s.Properties {
			if path == "" && name != "spec" {
				continue // status, metadata, apiVersion, kind
			}
			child := name
			if path != "" {
				child = path + "." + name
			}
			walk(child, &p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", s.Items.Schema)
		}
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == v1alpha1.GroupVersion.Version {
			walk("", v.Schema.OpenAPIV3Schema)
		}
	}
	slices.Sort(rules)
	rules = slices.Compact(rules)
	if len(rules) < 20 {
		t.Fatalf("found only %d rules in the CRD: the walk is broken", len(rules))
	}
	return rules
}
