package emulator

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aepoperator/capillary-operator/internal/aepspec/aepspectest"
)

// xdmMessage is an XDM streaming message (streaming-ingestion.yaml
// streamingMessage) for the test target connection's schema and dataset.
func xdmMessage(org string, entity map[string]any) []byte {
	ref := map[string]any{"id": testSchema, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
	header := map[string]any{"schemaRef": ref, "datasetId": testDataset}
	if org != "" {
		header["imsOrgId"] = org
	}
	b, _ := json.Marshal(map[string]any{
		"header": header,
		"body":   map[string]any{"xdmMeta": map[string]any{"schemaRef": ref}, "xdmEntity": entity},
	})
	return b
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ingestEnv is an emulator on a settable clock with one flow of the
// Capillary spec (no authentication) mapping loyalty.points and loyalty.tier.
type ingestEnv struct {
	*env
	clock *fakeClock
	c     created
	inlet string
}

func newIngestEnv(t *testing.T, opts Options) *ingestEnv {
	t.Helper()
	clock := newFakeClock()
	opts.Clock = clock.Now
	if opts.SpecValidator == nil {
		opts.SpecValidator = aepspectest.Validator(t)
	}
	v := newEnv(t, opts)
	c := v.createAll("ingest")
	res := v.do(http.MethodGet, fsPath("/flows/"+c.flow), nil)
	mustStatus(t, "GET flow", res, http.StatusOK)
	inlet, _ := Object{Doc: res.items()[0]}.Field("options.inletUrl").(string)
	return &ingestEnv{env: v, clock: clock, c: c, inlet: strings.TrimPrefix(inlet, v.url)}
}

func (v *ingestEnv) post(body []byte, mods ...func(*http.Request)) response {
	v.t.Helper()
	return v.send(v.collectRequest(v.inlet, body, mods...))
}

func (v *ingestEnv) batchPath() string {
	return CollectionPrefix + "/batch/" + strings.TrimPrefix(v.inlet, CollectionPrefix+"/")
}

func (v *ingestEnv) onlyRun() Run {
	v.t.Helper()
	runs := v.emu.Runs(v.c.flow)
	if len(runs) != 1 {
		v.t.Fatalf("runs = %d, want 1: %+v", len(runs), runs)
	}
	return runs[0]
}

var goodEvent = map[string]any{"eventName": "pointsIssued", "loyalty": map[string]any{"points": 120.0, "tier": "gold"}}

// Each record through a mapping set: the status code the post gets, the
// outcome and the error code the run counts.
func TestIngestMappedRecords(t *testing.T) {
	cases := []struct {
		name       string
		body       any
		sync       bool
		wantStatus int
		outcome    RecordOutcome
		code       string
	}{
		{name: "every mapped attribute, right types", body: goodEvent, wantStatus: 200, outcome: OutcomeIngested},
		{name: "extra attributes are ignored", body: map[string]any{"x": 1.0, "loyalty": map[string]any{"points": 0.0, "tier": "t"}}, wantStatus: 200, outcome: OutcomeIngested},
		{name: "a mapped attribute missing", body: map[string]any{"loyalty": map[string]any{"points": 5.0}}, wantStatus: 200, outcome: OutcomeFailed, code: CodeRequiredFieldMissing},
		{name: "a mapped attribute null", body: map[string]any{"loyalty": map[string]any{"points": 5.0, "tier": nil}}, wantStatus: 200, outcome: OutcomeFailed, code: CodeRequiredFieldMissing},
		{name: "points not a number", body: map[string]any{"loyalty": map[string]any{"points": "many", "tier": "gold"}}, wantStatus: 200, outcome: OutcomeFailed, code: CodeMapperTransform},
		{name: "a numeric string is not converted", body: map[string]any{"loyalty": map[string]any{"points": "120", "tier": "gold"}}, wantStatus: 200, outcome: OutcomeFailed, code: CodeMapperTransform},
		{name: "tier not a string", body: map[string]any{"loyalty": map[string]any{"points": 1.0, "tier": 3.0}}, wantStatus: 200, outcome: OutcomeFailed, code: CodeMapperTransform},
		{name: "not an object: refused at the edge", body: []any{1.0}, wantStatus: 400, outcome: OutcomeRejected},
		{name: "syncValidation refuses a failing record", body: map[string]any{"loyalty": map[string]any{"points": "x", "tier": "gold"}}, sync: true, wantStatus: 400, outcome: OutcomeRejected, code: CodeMapperTransform},
		{name: "syncValidation takes a good record", body: goodEvent, sync: true, wantStatus: 200, outcome: OutcomeIngested},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newIngestEnv(t, Options{})
			var mods []func(*http.Request)
			if tc.sync {
				mods = append(mods, withQuery("syncValidation", "true"))
			}
			res := v.post(mustJSON(t, tc.body), mods...)
			mustStatus(t, "post", res, tc.wantStatus)
			if tc.wantStatus == http.StatusBadRequest {
				if res.problemType() != DCSInletProblem {
					t.Errorf("type = %q, want %q", res.problemType(), DCSInletProblem)
				}
				if rep, _ := res.json()["report"].(map[string]any); tc.code != "" && rep["code"] != tc.code {
					t.Errorf("report.code = %v, want %s", rep["code"], tc.code)
				}
			}
			recs := v.emu.Records(v.c.flow)
			if len(recs) != 1 || recs[0].Outcome != tc.outcome || recs[0].ErrorCode != tc.code {
				t.Fatalf("records = %+v, want one %s with code %q", recs, tc.outcome, tc.code)
			}
			runs := v.emu.Runs(v.c.flow)
			counted := tc.outcome == OutcomeIngested || tc.outcome == OutcomeFailed
			if !counted {
				if len(runs) != 0 {
					t.Errorf("runs = %+v, want none for a refused record", runs)
				}
				return
			}
			r := v.onlyRun()
			wantFailed := 0
			if tc.outcome == OutcomeFailed {
				wantFailed = 1
			}
			if r.InputRecords != 1 || r.FailedRecords != wantFailed || r.OutputRecords != 1-wantFailed || recs[0].RunID != r.ID {
				t.Errorf("run = %+v, want 1 input, %d failed", r, wantFailed)
			}
			if tc.code != "" && (len(r.Errors) != 1 || r.Errors[0].Code != tc.code || r.Errors[0].Count != 1) {
				t.Errorf("run errors = %+v, want %s ×1", r.Errors, tc.code)
			}
			if tc.outcome == OutcomeIngested {
				if got := (Object{Doc: recs[0].Output}).Field("loyalty.tier"); got == nil {
					t.Errorf("output = %v, want the mapped loyalty.tier", recs[0].Output)
				}
			}
		})
	}
}

// A batch is answered 207 with one entry per message: an xactionId for a
// message the edge took, statusCode 400 for one it refused.
func TestIngestBatch(t *testing.T) {
	v := newIngestEnv(t, Options{})
	bad := map[string]any{"loyalty": map[string]any{"points": "x", "tier": "gold"}}
	missing := map[string]any{"loyalty": map[string]any{"tier": "gold"}}
	body := mustJSON(t, map[string]any{"messages": []any{goodEvent, bad, "not an object", goodEvent, missing}})
	res := v.send(v.collectRequest(v.batchPath(), body))
	mustStatus(t, "batch", res, http.StatusMultiStatus)
	rs, _ := res.json()["responses"].([]any)
	if len(rs) != 5 {
		t.Fatalf("responses = %s", res.body)
	}
	for i, wantRefused := range []bool{false, false, true, false, false} {
		entry, _ := rs[i].(map[string]any)
		_, hasX := entry["xactionId"]
		if refused := entry["statusCode"] == float64(400); refused != wantRefused || hasX == refused {
			t.Errorf("responses[%d] = %v, want refused=%v", i, entry, wantRefused)
		}
	}
	r := v.onlyRun()
	if r.InputRecords != 4 || r.OutputRecords != 2 || r.FailedRecords != 2 || len(r.Errors) != 2 {
		t.Errorf("run = %+v, want 4 in, 2 out, 2 failed with two codes", r)
	}

	// syncValidation: the failing messages are refused with their code.
	res = v.send(v.collectRequest(v.batchPath(), body, withQuery("syncValidation", "true")))
	mustStatus(t, "batch sync", res, http.StatusMultiStatus)
	rs, _ = res.json()["responses"].([]any)
	for i, want := range []any{nil, CodeMapperTransform, nil, nil, CodeRequiredFieldMissing} {
		entry, _ := rs[i].(map[string]any)
		if entry["code"] != want {
			t.Errorf("sync responses[%d] = %v, want code %v", i, entry, want)
		}
	}
	if r := v.onlyRun(); r.InputRecords != 6 || r.OutputRecords != 4 || r.FailedRecords != 2 {
		t.Errorf("run after the sync batch = %+v, want 6 in, 4 out, 2 failed", r)
	}
}

// Without a mapping set the messages must be XDM: the edge checks the
// envelope, the run checks the known field types.
func TestIngestXDMRecords(t *testing.T) {
	entity := map[string]any{"loyalty": map[string]any{"points": 10.0}}
	noBody := mustJSON(t, map[string]any{"header": map[string]any{"schemaRef": map[string]any{"id": testSchema, "contentType": "x"}, "datasetId": testDataset}})
	otherSchema := strings.Replace(string(xdmMessage("", entity)), testSchema, testSchema+"x", 2)
	otherDataset := strings.Replace(string(xdmMessage("", entity)), testDataset, "other", 1)
	cases := []struct {
		name       string
		body       []byte
		wantStatus int
		outcome    RecordOutcome
		code       string
	}{
		{name: "valid, org given", body: xdmMessage(testOrg, entity), wantStatus: 200, outcome: OutcomeIngested},
		{name: "valid, org added by the edge", body: xdmMessage("", entity), wantStatus: 200, outcome: OutcomeIngested},
		{name: "raw event", body: event, wantStatus: 400, outcome: OutcomeRejected},
		{name: "no body", body: noBody, wantStatus: 400, outcome: OutcomeRejected},
		{name: "wrong org", body: xdmMessage("other@AdobeOrg", entity), wantStatus: 400, outcome: OutcomeRejected},
		{name: "another schema", body: []byte(otherSchema), wantStatus: 400, outcome: OutcomeRejected},
		{name: "another dataset", body: []byte(otherDataset), wantStatus: 400, outcome: OutcomeRejected},
		{name: "points not a number", body: xdmMessage(testOrg, map[string]any{"loyalty": map[string]any{"points": "x"}}), wantStatus: 200, outcome: OutcomeFailed, code: CodeXDMValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newIngestEnv(t, Options{})
			flowID, _ := v.mustCreate(fsPath("/flows"), flowBody("xdm", v.c.source, v.c.target, ""))
			res := v.do(http.MethodGet, fsPath("/flows/"+flowID), nil)
			inlet, _ := Object{Doc: res.items()[0]}.Field("options.inletUrl").(string)
			res = v.send(v.collectRequest(strings.TrimPrefix(inlet, v.url), tc.body))
			mustStatus(t, "post", res, tc.wantStatus)
			recs := v.emu.Records(flowID)
			if len(recs) != 1 || recs[0].Outcome != tc.outcome || recs[0].ErrorCode != tc.code {
				t.Errorf("records = %+v, want one %s with code %q", recs, tc.outcome, tc.code)
			}
		})
	}
}

// A disabled flow's inlet still answers 200 but ingests nothing.
func TestIngestDisabledFlow(t *testing.T) {
	v := newIngestEnv(t, Options{})
	mustStatus(t, "disable", v.do(http.MethodPost, fsPath("/flows/"+v.c.flow+"/action?op=disable"), nil), http.StatusOK)
	mustStatus(t, "post while disabled", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	if runs := v.emu.Runs(v.c.flow); len(runs) != 0 {
		t.Fatalf("runs while disabled = %+v, want none", runs)
	}
	if recs := v.emu.Records(v.c.flow); len(recs) != 1 || recs[0].Outcome != OutcomeDroppedDisabled {
		t.Errorf("records = %+v, want one dropped-disabled", recs)
	}
	mustStatus(t, "enable", v.do(http.MethodPost, fsPath("/flows/"+v.c.flow+"/action?op=enable"), nil), http.StatusOK)
	mustStatus(t, "post when enabled", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	if r := v.onlyRun(); r.InputRecords != 1 {
		t.Errorf("run = %+v, want the one record posted after enable", r)
	}
}

// Runs: hour windows, growing counts, completedAtUTC moving, statuses, and
// the flow's lastRunDetails.
func TestRunsHourWindows(t *testing.T) {
	v := newIngestEnv(t, Options{})
	if lr := v.do(http.MethodGet, fsPath("/flows/"+v.c.flow), nil).items()[0]["lastRunDetails"]; lr != nil {
		t.Fatalf("lastRunDetails before any record = %v, want none", lr)
	}
	t0 := v.clock.Now() // 12:00:00 UTC
	mustStatus(t, "post 1", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	v.clock.Advance(10 * time.Minute)
	mustStatus(t, "post 2", v.post(mustJSON(t, map[string]any{"loyalty": map[string]any{"points": "x", "tier": "t"}})), http.StatusOK)
	r := v.onlyRun()
	if !r.StartedAt.Equal(t0) || !r.CompletedAt.Equal(t0.Add(10*time.Minute)) || !r.WindowStart.Equal(t0) || !r.WindowEnd.Equal(t0.Add(time.Hour)) {
		t.Errorf("run times = %+v", r)
	}
	if r.Status != RunStatusInProgress || r.InputRecords != 2 || r.FailedRecords != 1 {
		t.Errorf("open run = %+v, want inProgress with 2 in, 1 failed", r)
	}
	flow := v.do(http.MethodGet, fsPath("/flows/"+v.c.flow), nil).items()[0]
	lr, _ := flow["lastRunDetails"].(map[string]any)
	if lr["id"] != r.ID || lr["state"] != RunStatusInProgress || lr["startedAtUTC"] != float64(t0.UnixMilli()) ||
		lr["completedAtUTC"] != float64(t0.Add(10*time.Minute).UnixMilli()) {
		t.Errorf("lastRunDetails = %v, want run %s", lr, r.ID)
	}
	if flow["etag"] != v.c.flowETag {
		t.Errorf("flow etag changed with ingestion: %v, want %s", flow["etag"], v.c.flowETag)
	}

	// The window closes: the run is final; the next record opens a new run.
	v.clock.Advance(55 * time.Minute) // 13:05
	if got := v.emu.Runs(v.c.flow)[0].Status; got != RunStatusPartialSuccess {
		t.Errorf("closed run status = %s, want %s", got, RunStatusPartialSuccess)
	}
	mustStatus(t, "post 3", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	runs := v.emu.Runs(v.c.flow)
	if len(runs) != 2 || runs[1].InputRecords != 1 || runs[1].ID == r.ID || !runs[1].WindowStart.Equal(t0.Add(time.Hour)) {
		t.Fatalf("runs = %+v, want a second run in the 13:00 window", runs)
	}
	lr, _ = v.do(http.MethodGet, fsPath("/flows/"+v.c.flow), nil).items()[0]["lastRunDetails"].(map[string]any)
	if lr["id"] != runs[1].ID {
		t.Errorf("lastRunDetails.id = %v, want the new run %s", lr["id"], runs[1].ID)
	}
	// Lists carry lastRunDetails too, and filter on it.
	list := v.do(http.MethodGet, fsPath("/flows?property=lastRunDetails.startedAtUTC>="+itoa(runs[1].StartedAt.UnixMilli())), nil)
	mustStatus(t, "list flows", list, http.StatusOK)
	if items := list.items(); len(items) != 1 || items[0]["lastRunDetails"] == nil {
		t.Errorf("flows filtered on lastRunDetails = %s", list.body)
	}
	v.clock.Advance(time.Hour)
	if got := v.emu.Runs(v.c.flow)[1].Status; got != RunStatusSuccess {
		t.Errorf("second run status = %s, want success", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestRunStatus(t *testing.T) {
	cases := []struct {
		name            string
		in, out, failed int
		pct             float64
		open            bool
		want            string
	}{
		{name: "open window", in: 2, out: 1, failed: 1, open: true, want: RunStatusInProgress},
		{name: "no failure", in: 3, out: 3, want: RunStatusSuccess},
		{name: "some failed", in: 4, out: 3, failed: 1, want: RunStatusPartialSuccess},
		{name: "all failed", in: 2, failed: 2, want: RunStatusFailed},
		{name: "over partialIngestionPercent", in: 10, out: 8, failed: 2, pct: 10, want: RunStatusFailed},
		{name: "at partialIngestionPercent", in: 10, out: 9, failed: 1, pct: 10, want: RunStatusPartialSuccess},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &runRec{WindowStart: 0, Input: tc.in, Output: tc.out, Failed: tc.failed}
			now := RunWindow.Milliseconds()
			if tc.open {
				now--
			}
			if got := r.status(now, tc.pct); got != tc.want {
				t.Errorf("status = %s, want %s", got, tc.want)
			}
		})
	}
}

// GET /runs and /runs/{id}: Adobe's shape, property filters, partitions,
// validated against flow-service.yaml.
func TestRunsEndpoints(t *testing.T) {
	v := newIngestEnv(t, Options{})
	other := v.createAll("other")
	res := v.do(http.MethodGet, fsPath("/flows/"+other.flow), nil)
	otherInlet, _ := Object{Doc: res.items()[0]}.Field("options.inletUrl").(string)
	mustStatus(t, "post", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	mustStatus(t, "post bad", v.post(mustJSON(t, map[string]any{"loyalty": map[string]any{"points": 1.0}})), http.StatusOK)
	mustStatus(t, "post other", v.send(v.collectRequest(strings.TrimPrefix(otherInlet, v.url), mustJSON(t, goodEvent))), http.StatusOK)

	res = v.do(http.MethodGet, fsPath("/runs?property=flowId=="+v.c.flow), nil)
	mustStatus(t, "list runs", res, http.StatusOK)
	items := res.items()
	if len(items) != 1 {
		t.Fatalf("runs of the flow = %s", res.body)
	}
	run := Object{Doc: items[0]}
	runID, _ := run.Doc["id"].(string)
	for path, want := range map[string]any{
		"flowId":                                   v.c.flow,
		"metrics.recordSummary.inputRecordCount":   2.0,
		"metrics.recordSummary.outputRecordCount":  1.0,
		"metrics.recordSummary.failedRecordCount":  1.0,
		"metrics.recordSummary.warningRecordCount": 0.0,
		"metrics.statusSummary.status":             RunStatusInProgress,
		"metrics.durationSummary.startedAtUTC":     float64(v.clock.Now().UnixMilli()),
		"imsOrgId":                                 testOrg,
	} {
		if got := run.Field(path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	errs, _ := run.Field("metrics.statusSummary.errors").([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["code"] != CodeRequiredFieldMissing {
		t.Errorf("statusSummary.errors = %v", errs)
	}
	acts, _ := run.Field("activities").([]any)
	act, _ := acts[0].(map[string]any)
	ext, _ := Object{Doc: act}.Field("statusSummary.extensions.errors").([]any)
	if len(ext) != 2 || ext[0].(map[string]any)["code"] != CodeIngestSummary ||
		ext[1].(map[string]any)["code"] != CodeRequiredFieldMissing || ext[1].(map[string]any)["recordCount"] != 1.0 {
		t.Errorf("activity errors = %v", ext)
	}

	cases := []struct {
		name       string
		query      string
		wantStatus int
		wantItems  int
	}{
		{name: "all", query: "", wantStatus: 200, wantItems: 2},
		{name: "other flow", query: "?property=flowId==" + other.flow, wantStatus: 200, wantItems: 1},
		{name: "unknown flow", query: "?property=flowId==" + newUUID(), wantStatus: 200, wantItems: 0},
		{name: "failed records", query: "?property=metrics.recordSummary.failedRecordCount>0", wantStatus: 200, wantItems: 1},
		{name: "status", query: "?property=metrics.statusSummary.status==inProgress", wantStatus: 200, wantItems: 2},
		{name: "limit", query: "?limit=1", wantStatus: 200, wantItems: 1},
		{name: "bad operator", query: "?property=flowId~x", wantStatus: 400},
	}
	for _, tc := range cases {
		res := v.do(http.MethodGet, fsPath("/runs"+tc.query), nil)
		if res.status != tc.wantStatus || (tc.wantStatus == 200 && len(res.items()) != tc.wantItems) {
			t.Errorf("%s: status %d, %d items; want %d, %d; %s", tc.name, res.status, len(res.items()), tc.wantStatus, tc.wantItems, res.body)
		}
	}
	if res := v.do(http.MethodGet, fsPath("/runs?count=true"), nil); res.json()["count"] != 2.0 {
		t.Errorf("count = %s", res.body)
	}

	res = v.do(http.MethodGet, fsPath("/runs/"+runID), nil)
	mustStatus(t, "get run", res, http.StatusOK)
	if got := res.items(); len(got) != 1 || got[0]["id"] != runID {
		t.Errorf("GET run = %s", res.body)
	}
	res = v.do(http.MethodGet, fsPath("/runs/"+newUUID()), nil)
	mustStatus(t, "unknown run", res, http.StatusNotFound)
	if res.errorType() != "FLOW-1439-404" {
		t.Errorf("unknown run type = %s", res.errorType())
	}
	// Another sandbox sees none of them.
	elsewhere := v.in(testOrg, "dev")
	if res := elsewhere.do(http.MethodGet, fsPath("/runs"), nil); len(res.items()) != 0 {
		t.Errorf("runs in another sandbox = %s", res.body)
	}
	if res := elsewhere.do(http.MethodGet, fsPath("/runs/"+runID), nil); res.status != http.StatusNotFound {
		t.Errorf("run from another sandbox: status %d", res.status)
	}
	// Gateway checks apply as to every Platform call.
	if res := v.do(http.MethodGet, fsPath("/runs"), nil, withHeader("Authorization", "")); res.status != http.StatusForbidden {
		t.Errorf("runs without a token: status %d", res.status)
	}
	if n := v.emu.Calls().OpStatus(OpRunsList, http.StatusOK); n == 0 {
		t.Errorf("runs.list calls not counted")
	}
}

// The warm-up: records the inlet accepts before createdAt + warm-up, or the
// last mapping change + warm-up, are dropped.
func TestInletWarmup(t *testing.T) {
	const warm = 5 * time.Minute
	cases := []struct {
		name    string
		warmup  time.Duration
		setup   func(v *ingestEnv)
		advance time.Duration
		want    RecordOutcome
	}{
		{name: "no warm-up by default", want: OutcomeIngested},
		{name: "during warm-up", warmup: warm, advance: warm - time.Second, want: OutcomeDroppedWarmup},
		{name: "after warm-up", warmup: warm, advance: warm, want: OutcomeIngested},
		{name: "a mapping change restarts it", warmup: warm, setup: func(v *ingestEnv) {
			v.clock.Advance(time.Hour)
			v.patchFlow([]map[string]any{{"op": "replace", "path": "/transformations/0", "value": map[string]any{
				"name": "Mapping", "params": map[string]any{"mappingId": v.c.mapping, "mappingVersion": "0"}}}})
		}, advance: warm - time.Second, want: OutcomeDroppedWarmup},
		{name: "the restarted warm-up ends", warmup: warm, setup: func(v *ingestEnv) {
			v.clock.Advance(time.Hour)
			v.patchFlow([]map[string]any{{"op": "replace", "path": "/transformations/0", "value": map[string]any{
				"name": "Mapping", "params": map[string]any{"mappingId": v.c.mapping, "mappingVersion": "0"}}}})
		}, advance: warm, want: OutcomeIngested},
		{name: "a name change does not restart it", warmup: warm, setup: func(v *ingestEnv) {
			v.clock.Advance(time.Hour)
			v.patchFlow([]map[string]any{{"op": "replace", "path": "/name", "value": "renamed"}})
		}, want: OutcomeIngested},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newIngestEnv(t, Options{InletWarmup: tc.warmup})
			created := v.clock.Now()
			flow := v.do(http.MethodGet, fsPath("/flows/"+v.c.flow), nil).items()[0]
			// createdAt is epoch milliseconds, a JSON integer.
			if !strings.Contains(string(mustJSON(t, flow["createdAt"])), itoa(created.UnixMilli())) {
				t.Fatalf("createdAt = %v, want %d", flow["createdAt"], created.UnixMilli())
			}
			if tc.setup != nil {
				tc.setup(v)
			}
			changed := v.clock.Now()
			if at, ok := v.emu.InletReadyAt(v.c.flow); !ok || (tc.warmup > 0 && !at.Equal(changed.Add(tc.warmup)) && !at.Equal(created.Add(tc.warmup))) {
				t.Errorf("InletReadyAt = %v, %v", at, ok)
			}
			v.clock.Advance(tc.advance)
			mustStatus(t, "post", v.post(mustJSON(t, goodEvent)), http.StatusOK)
			recs := v.emu.Records(v.c.flow)
			if len(recs) != 1 || recs[0].Outcome != tc.want {
				t.Fatalf("records = %+v, want one %s", recs, tc.want)
			}
			if n := len(v.emu.Runs(v.c.flow)); (tc.want == OutcomeIngested) != (n == 1) {
				t.Errorf("runs = %d for outcome %s", n, tc.want)
			}
		})
	}
	if _, err := New(Options{InletWarmup: -time.Second}); err == nil {
		t.Errorf("New accepted a negative warm-up")
	}
}

func (v *ingestEnv) patchFlow(ops []map[string]any) {
	v.t.Helper()
	cur, _ := v.emu.Objects().Find(KindFlow, v.c.flow)
	res := v.do(http.MethodPatch, fsPath("/flows/"+v.c.flow), ops, withHeader("If-Match", cur.ETag))
	mustStatus(v.t, "PATCH flow", res, http.StatusOK)
}

// Runs survive a restart with a state file.
func TestRunsInStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	v := newIngestEnv(t, Options{StateFile: path})
	mustStatus(t, "post", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	want := v.onlyRun()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	emu, err := New(Options{StateFile: path, Clock: v.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	got := emu.Runs(v.c.flow)
	if len(got) != 1 || got[0].ID != want.ID || got[0].InputRecords != 1 {
		t.Errorf("runs after restart = %+v, want %+v", got, want)
	}
}

// The introspection API serves the records and runs.
func TestIntrospectRunsAndRecords(t *testing.T) {
	v := newIngestEnv(t, Options{})
	mustStatus(t, "post", v.post(mustJSON(t, goodEvent)), http.StatusOK)
	for _, path := range []string{"/runs?flowId=" + v.c.flow, "/records?flowId=" + v.c.flow} {
		req, _ := http.NewRequest(http.MethodGet, v.url+IntrospectPrefix+path, nil)
		res := v.send(req)
		mustStatus(t, path, res, http.StatusOK)
		var list []map[string]any
		if err := json.Unmarshal(res.body, &list); err != nil || len(list) != 1 || list[0]["flowId"] != v.c.flow {
			t.Errorf("%s = %s", path, res.body)
		}
	}
}
