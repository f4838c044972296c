package emulator

import (
	"net/http"
	"sort"
)

// validateFlowOptions checks a flow's options against its flow spec's
// optionSpec (Adobe's GenericStreamingAEP optionSpec, see flowSpecs): each
// option must be one the spec defines, and the options together must satisfy
// its JSON schema. options.inletUrl is the emulator's own (read-only) and is
// not checked. flow-service.yaml's CreateFlowRequest has no `options`; the
// emulator follows the flow spec's optionSpec, as the Streaming SDK pages
// and the flow GET example (options.errorDiagnosticsEnabled beside
// options.inletUrl) do.
func (e *Emulator) validateFlowOptions(flowSpecID string, doc map[string]any) *apiError {
	raw, has := doc["options"]
	if !has || raw == nil {
		return nil
	}
	opts, ok := raw.(map[string]any)
	if !ok {
		return errBadRequest("Failed to parse options in flow request: options must be an object.")
	}
	check := make(map[string]any, len(opts))
	for k, v := range opts {
		if k != "inletUrl" {
			check[k] = v
		}
	}
	if len(check) == 0 {
		return nil
	}
	schema := e.optionSchemas[flowSpecID]
	names := make([]string, 0, len(check))
	for k := range check {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if schema == nil || !schema.props[k] {
			return errOption(k, "is not offered by the flow spec "+flowSpecID)
		}
	}
	if v := schema.check(check); v != nil {
		return errOption(v.property, v.reason)
	}
	return nil
}

// errOption is the answer to an option the flow spec refuses. Adobe's
// catalogue has no dedicated code; the emulator uses its generic one.
func errOption(name, reason string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1100-400", title: "Invalid request",
		detail: "The request could not be processed. Error from flow provider: the option " + name + " " + reason + ".",
		report: map[string]any{"property": "options." + name}}
}
