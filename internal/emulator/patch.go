package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// patchOp is one JSON Patch (RFC 6902) instruction. Adobe documents add,
// replace and remove; its spec prints them uppercase, its examples lowercase,
// so the op is matched case-insensitively.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

func errPatch(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1455-400", title: "Invalid request",
		detail: "An error has occurred while validating patch instructions: " + detail}
}

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

// applyPatch applies ops to doc in place. readOnly reports whether a
// top-level field (or "field/sub" prefix) may not be changed, returning the
// error to answer.
func applyPatch(doc map[string]any, ops []patchOp, readOnly func(parts []string) *apiError) *apiError {
	if len(ops) == 0 {
		return errEmptyBody()
	}
	for _, op := range ops {
		parts, err := splitPointer(op.Path)
		if err != nil {
			return errPatch(err.Error())
		}
		if aerr := readOnly(parts); aerr != nil {
			return aerr
		}
		kind := strings.ToLower(op.Op)
		switch kind {
		case "add", "replace", "remove":
		default:
			return &apiError{status: http.StatusBadRequest, code: "1434-400", title: "Invalid request",
				detail: "Unsupported operation '" + op.Op + "' received. Please use one of the supported operation types and try again."}
		}
		var value any
		if kind == "add" || kind == "replace" {
			if len(op.Value) == 0 {
				return errPatch(fmt.Sprintf("Missing field \"value\" for %s %s", op.Op, op.Path))
			}
			if err := json.Unmarshal(op.Value, &value); err != nil {
				return errPatch("invalid value for " + op.Path)
			}
		}
		if _, err := patchAt(doc, parts, kind, value); err != nil {
			return errPatch(err.Error())
		}
	}
	return nil
}

// patchAt applies one operation at parts below cur and returns the new
// value of cur (arrays are replaced when they grow or shrink; maps change in
// place).
func patchAt(cur any, parts []string, kind string, value any) (any, error) {
	key := parts[0]
	last := len(parts) == 1
	switch c := cur.(type) {
	case map[string]any:
		existing, exists := c[key]
		if !last {
			if !exists {
				return nil, fmt.Errorf("missing field %q", key)
			}
			next, err := patchAt(existing, parts[1:], kind, value)
			if err != nil {
				return nil, err
			}
			c[key] = next
			return c, nil
		}
		switch kind {
		case "add":
			c[key] = value
		case "replace":
			if !exists {
				return nil, fmt.Errorf("missing field %q", key)
			}
			c[key] = value
		case "remove":
			if !exists {
				return nil, fmt.Errorf("missing field %q", key)
			}
			delete(c, key)
		}
		return c, nil
	case []any:
		if key == "-" && last && kind == "add" {
			return append(c, value), nil
		}
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i > len(c) || (i == len(c) && !(last && kind == "add")) {
			return nil, fmt.Errorf("index %q out of range", key)
		}
		if !last {
			next, err := patchAt(c[i], parts[1:], kind, value)
			if err != nil {
				return nil, err
			}
			c[i] = next
			return c, nil
		}
		switch kind {
		case "add":
			out := make([]any, 0, len(c)+1)
			out = append(out, c[:i]...)
			out = append(out, value)
			return append(out, c[i:]...), nil
		case "replace":
			c[i] = value
			return c, nil
		default: // remove
			out := make([]any, 0, len(c)-1)
			out = append(out, c[:i]...)
			return append(out, c[i+1:]...), nil
		}
	default:
		return nil, fmt.Errorf("missing field %q", key)
	}
}
