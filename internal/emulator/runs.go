package emulator

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Dataflow runs (flow-service.yaml FlowRunItemDTO, /runs and /runs/{id};
// help/sources/tutorials/api/monitor.md). A streaming dataflow's records
// are counted per hourly window (help/sources/tutorials/ui/monitor-streaming.md:
// "Each flow run is recorded within an hourly window"). The emulator's model
// (docs/emulator.md, "Runs"):
//
//   - windows are aligned to the UTC hour; the first record of a flow in a
//     window opens that window's run, later records in the same window add
//     to it;
//   - startedAtUTC is the first record's arrival, completedAtUTC the
//     latest record's, so it moves while records arrive;
//   - the run is "inProgress" until its window ends, then "success" (no
//     failed record), "failed" (nothing ingested, or more failed than the
//     flow's partialIngestionPercent allows) or "partialSuccess";
//   - a window without records has no run.

// kindRun names runs in error reports; runs are not a Kind of stored object
// (they are counted, not created by callers).
const kindRun Kind = "runs"

// RunWindow is the length of a streaming run's window.
const RunWindow = time.Hour

// Run statuses (metrics.statusSummary.status and lastRunDetails.state).
const (
	RunStatusInProgress     = "inProgress"
	RunStatusSuccess        = "success"
	RunStatusPartialSuccess = "partialSuccess"
	RunStatusFailed         = "failed"
)

// runActivityID names the run's one activity, as Adobe's example names the
// activity that writes to the dataset (monitor.md).
const runActivityID = "promotionActivity"

// runRec is a stored run; times are epoch milliseconds.
type runRec struct {
	ID          string         `json:"id"`
	FlowID      string         `json:"flowId"`
	Org         string         `json:"imsOrgId"`
	Sandbox     string         `json:"sandboxName"`
	FlowSpecID  string         `json:"flowSpecId"`
	Client      string         `json:"client"`
	Seq         int64          `json:"seq"`
	WindowStart int64          `json:"windowStart"`
	Started     int64          `json:"started"`
	Completed   int64          `json:"completed"`
	Input       int            `json:"input"`
	Output      int            `json:"output"`
	Failed      int            `json:"failed"`
	InputBytes  int64          `json:"inputBytes"`
	OutputBytes int64          `json:"outputBytes"`
	Errors      map[string]int `json:"errors,omitempty"`
	ETag        string         `json:"etag"`
}

func (r *runRec) windowEnd() int64 { return r.WindowStart + RunWindow.Milliseconds() }

// status is the run's status at now; pct is the flow's
// options.partialIngestionPercent (0 when unset).
func (r *runRec) status(now int64, pct float64) string {
	switch {
	case now < r.windowEnd():
		return RunStatusInProgress
	case r.Failed == 0:
		return RunStatusSuccess
	case r.Output == 0, pct > 0 && float64(r.Failed)*100 > pct*float64(r.Input):
		return RunStatusFailed
	}
	return RunStatusPartialSuccess
}

// sortedErrors returns the run's error codes, most records first.
func (r *runRec) sortedErrors() []RunError {
	out := make([]RunError, 0, len(r.Errors))
	for code, n := range r.Errors {
		out = append(out, RunError{Code: code, Message: codeMessages[code], Count: n})
	}
	slices.SortFunc(out, func(a, b RunError) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Code, b.Code)) })
	return out
}

// addRecordLocked counts one processed record into the flow's run for the
// window of at, opening the run if needed; e.mu must be held. It returns the
// run ID.
func (e *Emulator) addRecordLocked(flow *record, at time.Time, inBytes, outBytes int64, code string) string {
	ms := at.UnixMilli()
	window := at.UTC().Truncate(RunWindow).UnixMilli()
	var run *runRec
	for _, r := range e.store.runs {
		if r.FlowID == flow.ID && r.WindowStart == window {
			run = r
			break
		}
	}
	if run == nil {
		e.store.runSeq++
		run = &runRec{ID: newUUID(), FlowID: flow.ID, Org: flow.Org, Sandbox: flow.Sandbox,
			FlowSpecID: str(flow.Doc, "flowSpec", "id"), Client: str(flow.Doc, "createdClient"),
			Seq: e.store.runSeq, WindowStart: window, Started: ms}
		e.store.runs[run.ID] = run
	}
	run.Completed = max(run.Completed, ms)
	run.Input++
	run.InputBytes += inBytes
	if code == "" {
		run.Output++
		run.OutputBytes += outBytes
	} else {
		run.Failed++
		if run.Errors == nil {
			run.Errors = map[string]int{}
		}
		run.Errors[code]++
	}
	run.ETag = newETag()
	return run.ID
}

// flowPartialPercent reads a flow's options.partialIngestionPercent.
func flowPartialPercent(flow *record) float64 {
	if flow == nil {
		return 0
	}
	opts, _ := flow.Doc["options"].(map[string]any)
	v, _ := opts["partialIngestionPercent"].(float64)
	return v
}

// runDocLocked renders a run as GET /runs serves it; e.mu must be held.
func (e *Emulator) runDocLocked(r *runRec, now int64) map[string]any {
	flow := e.store.objects[KindFlow][r.FlowID]
	status := r.status(now, flowPartialPercent(flow))
	errs := r.sortedErrors()
	metricErrors := make([]any, 0, len(errs))
	activityErrors := []any{}
	if r.Failed > 0 {
		activityErrors = append(activityErrors, map[string]any{
			"code": CodeIngestSummary,
			"message": "Encountered " + strconv.Itoa(r.Failed) + " errors in the data. Successfully ingested " +
				strconv.Itoa(r.Output) + " rows. Review the associated diagnostic files for additional details.",
		})
	}
	for _, er := range errs {
		metricErrors = append(metricErrors, map[string]any{"code": er.Code, "message": er.Message})
		activityErrors = append(activityErrors, map[string]any{"code": er.Code, "recordCount": float64(er.Count), "message": er.Message})
	}
	duration := map[string]any{"startedAtUTC": float64(r.Started), "completedAtUTC": float64(r.Completed)}
	size := map[string]any{"inputBytes": float64(r.InputBytes), "outputBytes": float64(r.OutputBytes)}
	activityStatus := map[string]any{"status": status, "extensions": map[string]any{"errors": activityErrors}}
	if len(metricErrors) > 0 {
		activityStatus["errors"] = metricErrors
	}
	return map[string]any{
		"id":            r.ID,
		"createdAt":     float64(r.Started),
		"updatedAt":     float64(r.Completed),
		"createdBy":     r.Client,
		"updatedBy":     r.Client,
		"createdClient": r.Client,
		"updatedClient": r.Client,
		"sandboxId":     sandboxID(r.Org, r.Sandbox),
		"sandboxName":   r.Sandbox,
		"imsOrgId":      r.Org,
		"flowId":        r.FlowID,
		"flowSpec":      map[string]any{"id": r.FlowSpecID, "version": "1.0"},
		"etag":          r.ETag,
		"metrics": map[string]any{
			"durationSummary": duration,
			"sizeSummary":     size,
			"recordSummary": map[string]any{
				"inputRecordCount":   float64(r.Input),
				"outputRecordCount":  float64(r.Output),
				"createdRecordCount": float64(r.Output),
				"updatedRecordCount": float64(0),
				"skippedRecordCount": float64(0),
				"deletedRecordCount": float64(0),
				"failedRecordCount":  float64(r.Failed),
				"warningRecordCount": float64(0),
			},
			"statusSummary": map[string]any{"status": status, "errors": metricErrors},
		},
		"activities": []any{map[string]any{
			"id":           runActivityID,
			"updatedAtUTC": float64(r.Completed),
			"durationSummary": map[string]any{
				"startedAtUTC": float64(r.Started), "completedAtUTC": float64(r.Completed),
				"extensions": map[string]any{"windowStart": float64(r.WindowStart), "windowEnd": float64(r.windowEnd())},
			},
			"sizeSummary": cloneMap(size),
			"recordSummary": map[string]any{
				"inputRecordCount": float64(r.Input), "outputRecordCount": float64(r.Output), "failedRecordCount": float64(r.Failed),
			},
			"statusSummary": activityStatus,
		}},
	}
}

// flowRunsLocked returns a flow's runs in creation order; e.mu must be held.
func (e *Emulator) flowRunsLocked(flowID string) []*runRec {
	var out []*runRec
	for _, r := range e.store.runs {
		if flowID == "" || r.FlowID == flowID {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *runRec) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// lastRunDetailsLocked returns a flow's lastRunDetails, or nil before its
// first run; e.mu must be held.
func (e *Emulator) lastRunDetailsLocked(flow map[string]any) map[string]any {
	id, _ := flow["id"].(string)
	runs := e.flowRunsLocked(id)
	if len(runs) == 0 {
		return nil
	}
	last := runs[len(runs)-1]
	for _, r := range runs {
		if r.WindowStart > last.WindowStart {
			last = r
		}
	}
	return map[string]any{
		"id":             last.ID,
		"state":          last.status(e.clock().UnixMilli(), flowPartialPercent(e.store.objects[KindFlow][id])),
		"startedAtUTC":   float64(last.Started),
		"completedAtUTC": float64(last.Completed),
	}
}

// listRuns serves GET /runs with the list query of the other collections
// (property filters such as flowId=={id}, orderby, limit, continuationToken,
// count).
func (e *Emulator) listRuns(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	lq, aerr := parseListQuery(r.URL.Query())
	if aerr != nil {
		aerr.write(w, rc)
		return
	}
	e.mu.Lock()
	now := e.clock().UnixMilli()
	var docs []map[string]any
	for _, run := range e.flowRunsLocked("") {
		if run.Org == rc.org && run.Sandbox == rc.sandbox {
			docs = append(docs, e.runDocLocked(run, now))
		}
	}
	e.mu.Unlock()
	writeList(w, r, "runs", lq, docs)
}

// getRun serves GET /runs/{id}: {"items":[run]} (FlowRunsListResponse).
func (e *Emulator) getRun(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := r.PathValue("id")
	e.mu.Lock()
	var doc map[string]any
	if run := e.store.runs[id]; run != nil && run.Org == rc.org && run.Sandbox == rc.sandbox {
		doc = e.runDocLocked(run, e.clock().UnixMilli())
	}
	e.mu.Unlock()
	if doc == nil {
		errNotFound(kindRun, id).write(w, rc)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": []any{doc}})
}

// RunError is one error code of a run with the number of records it failed.
type RunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// Run is a dataflow run as the emulator counts it (introspection); Doc is
// the run as GET /runs/{id} serves it.
type Run struct {
	ID             string         `json:"id"`
	FlowID         string         `json:"flowId"`
	WindowStart    time.Time      `json:"windowStart"`
	WindowEnd      time.Time      `json:"windowEnd"`
	StartedAt      time.Time      `json:"startedAt"`
	CompletedAt    time.Time      `json:"completedAt"`
	Status         string         `json:"status"`
	InputRecords   int            `json:"inputRecords"`
	OutputRecords  int            `json:"outputRecords"`
	FailedRecords  int            `json:"failedRecords"`
	WarningRecords int            `json:"warningRecords"`
	InputBytes     int64          `json:"inputBytes"`
	OutputBytes    int64          `json:"outputBytes"`
	Errors         []RunError     `json:"errors"`
	Doc            map[string]any `json:"doc"`
}

// Runs returns a flow's runs (every flow's with ""), oldest first, as of the
// emulator's clock.
func (e *Emulator) Runs(flowID string) []Run {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock().UnixMilli()
	var out []Run
	for _, r := range e.flowRunsLocked(flowID) {
		doc := e.runDocLocked(r, now)
		out = append(out, Run{
			ID: r.ID, FlowID: r.FlowID,
			WindowStart: time.UnixMilli(r.WindowStart).UTC(), WindowEnd: time.UnixMilli(r.windowEnd()).UTC(),
			StartedAt: time.UnixMilli(r.Started).UTC(), CompletedAt: time.UnixMilli(r.Completed).UTC(),
			Status:       str(doc, "metrics", "statusSummary", "status"),
			InputRecords: r.Input, OutputRecords: r.Output, FailedRecords: r.Failed,
			InputBytes: r.InputBytes, OutputBytes: r.OutputBytes,
			Errors: r.sortedErrors(), Doc: doc,
		})
	}
	return out
}

// Records returns the records posted to a flow's inlet (every flow's with
// ""), oldest first; the log keeps the latest 10000.
func (e *Emulator) Records(flowID string) []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Record
	for _, r := range e.records {
		if flowID == "" || r.FlowID == flowID {
			r.Input = cloneValue(r.Input)
			r.Output = cloneMap(r.Output)
			out = append(out, r)
		}
	}
	return out
}

// InletReadyAt returns when a flow's inlet ingests what it accepts: its
// createdAt, or the time of the last PATCH that changed its mapping, plus
// Options.InletWarmup. The second result is false for an unknown flow.
func (e *Emulator) InletReadyAt(flowID string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.store.objects[KindFlow][flowID]
	if f == nil {
		return time.Time{}, false
	}
	return e.inletReadyAtLocked(f), true
}

func (e *Emulator) inletReadyAtLocked(f *record) time.Time {
	since := int64(intField(f.Doc, "createdAt"))
	if v, ok := f.Doc["createdAt"].(float64); ok {
		since = int64(v)
	}
	if t, ok := e.mappingChanged[f.ID]; ok && t > since {
		since = t
	}
	return time.UnixMilli(since).Add(e.opts.InletWarmup).UTC()
}

func (e *Emulator) logRecordLocked(r Record) {
	if len(e.records) >= maxRecords {
		e.records = slices.Delete(e.records, 0, len(e.records)-maxRecords+1)
	}
	e.records = append(e.records, r)
}
