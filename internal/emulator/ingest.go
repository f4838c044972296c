package emulator

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the collection endpoint does with an event once it has passed the
// inlet's authentication and flow-ID checks (docs/emulator.md, "Ingestion").
//
// Two stages, as Adobe describes streaming ingestion:
//
//   - The edge (the Data Collection Core Service, DCCS) checks each
//     message's envelope synchronously and answers 400 for a message it
//     cannot take ("Message has unknown xdm format", "Message has an absent
//     or wrong ims org in the header": help/ingestion/tutorials/
//     streaming-multiple-messages.md). Such a message never reaches the
//     dataflow: no run counts it.
//   - The dataflow then applies the mapping set and validates the result,
//     asynchronously: the post was already answered 200 (207 for a batch),
//     and a record that fails is counted as failed in the flow's run with
//     Adobe's error code (help/sources/tutorials/api/monitor.md). With
//     ?syncValidation=true (streaming-ingestion.yaml) a failing record is
//     answered 400 instead and dropped ("Records that fail validation are
//     dropped and return an error message", streaming troubleshooting).

// Error codes of failed records.
const (
	// CodeRequiredFieldMissing: a mapped source attribute is absent or
	// null. Adobe's "A required field is either missing or has a value of
	// null" (help/ingestion/quality/error-diagnostics.md); Data Prep rejects
	// a row whose pass-through mapping has no incoming value
	// (help/data-prep/troubleshooting-guide.md).
	CodeRequiredFieldMissing = "INGEST-1555-400"
	// CodeMapperTransform: a mapped value of the wrong type for its XDM
	// field. Adobe's "Mapper Transform Error" (monitor.md); a mismatch of
	// XDM data types is a mapper error, not a warning
	// (help/sources/tutorials/ui/monitor-streaming.md).
	CodeMapperTransform = "MAPPER-3700-400"
	// CodeXDMValidation: an XDM-shaped record (no mapping set) with a value
	// of the wrong type. Not in Adobe's documentation pages; reported by
	// users on Adobe's Experience League community for streaming validation
	// failures ("The message cannot be validated: … expected type").
	CodeXDMValidation = "DCVS-1101-400"
	// CodeIngestSummary heads a run activity's errors when records failed:
	// "Encountered N errors in the data. Successfully ingested M rows."
	// (monitor.md, error-diagnostics.md).
	CodeIngestSummary = "INGEST-1212-400"
)

var codeMessages = map[string]string{
	CodeRequiredFieldMissing: "A required field is either missing or has a value of null. Add the required field to the input row and try again.",
	CodeMapperTransform:      "Mapper Transform Error",
	CodeXDMValidation:        "The message cannot be validated against the XDM schema of the dataset.",
}

// xdmFieldTypes is the small XDM schema the emulator knows: the JSON type
// each of these destination paths takes (Capillary's field guidance, §3.6 of
// the reference notes). A mapped or XDM-shaped value of another JSON type
// fails; other paths are not type-checked. The emulator does not convert
// ("120" is not a number). The emulator's assumption, kept small on purpose.
var xdmFieldTypes = map[string]string{
	"loyalty.points":            "number",
	"loyalty.tier":              "string",
	"commerce.order.priceTotal": "number",
}

// XDMFieldTypes returns the XDM destination paths whose JSON type the
// emulator checks, and the type each takes ("number", "string").
func XDMFieldTypes() map[string]string {
	out := make(map[string]string, len(xdmFieldTypes))
	for k, v := range xdmFieldTypes {
		out[k] = v
	}
	return out
}

// RecordOutcome says what happened to one posted record.
type RecordOutcome string

const (
	// OutcomeIngested: counted in a run, written to the dataset.
	OutcomeIngested RecordOutcome = "ingested"
	// OutcomeFailed: counted in a run as failed, with an error code.
	OutcomeFailed RecordOutcome = "failed"
	// OutcomeRejected: refused synchronously (400, or a 400 entry in a
	// batch answer): an envelope the edge cannot take, or a failure under
	// syncValidation. Not counted in any run.
	OutcomeRejected RecordOutcome = "rejected"
	// OutcomeDroppedWarmup: accepted by the edge during the inlet's warm-up
	// and lost. Not counted in any run.
	OutcomeDroppedWarmup RecordOutcome = "dropped-warmup"
	// OutcomeDroppedDisabled: accepted by the edge while the flow is
	// disabled and not processed. Not counted in any run.
	OutcomeDroppedDisabled RecordOutcome = "dropped-disabled"
)

// Record is one posted record as the emulator handled it (introspection).
type Record struct {
	FlowID     string        `json:"flowId"`
	RunID      string        `json:"runId,omitempty"`
	ReceivedAt time.Time     `json:"receivedAt"`
	Outcome    RecordOutcome `json:"outcome"`
	// ErrorCode is set for failed records and for records rejected under
	// syncValidation.
	ErrorCode string `json:"errorCode,omitempty"`
	// Reason says why in words (never needed to tell outcomes apart).
	Reason string `json:"reason,omitempty"`
	// Input is the posted message; Output the record written to the
	// dataset (after mapping), for ingested records.
	Input  any            `json:"input"`
	Output map[string]any `json:"output,omitempty"`
}

// maxRecords bounds the introspection log; older records are forgotten.
const maxRecords = 10000

// mappingRule is one mapping of a flow's mapping set.
type mappingRule struct {
	source, dest string
}

// flowPipeline is what processing a flow's records needs, read from the
// store once per post; e.mu must be held while building it.
type flowPipeline struct {
	flow     *record
	mapped   bool // the flow has a Mapping transformation
	rules    []mappingRule
	schemaID string // target connection's schema, "" when unknown
	dataset  string // target connection's dataset, "" when unknown
}

func (e *Emulator) pipelineLocked(flow *record) flowPipeline {
	p := flowPipeline{flow: flow}
	if ids, _ := stringList(flow.Doc["targetConnectionIds"]); len(ids) > 0 {
		if t := e.store.get(KindTargetConnection, ids[0], flow.Org, flow.Sandbox); t != nil {
			p.schemaID = str(t.Doc, "data", "schema", "id")
			p.dataset = str(t.Doc, "params", "dataSetId")
		}
	}
	ts, _ := flow.Doc["transformations"].([]any)
	for _, t := range ts {
		tm, _ := t.(map[string]any)
		if str(tm, "name") != "Mapping" {
			continue
		}
		p.mapped = true
		params, _ := tm["params"].(map[string]any)
		ms := e.store.get(KindMappingSet, str(params, "mappingId"), flow.Org, flow.Sandbox)
		if ms == nil {
			break // a vanished mapping set maps nothing
		}
		ver, ok := parseInt(params["mappingVersion"])
		if !ok {
			ver = intField(ms.Doc, "version")
		}
		mappings, _ := ms.versionDoc(ver)["mappings"].([]any)
		for _, m := range mappings {
			mm, _ := m.(map[string]any)
			// Calculated fields (sourceType EXPRESSION and the like) are
			// not evaluated.
			if st := str(mm, "sourceType"); st != "" && !strings.EqualFold(st, "ATTRIBUTE") {
				continue
			}
			src, dest := str(mm, "sourceAttribute"), str(mm, "destinationXdmPath")
			if src == "" {
				src = str(mm, "source")
			}
			if dest == "" {
				dest = str(mm, "destination")
			}
			if src != "" && dest != "" {
				p.rules = append(p.rules, mappingRule{source: src, dest: dest})
			}
		}
		break // transformations[0] is the mapping (update-dataflows.md)
	}
	return p
}

// edgeCheck is the DCCS envelope check; it returns why the edge refuses a
// message, or "". A flow with a mapping set takes raw JSON objects; a flow
// without one takes XDM messages as streaming-ingestion.yaml's
// streamingMessage describes them.
func (p flowPipeline) edgeCheck(msg any) string {
	obj, ok := msg.(map[string]any)
	if !ok {
		return "Message has unknown xdm format"
	}
	if p.mapped {
		return ""
	}
	header, _ := obj["header"].(map[string]any)
	body, _ := obj["body"].(map[string]any)
	entity, _ := body["xdmEntity"].(map[string]any)
	schema := str(header, "schemaRef", "id")
	if header == nil || body == nil || entity == nil || schema == "" ||
		str(header, "schemaRef", "contentType") == "" || str(header, "datasetId") == "" {
		return "Message has unknown xdm format"
	}
	if org, has := header["imsOrgId"]; has && org != p.flow.Org {
		return "Message has an absent or wrong ims org in the header"
	}
	if meta := str(body, "xdmMeta", "schemaRef", "id"); meta != schema ||
		(p.schemaID != "" && schema != p.schemaID) ||
		(p.dataset != "" && str(header, "datasetId") != p.dataset) {
		return "Message has unknown xdm format"
	}
	return ""
}

// process maps and validates a record the edge accepted. It returns the
// written record, or the error code and reason of a failure.
func (p flowPipeline) process(msg any) (out map[string]any, code, reason string) {
	obj := msg.(map[string]any)
	if !p.mapped {
		entity := obj["body"].(map[string]any)["xdmEntity"].(map[string]any)
		for _, path := range slices.Sorted(maps.Keys(xdmFieldTypes)) {
			want := xdmFieldTypes[path]
			if v, ok := lookupPath(entity, path); ok && v != nil && jsonType(v) != want {
				return nil, CodeXDMValidation, "#/" + strings.ReplaceAll(path, ".", "/") + ": expected type: " + want + ", found: " + jsonType(v)
			}
		}
		return cloneMap(entity), "", ""
	}
	out = map[string]any{}
	for _, r := range p.rules {
		v, ok := lookupPath(obj, r.source)
		if !ok || v == nil {
			return nil, CodeRequiredFieldMissing, "the mapped source attribute " + r.source + " is missing or null"
		}
		dest := strings.TrimPrefix(r.dest, "xdm:")
		if want, known := xdmFieldTypes[dest]; known && jsonType(v) != want {
			return nil, CodeMapperTransform, "the value of " + r.source + " is a " + jsonType(v) + "; " + dest + " takes a " + want
		}
		setPath(out, dest, cloneValue(v))
	}
	return out, "", ""
}

// lookupPath follows a dotted path such as "loyalty.points" or
// "items[0].sku" into a JSON document.
func lookupPath(doc any, path string) (any, bool) {
	cur := doc
	for _, seg := range strings.Split(path, ".") {
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			n, err := strconv.Atoi(seg[i+1 : len(seg)-1])
			if err != nil {
				return nil, false
			}
			name, idx = seg[:i], n
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
		if idx >= 0 {
			arr, ok := cur.([]any)
			if !ok || idx >= len(arr) {
				return nil, false
			}
			cur = arr[idx]
		}
	}
	return cur, true
}

// setPath writes v at a dotted path of nested objects (segment names taken
// literally).
func setPath(doc map[string]any, path string, v any) {
	segs := strings.Split(path, ".")
	cur := doc
	for _, s := range segs[:len(segs)-1] {
		next, ok := cur[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[s] = next
		}
		cur = next
	}
	cur[segs[len(segs)-1]] = v
}

// jsonType names a decoded JSON value's type as JSON Schema does.
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "unknown"
}

func jsonSize(v any) int64 {
	b, _ := json.Marshal(v)
	return int64(len(b))
}
