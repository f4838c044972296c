package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// patchOp is one JSON Patch (RFC 6902) instruction as the client sent it.
// Adobe documents add, replace and remove; its spec prints them uppercase,
// its examples lowercase, so the op is matched case-insensitively.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

func errPatch(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1455-400", title: "Invalid request",
		detail: "An error has occurred while validating patch instructions: " + detail}
}

// splitPointer decodes a JSON pointer (RFC 6901) into its reference tokens,
// which the read-only rules are written against.
func splitPointer(p string) ([]string, error) {
	if p == "" || p[0] != '/' {
		return nil, fmt.Errorf("path %q is not a JSON pointer", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// applyPatch checks ops the way Flow Service does (only add, replace and
// remove; no read-only field; a value where one is needed) and returns doc
// with them applied; doc itself is left alone. readOnly reports whether a
// path may not be changed, returning the error to answer.
func applyPatch(doc map[string]any, ops []patchOp, readOnly func(parts []string) *apiError) (map[string]any, *apiError) {
	if len(ops) == 0 {
		return nil, errEmptyBody()
	}
	patch := make(jsonpatch.Patch, 0, len(ops))
	for _, op := range ops {
		parts, err := splitPointer(op.Path)
		if err != nil {
			return nil, errPatch(err.Error())
		}
		if aerr := readOnly(parts); aerr != nil {
			return nil, aerr
		}
		kind := strings.ToLower(op.Op)
		switch kind {
		case "add", "replace", "remove":
		default:
			return nil, &apiError{status: http.StatusBadRequest, code: "1434-400", title: "Invalid request",
				detail: "Unsupported operation '" + op.Op + "' received. Please use one of the supported operation types and try again."}
		}
		if kind != "remove" && len(op.Value) == 0 {
			return nil, errPatch(fmt.Sprintf("Missing field \"value\" for %s %s", op.Op, op.Path))
		}
		patch = append(patch, jsonOperation(kind, op))
	}

	src, err := json.Marshal(doc)
	if err != nil {
		return nil, errPatch("the stored object could not be encoded: " + err.Error())
	}
	opts := jsonpatch.NewApplyOptions()
	opts.SupportNegativeIndices = false // RFC 6902 has none; neither does Adobe
	patched, err := patch.ApplyWithOptions(src, opts)
	if err != nil {
		return nil, errPatch(err.Error())
	}
	var out map[string]any
	if err := json.Unmarshal(patched, &out); err != nil {
		return nil, errPatch("the patched object is not a JSON object: " + err.Error())
	}
	return out, nil
}

// jsonOperation is op in json-patch's form, with the op name lowercased.
func jsonOperation(kind string, op patchOp) jsonpatch.Operation {
	raw := func(v any) *json.RawMessage {
		b, _ := json.Marshal(v) // a string always encodes
		m := json.RawMessage(b)
		return &m
	}
	out := jsonpatch.Operation{"op": raw(kind), "path": raw(op.Path)}
	if kind != "remove" {
		v := op.Value
		out["value"] = &v
	}
	return out
}
