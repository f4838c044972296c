package emulator

import (
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// paramSchema is a compiled draft-07 JSON schema, as Adobe's connection specs
// (authSpec[].spec) and flow specs (optionSpec.spec) carry them.
type paramSchema struct {
	schema *jsonschema.Schema
	// props lists the properties the schema declares.
	props map[string]bool
}

// compileSchema compiles one of the built-in specs' schemas; they are
// constants, so a failure is a bug in the emulator.
func compileSchema(doc map[string]any) *paramSchema {
	const loc = "mem:///spec.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(loc, cloneMap(doc)); err != nil {
		panic("emulator: built-in schema: " + err.Error())
	}
	sch, err := c.Compile(loc)
	if err != nil {
		panic("emulator: built-in schema: " + err.Error())
	}
	ps := &paramSchema{schema: sch, props: map[string]bool{}}
	props, _ := doc["properties"].(map[string]any)
	for k := range props {
		ps.props[k] = true
	}
	return ps
}

// schemaViolation names the first failing property of a value and says why.
type schemaViolation struct {
	property string
	reason   string
}

// check validates v (decoded JSON) against the schema.
func (ps *paramSchema) check(v any) *schemaViolation {
	err := ps.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &schemaViolation{reason: err.Error()}
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	prop := strings.Join(leaf.InstanceLocation, ".")
	switch k := leaf.ErrorKind.(type) {
	case *kind.Required:
		prop = joinPath(prop, k.Missing[0])
		return &schemaViolation{property: prop, reason: "is required"}
	case *kind.AdditionalProperties:
		prop = joinPath(prop, k.Properties[0])
		return &schemaViolation{property: prop, reason: "is not defined by the spec"}
	}
	return &schemaViolation{property: prop, reason: "does not match the spec (" + strings.Join(leaf.ErrorKind.KeywordPath(), "/") + ")" + describeKind(leaf.ErrorKind)}
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// describeKind adds the limits of the common failures, never the value
// itself (it may be a secret).
func describeKind(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.MinLength:
		return fmt.Sprintf(": at least %d characters", k.Want)
	case *kind.Type:
		return fmt.Sprintf(": want %s", strings.Join(k.Want, " or "))
	case *kind.Const:
		return fmt.Sprintf(": want %v", k.Want)
	case *kind.ExclusiveMinimum:
		return ": must be greater than " + k.Want.RatString()
	case *kind.Maximum:
		return ": must be at most " + k.Want.RatString()
	}
	return ""
}
