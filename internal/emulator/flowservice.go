package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// readJSON decodes a request body into v.
func readJSON(r *http.Request, v any) *apiError {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "1000-413", title: "Payload too large",
				detail: "The request body is too large."}
		}
		return errBadRequest("the request body could not be read")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errEmptyBody()
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errBadRequest("the request body is not valid JSON of the expected shape: " + err.Error())
	}
	return nil
}

// ---- specs ----

func (e *Emulator) getSpec(set specSet) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		id := r.PathValue("id")
		spec := set.get(id)
		if spec == nil {
			errSpecNotFound(id).write(w, rc)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{spec}})
	}
}

func (e *Emulator) listSpecs(set specSet) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		lq, aerr := parseListQuery(r.URL.Query())
		if aerr != nil {
			aerr.write(w, rc)
			return
		}
		writeList(w, r, set.kind, lq, set.all())
	}
}

// ---- connections and flows ----

// System fields Adobe sets; a create request cannot set them and a PATCH
// cannot change them.
var systemFields = []string{
	"id", "etag", "version", "createdAt", "updatedAt", "createdBy", "updatedBy",
	"createdClient", "updatedClient", "sandboxId", "sandboxName", "imsOrgId",
	"inheritedAttributes", "providerRefId",
}

var flowSystemFields = []string{"runs", "lastOperation", "lastRunDetails"}

func (e *Emulator) stampNew(doc map[string]any, id string, rc *reqCtx, now int64) string {
	etag := newETag()
	doc["id"] = id
	doc["createdAt"], doc["updatedAt"] = float64(now), float64(now)
	doc["createdBy"], doc["updatedBy"] = rc.clientID, rc.clientID
	doc["createdClient"], doc["updatedClient"] = rc.clientID, rc.clientID
	doc["sandboxId"] = sandboxID(rc.org, rc.sandbox)
	doc["sandboxName"] = rc.sandbox
	doc["imsOrgId"] = rc.org
	doc["etag"], doc["version"] = etag, etag
	return etag
}

func stampUpdate(doc map[string]any, rc *reqCtx, now int64) string {
	etag := newETag()
	doc["updatedAt"] = float64(now)
	doc["updatedBy"], doc["updatedClient"] = rc.clientID, rc.clientID
	doc["etag"], doc["version"] = etag, etag
	return etag
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// intField reads an integer that may be sent as a number or a string (Adobe's
// spec types mappingVersion as a string, its examples send numbers).
func intField(m map[string]any, key string) int {
	n, _ := parseInt(m[key])
	return n
}

func parseInt(v any) (int, bool) {
	switch t := v.(type) {
	case float64:
		return int(t), t == float64(int(t))
	case string:
		n, err := strconv.Atoi(t)
		return n, err == nil
	}
	return 0, false
}

func stringList(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, ok := x.(string)
		if !ok || s == "" {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func errMandatory(field string) *apiError {
	return errBadRequest("The mandatory field " + field + " is not provided. Please provide the " + field + " and try again.")
}

// validateSourceConnectionLocked checks a source connection, including its
// base connection when the spec has an authSpec; e.mu must be held.
func (e *Emulator) validateSourceConnectionLocked(doc map[string]any, rc *reqCtx) *apiError {
	specID, connSpec, aerr := e.namedConnectionSpec(doc)
	if aerr != nil {
		return aerr
	}
	if connSpec == nil || !isSourceSpec(specID) {
		return errInvalidSpec(specID)
	}
	if aerr := e.validateBaseConnectionRefLocked(doc, connSpec, rc); aerr != nil {
		return aerr
	}
	if f := str(doc, "data", "format"); f != "" && f != "json" {
		return errBadRequest("The format of source data supplied=" + f + " in SourceConnection is not supported. The allowed values are: [json].")
	}
	return nil
}

func (e *Emulator) validateTargetConnection(doc map[string]any) *apiError {
	specID := str(doc, "connectionSpec", "id")
	if specID == "" {
		return errMandatory("connectionSpec.id")
	}
	if specID != DataLakeConnectionSpecID {
		return errInvalidSpec(specID)
	}
	if _, ok := doc["data"].(map[string]any); !ok {
		return errMandatory("data")
	}
	ds := str(doc, "params", "dataSetId")
	if ds == "" {
		return errBadRequest("The dataSetId param cannot be null or empty in target connection. Please provide valid dataSetId param and try again.")
	}
	if e.rejectDS[ds] {
		return errBadRequest("Dataset " + ds + " does not exist or cannot be written to by this dataflow.")
	}
	return nil
}

// validateFlowLocked checks a flow's references within the caller's
// partition; e.mu must be held.
func (e *Emulator) validateFlowLocked(doc map[string]any, rc *reqCtx) *apiError {
	if str(doc, "name") == "" {
		return errMandatory("name")
	}
	specID := str(doc, "flowSpec", "id")
	if specID == "" {
		return errMandatory("flowSpec.id")
	}
	spec := flowSpecs.get(specID)
	if spec == nil {
		return errInvalidSpec(specID)
	}
	var targetSchemas []string
	for _, side := range []struct {
		field, specField, noun string
		kind                   Kind
	}{
		{"sourceConnectionIds", "sourceConnectionSpecIds", "source", KindSourceConnection},
		{"targetConnectionIds", "targetConnectionSpecIds", "target", KindTargetConnection},
	} {
		ids, ok := stringList(doc[side.field])
		if !ok || len(ids) == 0 {
			return errBadRequest("The " + side.noun + " connection ID can't be null in flowRequest. Please provide valid " + side.noun + " connection ID in flowRequest.")
		}
		for _, id := range ids {
			conn := e.store.get(side.kind, id, rc.org, rc.sandbox)
			if conn == nil {
				return errBadRequest("The " + side.noun + " connection " + id + " does not exist.")
			}
			connSpec := str(conn.Doc, "connectionSpec", "id")
			if !flowSpecAccepts(spec, side.specField, connSpec) {
				return errInvalidSpec(connSpec)
			}
			if side.kind == KindTargetConnection {
				if s := str(conn.Doc, "data", "schema", "id"); s != "" {
					targetSchemas = append(targetSchemas, s)
				}
			}
		}
	}
	if aerr := e.validateFlowOptions(specID, doc); aerr != nil {
		return aerr
	}
	if _, has := doc["transformations"]; has {
		ts, ok := doc["transformations"].([]any)
		if !ok {
			return errBadRequest("Failed to parse Transformations in flow request.")
		}
		for _, t := range ts {
			tm, ok := t.(map[string]any)
			if !ok {
				return errBadRequest("Failed to parse Transformations in flow request.")
			}
			if str(tm, "name") != "Mapping" {
				continue
			}
			params, _ := tm["params"].(map[string]any)
			mid := str(params, "mappingId")
			if mid == "" {
				return errMandatory("transformations[].params.mappingId")
			}
			ver, ok := parseInt(params["mappingVersion"])
			ms := e.store.get(KindMappingSet, mid, rc.org, rc.sandbox)
			if ms == nil {
				return &apiError{status: http.StatusBadRequest, code: "1419-400", title: "Invalid request",
					detail: "Error while validating mapping with id " + mid + ", version " + strconv.Itoa(ver) +
						". This could be because of inadequate permissions on mapped fields. Please check your mapping or contact your admin."}
			}
			if !ok || ver < 0 || ver > intField(ms.Doc, "version") {
				return &apiError{status: http.StatusBadRequest, code: "1412-400", title: "Invalid request",
					detail: "Invalid Mapping Version in request. Please provide correct mapping version."}
			}
			if schema := mappingSchema(ms.versionDoc(ver)); schema != "" {
				for _, ts := range targetSchemas {
					if ts != schema {
						return &apiError{status: http.StatusBadRequest, code: "1425-400", title: "Invalid request",
							detail: "Error while matching schema in target dataset with schema in mapping " + mid +
								". Schema with same id and version must be used in both mapping and target dataset."}
					}
				}
			}
		}
	}
	return nil
}

// inheritedLocked builds a flow's inheritedAttributes from its connections.
func (e *Emulator) inheritedLocked(doc map[string]any, rc *reqCtx) map[string]any {
	side := func(field string, kind Kind) []any {
		ids, _ := stringList(doc[field])
		out := []any{}
		for _, id := range ids {
			entry := map[string]any{"id": id}
			if c := e.store.get(kind, id, rc.org, rc.sandbox); c != nil {
				entry["connectionSpec"] = cloneValue(c.Doc["connectionSpec"])
			}
			out = append(out, entry)
		}
		return out
	}
	return map[string]any{
		"properties":        map[string]any{"isSourceFlow": true},
		"sourceConnections": side("sourceConnectionIds", KindSourceConnection),
		"targetConnections": side("targetConnectionIds", KindTargetConnection),
	}
}

func (e *Emulator) createObject(kind Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		var doc map[string]any
		if aerr := readJSON(r, &doc); aerr != nil {
			aerr.write(w, rc)
			return
		}
		if doc == nil {
			errEmptyBody().write(w, rc)
			return
		}
		base := e.baseURLFor(r)

		if kind == KindFlow {
			if _, has := doc["state"]; has {
				(&apiError{status: http.StatusBadRequest, code: "1410-400", title: "Invalid request",
					detail: "State is not allowed in the create flow request."}).write(w, rc)
				return
			}
		}
		for _, f := range systemFields {
			delete(doc, f)
		}

		e.mu.Lock()
		defer e.mu.Unlock()
		var aerr *apiError
		switch kind {
		case KindConnection:
			aerr = e.validateConnection(doc)
		case KindSourceConnection:
			aerr = e.validateSourceConnectionLocked(doc, rc)
		case KindTargetConnection:
			aerr = e.validateTargetConnection(doc)
		case KindFlow:
			for _, f := range flowSystemFields {
				delete(doc, f)
			}
			aerr = e.validateFlowLocked(doc, rc)
		}
		if aerr != nil {
			aerr.write(w, rc)
			return
		}

		now := e.clock().UnixMilli()
		id := newUUID()
		etag := e.stampNew(doc, id, rc, now)
		doc["state"] = "enabled"
		if kind == KindFlow {
			opts, _ := doc["options"].(map[string]any)
			if opts == nil {
				opts = map[string]any{}
			}
			opts["inletUrl"] = base + CollectionPrefix + "/" + newHexID(32)
			doc["options"] = opts
			doc["inheritedAttributes"] = e.inheritedLocked(doc, rc)
			doc["runs"] = "/runs?property=flowId==" + id
			doc["lastOperation"] = map[string]any{"started": float64(now), "updated": float64(0), "operation": "create"}
		}
		e.store.put(&record{Kind: kind, ID: id, Org: rc.org, Sandbox: rc.sandbox, Doc: doc})
		e.persistLocked()
		w.Header().Set("Location", FlowServicePrefix+"/"+string(kind)+"/"+id)
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "etag": etag})
	}
}

func (e *Emulator) getObject(kind Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		id := r.PathValue("id")
		e.mu.Lock()
		rec := e.store.get(kind, id, rc.org, rc.sandbox)
		var doc map[string]any
		if rec != nil {
			doc = e.view(kind, cloneMap(rec.Doc))
		}
		e.mu.Unlock()
		if doc == nil {
			errNotFound(kind, id).write(w, rc)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{doc}})
	}
}

func (e *Emulator) listObjects(kind Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		lq, aerr := parseListQuery(r.URL.Query())
		if aerr != nil {
			aerr.write(w, rc)
			return
		}
		e.mu.Lock()
		recs := e.store.list(kind, rc.org, rc.sandbox)
		docs := make([]map[string]any, len(recs))
		for i, rec := range recs {
			docs[i] = e.view(kind, cloneMap(rec.Doc))
		}
		e.mu.Unlock()
		writeList(w, r, string(kind), lq, docs)
	}
}

func (e *Emulator) readOnlyFor(kind Kind) func(parts []string) *apiError {
	return func(parts []string) *apiError {
		top := parts[0]
		switch {
		case top == "":
			return errPatch("the whole document cannot be replaced")
		case slices.Contains(systemFields, top):
			return errPatch("Field " + top + " is read-only")
		case top == "state":
			return errBadRequest("The state cannot be updated with PATCH; use the action endpoint.")
		case top == "connectionSpec" && kind != KindFlow:
			return &apiError{status: http.StatusBadRequest, code: "1414-400", title: "Invalid request",
				detail: "The connection spec of a connection cannot be updated."}
		case kind == KindFlow && (top == "flowSpec" || slices.Contains(flowSystemFields, top)):
			return errPatch("Field " + top + " is read-only")
		case kind == KindFlow && top == "options" && len(parts) > 1 && parts[1] == "inletUrl":
			return errPatch("Field options.inletUrl is read-only")
		}
		return nil
	}
}

func (e *Emulator) patchObject(kind Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		id := r.PathValue("id")
		ifMatch := r.Header.Get("If-Match")
		if ifMatch == "" {
			errIfMatchMissing().write(w, rc)
			return
		}
		var ops []patchOp
		if aerr := readJSON(r, &ops); aerr != nil {
			aerr.write(w, rc)
			return
		}

		e.mu.Lock()
		defer e.mu.Unlock()
		rec := e.store.get(kind, id, rc.org, rc.sandbox)
		if rec == nil {
			errNotFound(kind, id).write(w, rc)
			return
		}
		if ifMatch != rec.etag() {
			errVersionMismatch(ifMatch, rec.etag()).write(w, rc)
			return
		}
		doc, aerr := applyPatch(rec.Doc, ops, e.readOnlyFor(kind))
		if aerr != nil {
			aerr.write(w, rc)
			return
		}
		switch kind {
		case KindConnection:
			aerr = e.validateConnection(doc)
		case KindSourceConnection:
			aerr = e.validateSourceConnectionLocked(doc, rc)
		case KindTargetConnection:
			aerr = e.validateTargetConnection(doc)
		case KindFlow:
			// Replacing /options must not lose the inlet.
			opts, _ := doc["options"].(map[string]any)
			if opts == nil {
				opts = map[string]any{}
			}
			opts["inletUrl"] = str(rec.Doc, "options", "inletUrl")
			doc["options"] = opts
			aerr = e.validateFlowLocked(doc, rc)
		}
		if aerr != nil {
			aerr.write(w, rc)
			return
		}
		if kind == KindConnection {
			e.rememberSecretLocked(id, rec.Doc, doc)
		}
		now := e.clock().UnixMilli()
		etag := stampUpdate(doc, rc, now)
		if kind == KindFlow {
			doc["inheritedAttributes"] = e.inheritedLocked(doc, rc)
			doc["lastOperation"] = map[string]any{"started": float64(now), "updated": float64(0), "operation": "update"}
			if !reflect.DeepEqual(rec.Doc["transformations"], doc["transformations"]) {
				// A changed mapping restarts the inlet's warm-up.
				e.mappingChanged[id] = now
			}
		}
		rec.Doc = doc
		e.persistLocked()
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "etag": etag})
	}
}

// flowsUsingLocked returns the IDs of flows in the partition that reference
// a connection.
func (e *Emulator) flowsUsingLocked(kind Kind, id string, rc *reqCtx) []string {
	field := "sourceConnectionIds"
	if kind == KindTargetConnection {
		field = "targetConnectionIds"
	}
	var out []string
	for _, f := range e.store.list(KindFlow, rc.org, rc.sandbox) {
		ids, _ := stringList(f.Doc[field])
		if slices.Contains(ids, id) {
			out = append(out, f.ID)
		}
	}
	return out
}

func (e *Emulator) deleteObject(kind Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		id := r.PathValue("id")
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.store.get(kind, id, rc.org, rc.sandbox) == nil {
			errNotFound(kind, id).write(w, rc)
			return
		}
		switch kind {
		case KindConnection:
			// Adobe refuses with 1418-400 while the base connection is in
			// use; here, while a source connection still references it.
			if users := e.sourcesUsingLocked(id, rc); len(users) > 0 {
				errConnectionInUse(kind, id).write(w, rc)
				return
			}
			delete(e.prevSecrets, id)
		case KindSourceConnection, KindTargetConnection:
			if users := e.flowsUsingLocked(kind, id, rc); len(users) > 0 {
				errConnectionInUse(kind, id).write(w, rc)
				return
			}
		}
		e.store.delete(kind, id)
		e.persistLocked()
		w.WriteHeader(http.StatusNoContent)
	}
}

// flowAction serves POST /flows/{id}/action?op=enable|disable.
func (e *Emulator) flowAction(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := r.PathValue("id")
	op := strings.ToLower(r.URL.Query().Get("op"))
	var target string
	switch op {
	case "enable":
		target = "enabled"
	case "disable":
		target = "disabled"
	case "":
		errBadRequest("The query param : op cannot be empty. Please provide valid op and try again.").write(w, rc)
		return
	default:
		errBadRequest("The provided operation : "+op+" is unsupported. Please check the operation provided and try again.").write(w, rc)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := e.store.get(KindFlow, id, rc.org, rc.sandbox)
	if rec == nil {
		errNotFound(KindFlow, id).write(w, rc)
		return
	}
	if im := r.Header.Get("If-Match"); im != "" && im != rec.etag() {
		errVersionMismatch(im, rec.etag()).write(w, rc)
		return
	}
	if cur := str(rec.Doc, "state"); cur == target {
		// Adobe refuses a transition to the current state (1422-400), so a
		// caller that lost the first answer sees an error on its retry.
		(&apiError{status: http.StatusBadRequest, code: "1422-400", title: "Invalid request",
			detail: "The action " + op + " cannot be applied on the current state " + cur + ". Please update the action and try again."}).write(w, rc)
		return
	}
	doc := cloneMap(rec.Doc)
	now := e.clock().UnixMilli()
	etag := stampUpdate(doc, rc, now)
	doc["state"] = target
	doc["lastOperation"] = map[string]any{"started": float64(now), "updated": float64(0), "operation": op}
	rec.Doc = doc
	e.persistLocked()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "etag": etag})
}
