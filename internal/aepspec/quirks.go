package aepspec

import (
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// fixKnownQuirks corrects the places where Adobe's published specs disagree
// with Adobe's own documentation and examples (see aep-api.md §7). Each fix is
// as narrow as the quirk: one schema or one parameter, never a whole check.
func fixKnownQuirks(doc *openapi3.T) {
	if doc.Components == nil {
		return
	}
	schemas := doc.Components.Schemas

	// PatchInstruction.op is printed as ADD/REPLACE/REMOVE, but every Adobe
	// example (and RFC 6902) uses lowercase; accept both spellings.
	// Its `value` is typed object although examples replace /name and
	// /description with strings; any JSON value is valid JSON Patch.
	if pi := schemaRef(schemas, "PatchInstruction"); pi != nil {
		if op := pi.Properties["op"]; op != nil && op.Value != nil {
			op.Value.Enum = withLowercase(op.Value.Enum)
		}
		if val := pi.Properties["value"]; val != nil {
			pi.Properties["value"] = openapi3.NewSchemaRef("", &openapi3.Schema{})
		}
	}

	// transformations[].params.mappingVersion is typed string ("0") while
	// every Adobe example sends a number (0, 2); accept either.
	if ts := schemaRef(schemas, "TransformationSpecDTO"); ts != nil {
		if mv := ts.Properties["mappingVersion"]; mv != nil {
			ts.Properties["mappingVersion"] = openapi3.NewSchemaRef("", &openapi3.Schema{
				OneOf: openapi3.SchemaRefs{
					openapi3.NewSchemaRef("", openapi3.NewStringSchema()),
					openapi3.NewSchemaRef("", openapi3.NewIntegerSchema()),
				},
			})
		}
	}

	// CreateFlowRequest has no `options`, yet Streaming SDK flows carry
	// them: the flow spec's optionSpec defines them (GenericStreamingAEP:
	// errorDiagnosticsEnabled, partialIngestionPercent) and Adobe's flow GET
	// examples return options beside inletUrl. Declare `options` as an
	// object; its content is the flow spec's business, not this schema's.
	if cf := schemaRef(schemas, "CreateFlowRequest"); cf != nil && cf.Properties["options"] == nil {
		cf.Properties["options"] = openapi3.NewSchemaRef("", openapi3.NewObjectSchema())
	}

	if doc.Paths != nil {
		fixBaseConnectionPaths(doc)
	}

	// POST /flows/{id}/action: `op` is printed uppercase while Adobe's
	// examples send op=enable; `subOp` is marked required, yet no example
	// sends it for enable/disable.
	if doc.Paths != nil {
		if item := doc.Paths.Value("/flows/{FLOW_ID}/action"); item != nil && item.Post != nil {
			for _, p := range item.Post.Parameters {
				if p.Value == nil || p.Value.In != openapi3.ParameterInQuery {
					continue
				}
				switch p.Value.Name {
				case "op":
					if p.Value.Schema != nil && p.Value.Schema.Value != nil {
						p.Value.Schema.Value.Enum = withLowercase(p.Value.Schema.Value.Enum)
					}
				case "subOp":
					p.Value.Required = false
				}
			}
		}

	}
}

// fixBaseConnectionPaths: PATCH and DELETE of a base connection are printed
// on /connections/{BASE_CONNECTION_ID}/ (trailing slash) while every Adobe
// page uses /connections/{id} (help/sources/tutorials/api/update.md,
// delete.md), and the PATCH body is printed as one PatchInstruction while
// update.md sends a JSON Patch array, like the other PATCH operations of the
// spec. Move both operations to the documented path, with an array body.
func fixBaseConnectionPaths(doc *openapi3.T) {
	slash := doc.Paths.Value("/connections/{BASE_CONNECTION_ID}/")
	plain := doc.Paths.Value("/connections/{BASE_CONNECTION_ID}")
	if slash == nil || plain == nil {
		return
	}
	if plain.Delete == nil {
		plain.Delete = slash.Delete
	}
	if plain.Patch == nil && slash.Patch != nil {
		op := *slash.Patch
		if rb := op.RequestBody; rb != nil && rb.Value != nil {
			body := *rb.Value
			content := openapi3.Content{}
			for mt, m := range body.Content {
				mm := *m
				if mm.Schema != nil {
					mm.Schema = openapi3.NewSchemaRef("", openapi3.NewArraySchema().WithItems(mm.Schema.Value))
				}
				content[mt] = &mm
			}
			body.Content = content
			op.RequestBody = &openapi3.RequestBodyRef{Value: &body}
		}
		plain.Patch = &op
	}
	slash.Delete, slash.Patch = nil, nil
	if len(slash.Operations()) == 0 {
		doc.Paths.Delete("/connections/{BASE_CONNECTION_ID}/")
	}
}

func schemaRef(schemas openapi3.Schemas, name string) *openapi3.Schema {
	ref := schemas[name]
	if ref == nil {
		return nil
	}
	return ref.Value
}

func withLowercase(enum []any) []any {
	out := append([]any(nil), enum...)
	for _, e := range enum {
		if s, ok := e.(string); ok && strings.ToLower(s) != s {
			out = append(out, strings.ToLower(s))
		}
	}
	return out
}
