package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The streaming collection endpoint (dcs.adobedc.net): POST
// /collection/{inletId} for one message and POST /collection/batch/{inletId}
// for several (streaming-ingestion.yaml). Before accepting a post it checks
// what the flow's connection spec demands:
//
//   - OAuth2 authSpec: `Authorization: Bearer <token>`, a token this
//     emulator's IMS issued, unexpired, to the base connection's clientId;
//   - HMAC authSpec: x-hmac-sha256 = SignHMAC(shared secret, exact body);
//   - either: x-adobe-flow-id (header or query) naming the inlet's flow.
//
// Missing or wrong credentials: 401 with the problem body of the HTTP API
// tutorial's appendix. A missing or wrong flow ID: 400 (see checkFlowID).

// inletTarget is what the collection endpoint knows about an inlet's flow.
type inletTarget struct {
	flowID string
	// authType is the type of the base connection's authSpec when the
	// flow's connection spec has one (OAuth2AuthSpecType, HMACAuthSpecType
	// or another), authMissing when the base connection is gone, "" when
	// the spec has an empty authSpec.
	authType string
	clientID string
	secrets  []string
}

const authMissing = "missing"

// inletTargetLocked finds the flow whose inletUrl ends in /collection/{inlet};
// e.mu must be held.
func (e *Emulator) inletTargetLocked(inlet string, now time.Time) (inletTarget, bool) {
	suffix := CollectionPrefix + "/" + inlet
	for _, f := range e.store.objects[KindFlow] {
		if !strings.HasSuffix(str(f.Doc, "options", "inletUrl"), suffix) {
			continue
		}
		t := inletTarget{flowID: f.ID}
		ids, _ := stringList(f.Doc["sourceConnectionIds"])
		if len(ids) == 0 {
			return t, true
		}
		src := e.store.get(KindSourceConnection, ids[0], f.Org, f.Sandbox)
		if src == nil {
			return t, true
		}
		connSpec := e.connSpecs.get(str(src.Doc, "connectionSpec", "id"))
		if connSpec == nil || !needsBaseConnection(connSpec) {
			return t, true
		}
		t.authType = authMissing
		baseID := str(src.Doc, "baseConnectionId")
		base := e.store.get(KindConnection, baseID, f.Org, f.Sandbox)
		if base == nil {
			return t, true
		}
		as := authSpecByName(connSpec, str(base.Doc, "auth", "specName"))
		if as == nil {
			return t, true
		}
		t.authType = str(as, "type")
		t.clientID = str(base.Doc, "auth", "params", OAuth2ClientIDParam)
		if s := str(base.Doc, "auth", "params", HMACSecretParam); s != "" {
			t.secrets = append(t.secrets, s)
		}
		if p, ok := e.prevSecrets[baseID]; ok && now.Before(p.until) {
			t.secrets = append(t.secrets, p.secret)
		}
		return t, true
	}
	return inletTarget{}, false
}

func (e *Emulator) handleCollection(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	e.collect(w, r, rc, false)
}

func (e *Emulator) handleCollectionBatch(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	e.collect(w, r, rc, true)
}

// collect serves both collection endpoints.
func (e *Emulator) collect(w http.ResponseWriter, r *http.Request, rc *reqCtx, batch bool) {
	inlet := r.PathValue("inlet")
	data, err := io.ReadAll(r.Body)
	if err != nil {
		errProblem(http.StatusRequestEntityTooLarge, "Payload Too Large", "The payload exceeds the maximum size.").write(w, rc)
		return
	}
	e.mu.Lock()
	now := e.clock()
	t, found := e.inletTargetLocked(inlet, now)
	e.mu.Unlock()
	if !found {
		errProblem(http.StatusNotFound, "Not Found", "No inlet with ID "+inlet+" exists.").write(w, rc)
		return
	}
	if msg := e.authenticateInlet(r, data, t); msg != "" {
		dcsAuthError(w, rc, msg)
		return
	}
	if msg := checkFlowID(r, t); msg != "" {
		dcsInletError(w, inlet, msg)
		return
	}
	var payload any
	if err := json.Unmarshal(data, &payload); err != nil {
		errProblem(http.StatusBadRequest, "Bad Request", "The payload is not valid JSON.").write(w, rc)
		return
	}
	var msgs []any
	if batch {
		// BatchMessage: {"messages": [...]}.
		obj, _ := payload.(map[string]any)
		var ok bool
		if msgs, ok = obj["messages"].([]any); !ok {
			dcsInletError(w, inlet, "The batch payload must be an object with a messages array.")
			return
		}
	} else {
		msgs = []any{payload}
	}
	sync := strings.EqualFold(r.URL.Query().Get("syncValidation"), "true")
	ms := now.UnixMilli()
	xaction := strconv.FormatInt(ms, 10) + ":" + newHexID(4)
	results := e.ingest(t.flowID, inlet, msgs, now, sync)
	if !batch {
		if res := results[0]; res.status != 0 {
			writeJSON(w, res.status, map[string]any{
				"type":   DCSInletProblem,
				"status": res.status,
				"title":  "Invalid request",
				"report": res.report,
			})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"inletId": inlet, "xactionId": xaction, "receivedTimeMs": ms})
		return
	}
	// 207 with one entry per message (BatchResponseDTO): an xactionId for a
	// message taken, {statusCode, message} for one refused
	// (streaming-multiple-messages.md).
	responses := make([]any, len(msgs))
	for i, res := range results {
		if res.status != 0 {
			entry := map[string]any{"statusCode": res.status, "message": res.report["message"]}
			if c, ok := res.report["code"]; ok {
				entry["code"] = c
			}
			responses[i] = entry
			continue
		}
		responses[i] = map[string]any{"xactionId": xaction + ":" + strconv.Itoa(i)}
	}
	writeJSON(w, http.StatusMultiStatus, map[string]any{
		"inletId":        inlet,
		"batchId":        xaction,
		"receivedTimeMs": ms,
		"responses":      responses,
	})
}

// ingestResult is the synchronous answer for one message: status 0 when it
// was taken, else 400 with the report to send.
type ingestResult struct {
	status int
	report map[string]any
}

// ingest runs messages through the edge checks, the warm-up and state
// gates and the flow's mapping, counting processed records into runs (see
// ingest.go). sync is ?syncValidation=true.
func (e *Emulator) ingest(flowID, inlet string, msgs []any, now time.Time, sync bool) []ingestResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ingestResult, len(msgs))
	flow := e.store.objects[KindFlow][flowID]
	if flow == nil {
		return out
	}
	p := e.pipelineLocked(flow)
	prefix := "inletId: [" + inlet + "] imsOrgId: [" + flow.Org + "] "
	for i, msg := range msgs {
		rec := Record{FlowID: flowID, ReceivedAt: now.UTC(), Input: cloneValue(msg)}
		if why := p.edgeCheck(msg); why != "" {
			rec.Outcome, rec.Reason = OutcomeRejected, why
			out[i] = ingestResult{status: http.StatusBadRequest, report: map[string]any{"message": prefix + why}}
			e.logRecordLocked(rec)
			continue
		}
		switch {
		case str(flow.Doc, "state") != "enabled":
			rec.Outcome, rec.Reason = OutcomeDroppedDisabled, "the dataflow is "+str(flow.Doc, "state")
			e.logRecordLocked(rec)
			continue
		case now.Before(e.inletReadyAtLocked(flow)):
			rec.Outcome, rec.Reason = OutcomeDroppedWarmup, "the inlet is warming up until "+e.inletReadyAtLocked(flow).Format(time.RFC3339)
			e.logRecordLocked(rec)
			continue
		}
		written, code, reason := p.process(msg)
		rec.ErrorCode, rec.Reason = code, reason
		if code != "" && sync {
			rec.Outcome = OutcomeRejected
			out[i] = ingestResult{status: http.StatusBadRequest, report: map[string]any{
				"message": prefix + code + " " + codeMessages[code] + ": " + reason, "code": code}}
			e.logRecordLocked(rec)
			continue
		}
		rec.RunID = e.addRecordLocked(flow, now, jsonSize(msg), jsonSize(written), code)
		if code == "" {
			rec.Outcome, rec.Output = OutcomeIngested, written
		} else {
			rec.Outcome = OutcomeFailed
		}
		e.logRecordLocked(rec)
	}
	e.persistLocked()
	return out
}

// authenticateInlet returns why a post is not authenticated, or "".
func (e *Emulator) authenticateInlet(r *http.Request, body []byte, t inletTarget) string {
	switch t.authType {
	case "":
		return ""
	case OAuth2AuthSpecType:
		tok, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			return "Ims service token is empty"
		}
		info, valid := e.lookupToken(tok)
		if !valid {
			return "Ims service token is invalid or expired"
		}
		if info.clientID != t.clientID {
			return "Ims service token was not issued to the credential of this connection"
		}
		return ""
	case HMACAuthSpecType:
		sig := r.Header.Get(HeaderHMAC)
		if sig == "" {
			return "The " + HeaderHMAC + " signature is missing"
		}
		for _, s := range t.secrets {
			if validSignature(s, body, sig) {
				return ""
			}
		}
		return "The " + HeaderHMAC + " signature does not match the request body"
	}
	// The spec needs authentication the emulator cannot check, or the base
	// connection is gone: nothing authenticates.
	return "The connection of this inlet cannot authenticate the request"
}

// checkFlowID returns why the post's flow ID is wrong, or "". The flow ID
// comes in the x-adobe-flow-id header or query parameter (HTTP API tutorial;
// every Streaming SDK partner page builds "?x-adobe-flow-id={DATAFLOW_ID}").
// An authenticated inlet requires it; an inlet without authentication
// accepts a post without it, as before, since no page says Adobe refuses
// one, but refuses a flow ID naming another flow. A missing or wrong flow ID
// is a malformed request, not a failed authentication: 400 (the emulator's
// choice; Adobe documents neither answer).
func checkFlowID(r *http.Request, t inletTarget) string {
	id := r.Header.Get(HeaderFlowID)
	if id == "" {
		id = r.URL.Query().Get(HeaderFlowID)
	}
	switch {
	case id == "" && t.authType != "":
		return "The " + HeaderFlowID + " header is required for this inlet"
	case id != "" && id != t.flowID:
		return "The flow " + id + " does not belong to this inlet"
	}
	return ""
}

// validSignature reports whether sig is SignHMAC(secret, body).
func validSignature(secret string, body []byte, sig string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// dcsAuthError writes the collection endpoint's 401, the body printed in the
// HTTP API streaming tutorial's appendix (status as a string, as printed).
func dcsAuthError(w http.ResponseWriter, rc *reqCtx, msg string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"type":   DCSAuthorizationProblem,
		"status": "401",
		"title":  "Authorization",
		"report": map[string]any{"message": "[" + rc.requestID + "] " + msg},
	})
}

// dcsInletError writes a collection 400 in the shape Adobe prints for
// inlet errors (ingestion/streaming troubleshooting: type
// .../data-collection-service/inlet, numeric status, report.message).
func dcsInletError(w http.ResponseWriter, inlet, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"type":   DCSInletProblem,
		"status": http.StatusBadRequest,
		"title":  "Invalid request",
		"report": map[string]any{"message": "inletId: [" + inlet + "] " + msg},
	})
}

// Problem types of the collection endpoint's errors.
const (
	DCSAuthorizationProblem = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
	DCSInletProblem         = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
)
