package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	schemakind "github.com/santhosh-tekuri/jsonschema/v6/kind"
	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// authMethod is the authSpec of a connection spec that the base connection
// follows. The operator knows no vendor's field list: it fills each property
// of the authSpec's JSON schema from the credential's Secret and validates
// the result against that schema before sending it.
type authMethod struct {
	name   string
	inlet  v1alpha1.InletAuthentication
	props  map[string]authProp
	schema *jsonschema.Schema
}

// authProp is what the schema says of one param.
type authProp struct {
	Type    string `json:"type"`
	Const   any    `json:"const"`
	Default any    `json:"default"`
}

// authSchema is the part of an authSpec's schema that filling needs.
type authSchema struct {
	Properties map[string]authProp `json:"properties"`
	Required   []string            `json:"required"`
}

// inletAuthentication is the one rule that says how posts to the inlet
// authenticate, from the connection spec (help/sources/sources-sdk/streaming/
// authentication.md: "Authentication is required for all connectors built
// with the Streaming SDK", either OAuth 2.0 or HMAC):
//   - no authSpec: None, unless sourceSpec.attributes.authRequired says
//     otherwise (then the spec contradicts itself and nothing is sent);
//   - an authSpec whose type or name speaks of OAuth: OAuth2, the partner
//     sends an IMS bearer token of the same Adobe credential;
//   - one that speaks of HMAC: HMAC, the partner signs each body with the
//     shared secret (x-hmac-sha256).
//
// The first authSpec the rule knows is used; one it does not know stalls.
func readAuthSpec(conn *flowservice.ConnectionSpec) (*authMethod, error) {
	if len(conn.AuthSpec) == 0 {
		if conn.SourceSpec != nil && conn.SourceSpec.Attributes.AuthRequired != nil && *conn.SourceSpec.Attributes.AuthRequired {
			return nil, fmt.Errorf("connection spec %s says authRequired but has no authSpec to authenticate with", conn.ID)
		}
		return nil, nil
	}
	var seen []string
	for _, a := range conn.AuthSpec {
		kind := strings.ToLower(a.Type + " " + a.Name)
		var inlet v1alpha1.InletAuthentication
		switch {
		case strings.Contains(kind, "hmac"):
			inlet = v1alpha1.InletAuthenticationHMAC
		case strings.Contains(kind, "oauth"):
			inlet = v1alpha1.InletAuthenticationOAuth2
		default:
			seen = append(seen, fmt.Sprintf("%q (type %s)", a.Name, a.Type))
			continue
		}
		return compileAuthSpec(a, inlet)
	}
	return nil, fmt.Errorf("connection spec %s offers only authSpecs the operator does not know: %s; it knows OAuth 2.0 and HMAC", conn.ID, strings.Join(seen, ", "))
}

func compileAuthSpec(a flowservice.AuthSpec, inlet v1alpha1.InletAuthentication) (*authMethod, error) {
	var s authSchema
	if err := json.Unmarshal(a.Spec, &s); err != nil {
		return nil, fmt.Errorf("authSpec %q has no readable schema: %w", a.Name, err)
	}
	for name, p := range s.Properties {
		if !slices.Contains([]string{"", "string", "integer", "number", "boolean"}, p.Type) {
			return nil, fmt.Errorf("authSpec %q param %s is of type %s, which a Secret key cannot hold", a.Name, name, p.Type)
		}
	}
	schema, err := compileSchema(a.Spec)
	if err != nil {
		return nil, fmt.Errorf("authSpec %q has a schema the operator cannot compile: %w", a.Name, err)
	}
	return &authMethod{name: a.Name, inlet: inlet, props: s.Properties, schema: schema}, nil
}

// compileSchema compiles a JSON schema Adobe serves (draft-07 unless it
// says otherwise).
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	const loc = "adobe-schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}

// params fills the authSpec's params from the Secret: each from the key
// that keys maps it to, else the key of its own name; a param the Secret
// lacks takes the schema's const or default. The result is checked against
// the schema; errors name params and keys, never values.
func (m *authMethod) params(secret *corev1.Secret, keys map[string]string) (map[string]any, error) {
	where := secret.Namespace + "/" + secret.Name
	out := map[string]any{}
	names := make([]string, 0, len(m.props))
	for name := range m.props {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, key := m.props[name], name
		if k, ok := keys[name]; ok {
			key = k
		}
		raw, ok := secret.Data[key]
		switch {
		case ok:
			v, err := p.parse(strings.TrimSpace(string(raw)))
			if err != nil {
				return nil, &stepError{condition: v1alpha1.ConditionBaseConnectionReady, reason: v1alpha1.ReasonAuthParamsInvalid, terminal: true,
					message: fmt.Sprintf("Secret %s key %s must hold a %s for param %s of authSpec %q", where, key, p.Type, name, m.name)}
			}
			out[name] = v
		case p.Const != nil:
			out[name] = p.Const
		case p.Default != nil:
			out[name] = p.Default
		}
	}
	if err := m.schema.Validate(jsonValue(out)); err != nil {
		return nil, m.invalid(err, where, keys)
	}
	return out, nil
}

func (p authProp) parse(s string) (any, error) {
	switch p.Type {
	case "integer":
		return strconv.ParseInt(s, 10, 64)
	case "number":
		return strconv.ParseFloat(s, 64)
	case "boolean":
		return strconv.ParseBool(s)
	}
	return s, nil
}

// invalid says which params failed which rule of the schema, and which Secret
// key to fix: a missing required param is a key to add.
func (m *authMethod) invalid(err error, where string, keys map[string]string) *stepError {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return terminal(v1alpha1.ConditionBaseConnectionReady, v1alpha1.ReasonAuthParamsInvalid,
			fmt.Sprintf("the params of authSpec %q fail its schema", m.name), nil)
	}
	keyOf := func(param string) string {
		if k, ok := keys[param]; ok {
			return k
		}
		return param
	}
	var missing, failed []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		if r, ok := e.ErrorKind.(*schemakind.Required); ok {
			for _, p := range r.Missing {
				missing = append(missing, keyOf(p))
			}
			return
		}
		failed = append(failed, leafKeywords(e))
	}
	walk(ve)
	if len(missing) > 0 {
		return terminal(v1alpha1.ConditionBaseConnectionReady, v1alpha1.ReasonSecretKeyMissing,
			fmt.Sprintf("Secret %s lacks %s, needed by authSpec %q of the connection spec: add them, or map the params to other keys in credentialsSecretRef.authParamKeys",
				where, strings.Join(missing, ", "), m.name), nil)
	}
	return terminal(v1alpha1.ConditionBaseConnectionReady, v1alpha1.ReasonAuthParamsInvalid,
		fmt.Sprintf("the values in Secret %s fail authSpec %q: %s; fix those keys", where, m.name, strings.Join(failed, ", ")), nil)
}

// jsonValue turns Go values into what the validator expects of decoded JSON.
func jsonValue(v map[string]any) any {
	b, _ := json.Marshal(v)
	out, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	return out
}

// optionSpec is what a flow spec's optionSpec offers: the dataflow options
// and the schema their values must pass.
type optionSpec struct {
	offered map[string]authProp
	schema  *jsonschema.Schema
}

// readOptionSpec reads a flow spec's optionSpec: a JSON schema of the
// options, or an object holding one in "spec" (as authSpecs do); nil when
// the flow spec offers no options.
func readOptionSpec(flow *flowservice.FlowSpec) (*optionSpec, error) {
	raw := flow.OptionSpec
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var wrapped struct {
		Spec json.RawMessage `json:"spec"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Spec) > 0 {
		raw = wrapped.Spec
	}
	var s authSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("flow spec %s has an optionSpec the operator cannot read: %v", flow.ID, err)
	}
	schema, err := compileSchema(raw)
	if err != nil {
		return nil, fmt.Errorf("flow spec %s has an optionSpec the operator cannot compile: %v", flow.ID, err)
	}
	return &optionSpec{offered: s.Properties, schema: schema}, nil
}

// dataflowOptions are the options spec.dataflow asks for, checked against
// what the flow spec offers before anything is sent.
func dataflowOptions(cs *v1alpha1.CapillarySource, spec *optionSpec, flowSpecID string) (map[string]any, error) {
	d := cs.Spec.Dataflow
	if d == nil {
		return nil, nil
	}
	want := map[string]any{optErrorDiagnostics: d.ErrorDiagnosticsEnabled}
	if d.PartialIngestionPercent != nil {
		want[optPartialIngestion] = *d.PartialIngestionPercent
	}
	unsupported := func(msg string) error {
		return terminal(v1alpha1.ConditionDataflowReady, v1alpha1.ReasonDataflowOptionUnsupported,
			fmt.Sprintf("flow spec %s %s: change or remove spec.dataflow", flowSpecID, msg), nil)
	}
	for name := range want {
		if spec == nil {
			return nil, unsupported("offers no dataflow options")
		}
		if _, ok := spec.offered[name]; !ok {
			return nil, unsupported("does not offer the option " + name)
		}
	}
	if err := spec.schema.Validate(jsonValue(want)); err != nil {
		var ve *jsonschema.ValidationError
		where := ""
		if errors.As(err, &ve) {
			where = ": " + leafKeywords(ve)
		}
		return nil, unsupported("refuses the value of spec.dataflow" + where)
	}
	return want, nil
}

// Dataflow options of the GenericStreamingAEP flow spec.
const (
	optErrorDiagnostics = "errorDiagnosticsEnabled"
	optPartialIngestion = "partialIngestionPercent"
)

// leafKeywords lists "param (keyword)" for each leaf of a validation error.
func leafKeywords(e *jsonschema.ValidationError) string {
	if len(e.Causes) == 0 {
		return fmt.Sprintf("%s (%s)", strings.Join(e.InstanceLocation, "/"), strings.Join(e.ErrorKind.KeywordPath(), "/"))
	}
	parts := make([]string, 0, len(e.Causes))
	for _, c := range e.Causes {
		parts = append(parts, leafKeywords(c))
	}
	return strings.Join(parts, ", ")
}
