package emulator

import (
	"net/http"
	"strconv"
)

// mappingSchema returns the XDM schema a mapping set maps to: xdmSchema, or
// outputSchema.schemaRef.id (the two body shapes Adobe documents).
func mappingSchema(doc map[string]any) string {
	if s := str(doc, "xdmSchema"); s != "" {
		return s
	}
	return str(doc, "outputSchema", "schemaRef", "id")
}

// versionDoc returns a mapping set as it was at a version.
func (r *record) versionDoc(v int) map[string]any {
	if v >= 0 && v < len(r.History) {
		return r.History[v]
	}
	return r.Doc
}

func mappingError(detail string) *apiError {
	return errProblem(http.StatusBadRequest, "BadRequestError", detail)
}

// validateMappingSet checks what Data Prep would refuse outright.
func (e *Emulator) validateMappingSet(doc map[string]any) *apiError {
	if mappingSchema(doc) == "" {
		return mappingError("The mapping set must name its output XDM schema (xdmSchema or outputSchema.schemaRef.id).")
	}
	raw, has := doc["mappings"]
	if !has {
		return mappingError("The mapping set must contain mappings.")
	}
	mappings, ok := raw.([]any)
	if !ok {
		return mappingError("mappings must be an array.")
	}
	for i, m := range mappings {
		mm, ok := m.(map[string]any)
		if !ok {
			return mappingError("mappings[" + strconv.Itoa(i) + "] must be an object.")
		}
		dest := str(mm, "destinationXdmPath")
		if dest == "" {
			dest = str(mm, "destination")
		}
		src := str(mm, "sourceAttribute")
		if src == "" {
			src = str(mm, "source")
		}
		if dest == "" || src == "" {
			return mappingError("mappings[" + strconv.Itoa(i) + "] needs a source (sourceAttribute) and a destination (destinationXdmPath).")
		}
		if e.rejectMap[dest] {
			return mappingError("Invalid destination path " + dest + ": the field does not exist in the XDM schema " + mappingSchema(doc) + ".")
		}
	}
	return nil
}

// stampMappings gives every mapping the IDs and dates Data Prep adds.
func stampMappings(doc map[string]any, clientID string, now int64) {
	mappings, _ := doc["mappings"].([]any)
	for _, m := range mappings {
		mm := m.(map[string]any)
		if str(mm, "id") == "" {
			mm["id"] = newHexID(16)
		}
		if _, ok := mm["version"]; !ok {
			mm["version"] = float64(0)
		}
		if _, ok := mm["createdDate"]; !ok {
			mm["createdDate"], mm["createdBy"] = float64(now), clientID
		}
		mm["modifiedDate"], mm["modifiedBy"] = float64(now), clientID
	}
}

var mappingSystemFields = []string{"id", "version", "createdDate", "modifiedDate", "createdBy", "modifiedBy", "status"}

// createMappingSet serves POST /mappingSets: 200 with the SimpleRepresentation
// {id, version, createdDate, modifiedDate, createdBy, modifiedBy}.
func (e *Emulator) createMappingSet(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var doc map[string]any
	if aerr := readJSON(r, &doc); aerr != nil {
		aerr.problem = true
		aerr.write(w, rc)
		return
	}
	if aerr := e.validateMappingSet(doc); aerr != nil {
		aerr.write(w, rc)
		return
	}
	for _, f := range mappingSystemFields {
		delete(doc, f)
	}
	now := e.clock().UnixMilli()
	id := newHexID(16)
	doc["id"] = id
	doc["version"] = float64(0)
	doc["status"] = "PUBLISHED"
	doc["createdDate"], doc["modifiedDate"] = float64(now), float64(now)
	doc["createdBy"], doc["modifiedBy"] = rc.clientID, rc.clientID
	stampMappings(doc, rc.clientID, now)

	e.mu.Lock()
	e.store.put(&record{Kind: KindMappingSet, ID: id, Org: rc.org, Sandbox: rc.sandbox, Doc: doc, History: []map[string]any{cloneMap(doc)}})
	e.persistLocked()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "version": 0, "createdDate": now, "modifiedDate": now,
		"createdBy": rc.clientID, "modifiedBy": rc.clientID,
	})
}

func errMappingSetNotFound(id string) *apiError {
	return errProblem(http.StatusNotFound, "NotFoundError", "Mapping set "+id+" not found.")
}

// getMappingSet serves GET /mappingSets/{id}[?version=n]: the bare MappingSet.
func (e *Emulator) getMappingSet(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := r.PathValue("id")
	version := -1
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			mappingError("version must be a non-negative integer.").write(w, rc)
			return
		}
		version = n
	}
	e.mu.Lock()
	rec := e.store.get(KindMappingSet, id, rc.org, rc.sandbox)
	var doc map[string]any
	if rec != nil {
		if version < 0 {
			doc = cloneMap(rec.Doc)
		} else if version < len(rec.History) {
			doc = cloneMap(rec.History[version])
		}
	}
	e.mu.Unlock()
	if doc == nil {
		errMappingSetNotFound(id).write(w, rc)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// updateMappingSet serves PUT /mappingSets/{id}: the body replaces the
// mapping set, whose version increments; the answer is the new MappingSet.
func (e *Emulator) updateMappingSet(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := r.PathValue("id")
	var doc map[string]any
	if aerr := readJSON(r, &doc); aerr != nil {
		aerr.problem = true
		aerr.write(w, rc)
		return
	}
	if aerr := e.validateMappingSet(doc); aerr != nil {
		aerr.write(w, rc)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := e.store.get(KindMappingSet, id, rc.org, rc.sandbox)
	if rec == nil {
		errMappingSetNotFound(id).write(w, rc)
		return
	}
	for _, f := range mappingSystemFields {
		delete(doc, f)
	}
	now := e.clock().UnixMilli()
	doc["id"] = id
	doc["version"] = float64(intField(rec.Doc, "version") + 1)
	doc["status"] = "PUBLISHED"
	doc["createdDate"], doc["createdBy"] = rec.Doc["createdDate"], rec.Doc["createdBy"]
	doc["modifiedDate"], doc["modifiedBy"] = float64(now), rc.clientID
	stampMappings(doc, rc.clientID, now)
	rec.Doc = doc
	rec.History = append(rec.History, cloneMap(doc))
	e.persistLocked()
	writeJSON(w, http.StatusOK, cloneMap(doc))
}

// listMappingSets serves GET /mappingSets?limit=&start=[&name=]: a
// MapperSetPage {"data":[...],"_page":{"count","limit"},"_links":{}}.
func (e *Emulator) listMappingSets(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	limit, start := 10, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			mappingError("limit must be a positive integer.").write(w, rc)
			return
		}
		limit = n
	}
	if v := q.Get("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			mappingError("start must be a non-negative integer.").write(w, rc)
			return
		}
		start = n
	}
	name := q.Get("name")
	e.mu.Lock()
	var data []any
	for _, rec := range e.store.list(KindMappingSet, rc.org, rc.sandbox) {
		if name != "" && str(rec.Doc, "name") != name {
			continue
		}
		data = append(data, cloneMap(rec.Doc))
	}
	e.mu.Unlock()
	if start >= len(data) {
		data = []any{}
	} else {
		data = data[start:]
	}
	if len(data) > limit {
		data = data[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data":   data,
		"_page":  map[string]any{"count": len(data), "limit": limit},
		"_links": map[string]any{},
	})
}
