package emulator

import (
	"encoding/json"
	"slices"
)

// Spec IDs the emulator knows.
const (
	// CapillaryConnectionSpecID is the Capillary Streaming Events connection
	// spec as printed by Adobe (a Streaming-SDK source: empty authSpec).
	CapillaryConnectionSpecID = "6360f136-5980-4111-8bdf-15d29eab3b5a"
	// GenericStreamingConnectionSpecID is the Streaming SDK's own generic
	// source spec, listed in GenericStreamingAEP's sourceConnectionSpecIds.
	GenericStreamingConnectionSpecID = "e77fd9d2-22a8-11ed-861d-0242ac120002"
	// DataLakeConnectionSpecID is the data lake target connection spec.
	DataLakeConnectionSpecID = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
	// StreamingFlowSpecID is GenericStreamingAEP, the flow spec of
	// Streaming-SDK sources.
	StreamingFlowSpecID = "e77fde5a-22a8-11ed-861d-0242ac120002"
	// RestBatchFlowSpecID is RestStorageToAEP, the batch flow spec Adobe's
	// Capillary page also prints; it does not list the Capillary spec, so an
	// operator that picks the flow spec by sourceConnectionSpecIds skips it.
	RestBatchFlowSpecID = "6499120c-0b15-42dc-936e-847ea3c24d72"
	// StreamingProviderID is the Streaming SDK provider.
	StreamingProviderID = "521eee4d-8cbe-4906-bb48-fb6bd4450033"
)

type specSet struct {
	kind  string // "connectionSpecs" or "flowSpecs", for error reports
	items []map[string]any
}

func (s specSet) get(id string) map[string]any {
	for _, it := range s.items {
		if it["id"] == id {
			return cloneMap(it)
		}
	}
	return nil
}

func (s specSet) all() []map[string]any {
	out := make([]map[string]any, len(s.items))
	for i, it := range s.items {
		out[i] = cloneMap(it)
	}
	return out
}

// connectionSpecs are the connection specs of the none variant; see
// connectionSpecsFor for the others.
var connectionSpecs = specSet{kind: "connectionSpecs", items: mustDocs(`[
{
  "id": "` + CapillaryConnectionSpecID + `",
  "name": "generic-streaming",
  "type": "generic-streaming",
  "providerId": "` + StreamingProviderID + `",
  "version": "1.0",
  "description": "Capillary Streaming Events",
  "attributes": {
    "category": "Loyalty",
    "connectorName": "Capillary Streaming Events",
    "isSource": true,
    "isPreview": true,
    "uiAttributes": {"apiFeatures": {"updateSupported": false}}
  },
  "authSpec": [],
  "sourceSpec": {
    "attributes": {
      "authRequired": false,
      "uiAttributes": {
        "isSource": true,
        "isBeta": true,
        "monitoringSupported": false,
        "category": {"key": "loyalty"},
        "icon": {"key": "capillary"},
        "description": {"text": "Stream loyalty profiles and events from Capillary to Experience Platform."},
        "label": {"text": "Capillary Streaming Events"},
        "frequency": {"text": "streaming"}
      }
    }
  },
  "exploreSpec": {"type": "StreamingConnection"},
  "permissionsInfo": {
    "view": [{"@type": "lowLevel", "name": "StreamingSource", "permissions": ["read"]}],
    "manage": [{"@type": "lowLevel", "name": "StreamingSource", "permissions": ["write"]}]
  }
},
{
  "id": "` + GenericStreamingConnectionSpecID + `",
  "name": "generic-streaming",
  "type": "generic-streaming",
  "providerId": "` + StreamingProviderID + `",
  "version": "1.0",
  "attributes": {"category": "Streaming", "isSource": true, "uiAttributes": {"apiFeatures": {"updateSupported": false}}},
  "authSpec": [],
  "sourceSpec": {
    "attributes": {
      "authRequired": false,
      "uiAttributes": {
        "isSource": true,
        "category": {"key": "streaming"},
        "label": {"text": "Generic"},
        "frequency": {"text": "streaming"}
      }
    }
  },
  "exploreSpec": {"type": "StreamingConnection"}
},
{
  "id": "` + DataLakeConnectionSpecID + `",
  "name": "Data Lake",
  "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a",
  "version": "1.0",
  "attributes": {"isSource": false, "isDestination": false, "category": "Data Lake"},
  "authSpec": [],
  "targetSpec": {"name": "Data Lake", "type": "DataLake"}
}
]`)}

// flowSpecs are the flow specs every run serves. GenericStreamingAEP's
// optionSpec is Adobe's published one (help/sources/sources-sdk/streaming/
// update-flow-specs.md: errorDiagnosticsEnabled, partialIngestionPercent with
// exclusiveMinimum 0, inletUrl) plus `"maximum": 100` on
// partialIngestionPercent, the emulator's assumption for a percentage.
var flowSpecs = specSet{kind: "flowSpecs", items: mustDocs(`[
{
  "id": "` + StreamingFlowSpecID + `",
  "name": "GenericStreamingAEP",
  "providerId": "` + StreamingProviderID + `",
  "version": "1.0",
  "sourceConnectionSpecIds": ["` + GenericStreamingConnectionSpecID + `", "` + CapillaryConnectionSpecID + `"],
  "targetConnectionSpecIds": ["` + DataLakeConnectionSpecID + `"],
  "optionSpec": {
    "name": "OptionSpec",
    "spec": {
      "$schema": "http://json-schema.org/draft-07/schema#",
      "type": "object",
      "properties": {
        "errorDiagnosticsEnabled": {"title": "Error diagnostics.", "description": "Flag to enable detailed and sample error diagnostics summary.", "type": "boolean", "default": false},
        "partialIngestionPercent": {"title": "Partial ingestion threshold.", "description": "Percentage which defines the threshold of errors allowed before the run is marked as failed.", "type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "inletUrl": {"title": "Inlet Url.", "description": "Inlet Url which defines the streaming endpoint.", "type": "string"}
      }
    }
  },
  "transformationSpecs": [{
    "name": "Mapping",
    "spec": {
      "$schema": "http://json-schema.org/draft-07/schema#",
      "type": "object",
      "properties": {"mappingId": {"type": "string"}, "mappingVersion": {"type": "string"}}
    }
  }],
  "attributes": {
    "isSourceFlow": true,
    "flacValidationSupported": true,
    "frequency": "streaming",
    "uiAttributes": {"apiFeatures": {"updateSupported": true, "flowRunsSupported": true}}
  },
  "permissionsInfo": {
    "view": [{"@type": "lowLevel", "name": "StreamingSource", "permissions": ["read"]}],
    "manage": [{"@type": "lowLevel", "name": "StreamingSource", "permissions": ["write"]}]
  }
},
{
  "id": "` + RestBatchFlowSpecID + `",
  "name": "RestStorageToAEP",
  "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a",
  "version": "1.0",
  "sourceConnectionSpecIds": [],
  "targetConnectionSpecIds": ["` + DataLakeConnectionSpecID + `"],
  "transformationSpecs": [{"name": "Copy"}, {"name": "Mapping"}],
  "scheduleSpec": {"name": "PeriodicSchedule", "type": "Periodic"},
  "attributes": {"isSourceFlow": true, "frequency": "scheduled"}
}
]`)}

// connectionSpecsFor returns the connection specs a run serves: the
// Capillary spec carries the variant's authSpec, and sourceSpec.attributes.
// authRequired is true exactly when that authSpec is not empty (the Streaming
// SDK's generic spec pairs `"authSpec": []` with authRequired false,
// help/sources/sources-sdk/streaming/create.md).
func connectionSpecsFor(a ConnectionAuth) specSet {
	out := specSet{kind: connectionSpecs.kind, items: connectionSpecs.all()}
	var auth []any
	if err := json.Unmarshal([]byte(authSpecJSON(a)), &auth); err != nil {
		panic("emulator: built-in authSpec: " + err.Error())
	}
	for _, it := range out.items {
		if it["id"] != CapillaryConnectionSpecID {
			continue
		}
		it["authSpec"] = auth
		attrs, _ := mapAt(it, "sourceSpec", "attributes")
		attrs["authRequired"] = len(auth) > 0
	}
	return out
}

func mustDocs(s string) []map[string]any {
	var docs []map[string]any
	if err := json.Unmarshal([]byte(s), &docs); err != nil {
		panic("emulator: built-in spec: " + err.Error())
	}
	return docs
}

// sourceSpecIDs / targetSpecIDs returns the spec IDs a flow spec accepts.
func specIDs(flowSpec map[string]any, field string) []string {
	var out []string
	arr, _ := flowSpec[field].([]any)
	for _, v := range arr {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func isSourceSpec(id string) bool {
	return id == CapillaryConnectionSpecID || id == GenericStreamingConnectionSpecID
}

func flowSpecAccepts(flowSpec map[string]any, field, connSpecID string) bool {
	return slices.Contains(specIDs(flowSpec, field), connSpecID)
}
