package emulator

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestApplyPatch(t *testing.T) {
	const stored = `{"name":"n","tags":["a","b"],"params":{"x":1},"flag":true}`
	noReadOnly := func([]string) *apiError { return nil }
	for _, tc := range []struct {
		name     string
		ops      string
		want     string // the patched document; empty when an error is wanted
		wantCode string
	}{
		{"replace", `[{"op":"replace","path":"/name","value":"m"}]`,
			`{"name":"m","tags":["a","b"],"params":{"x":1},"flag":true}`, ""},
		{"uppercase op", `[{"op":"REPLACE","path":"/params/x","value":2}]`,
			`{"name":"n","tags":["a","b"],"params":{"x":2},"flag":true}`, ""},
		{"add a field, then remove another", `[{"op":"add","path":"/description","value":"d"},{"op":"remove","path":"/flag"}]`,
			`{"name":"n","tags":["a","b"],"params":{"x":1},"description":"d"}`, ""},
		{"add at an index and at the end", `[{"op":"add","path":"/tags/0","value":"z"},{"op":"add","path":"/tags/-","value":"e"}]`,
			`{"name":"n","tags":["z","a","b","e"],"params":{"x":1},"flag":true}`, ""},
		{"remove an element", `[{"op":"remove","path":"/tags/0"}]`,
			`{"name":"n","tags":["b"],"params":{"x":1},"flag":true}`, ""},
		{"null value", `[{"op":"replace","path":"/name","value":null}]`,
			`{"name":null,"tags":["a","b"],"params":{"x":1},"flag":true}`, ""},
		{"escaped pointer", `[{"op":"add","path":"/params/a~1b","value":1}]`,
			`{"name":"n","tags":["a","b"],"params":{"x":1,"a/b":1},"flag":true}`, ""},
		{"no ops", `[]`, "", "1405-400"},
		{"replace a missing field", `[{"op":"replace","path":"/nothing","value":1}]`, "", "1455-400"},
		{"remove a missing field", `[{"op":"remove","path":"/nothing"}]`, "", "1455-400"},
		{"add below a missing field", `[{"op":"add","path":"/a/b","value":1}]`, "", "1455-400"},
		{"index out of range", `[{"op":"replace","path":"/tags/5","value":"x"}]`, "", "1455-400"},
		{"negative index", `[{"op":"remove","path":"/tags/-1"}]`, "", "1455-400"},
		{"missing value", `[{"op":"add","path":"/x"}]`, "", "1455-400"},
		{"not a pointer", `[{"op":"add","path":"x","value":1}]`, "", "1455-400"},
		{"move is not supported", `[{"op":"move","from":"/name","path":"/title"}]`, "", "1434-400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal([]byte(stored), &doc); err != nil {
				t.Fatal(err)
			}
			var ops []patchOp
			if err := json.Unmarshal([]byte(tc.ops), &ops); err != nil {
				t.Fatal(err)
			}
			got, aerr := applyPatch(doc, ops, noReadOnly)
			if tc.wantCode != "" {
				if aerr == nil || aerr.code != tc.wantCode {
					t.Fatalf("error = %+v, want code %s", aerr, tc.wantCode)
				}
				return
			}
			if aerr != nil {
				t.Fatalf("applyPatch: %+v", aerr)
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("patched (-want +got):\n%s", diff)
			}
			var unchanged map[string]any
			_ = json.Unmarshal([]byte(stored), &unchanged)
			if diff := cmp.Diff(unchanged, doc); diff != "" {
				t.Errorf("the stored document changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyPatchReadOnly(t *testing.T) {
	refused := errPatch("Field id is read-only")
	readOnly := func(parts []string) *apiError {
		if parts[0] == "id" {
			return refused
		}
		return nil
	}
	ops := []patchOp{{Op: "replace", Path: "/name", Value: json.RawMessage(`"x"`)}, {Op: "remove", Path: "/id"}}
	if _, aerr := applyPatch(map[string]any{"id": "1", "name": "n"}, ops, readOnly); aerr != refused {
		t.Errorf("error = %+v, want the read-only refusal", aerr)
	}
}
