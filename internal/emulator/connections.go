package emulator

import (
	"net/http"
	"time"
)

// Base connections (POST/GET/PATCH/DELETE /connections), as flow-service.yaml
// (createConnection, ConnectionItemDTO, CreateConnectionRequest) and the HTTP
// API streaming tutorial (help/sources/tutorials/api/create/streaming/http.md)
// describe them: {name, description, auth{specName, params}, connectionSpec}.

// compileSchemas compiles every authSpec and optionSpec schema this run
// serves.
func (e *Emulator) compileSchemas() {
	e.authSchemas = map[string]*paramSchema{}
	for _, cs := range e.connSpecs.items {
		arr, _ := cs["authSpec"].([]any)
		for _, a := range arr {
			m, _ := a.(map[string]any)
			spec, _ := m["spec"].(map[string]any)
			if spec != nil {
				e.authSchemas[authSchemaKey(str(cs, "id"), str(m, "name"))] = compileSchema(spec)
			}
		}
	}
	e.optionSchemas = map[string]*paramSchema{}
	for _, fs := range flowSpecs.items {
		if spec, ok := mapAt(fs, "optionSpec", "spec"); ok {
			e.optionSchemas[str(fs, "id")] = compileSchema(spec)
		}
	}
}

func authSchemaKey(specID, name string) string { return specID + "\x00" + name }

// view turns a private copy of a stored document into what callers may see:
// base connections' secret params are masked.
func (e *Emulator) view(kind Kind, doc map[string]any) map[string]any {
	if kind == KindFlow {
		// lastRunDetails comes from the runs (runs.go); the flow's etag
		// does not change as records arrive.
		if lr := e.lastRunDetailsLocked(doc); lr != nil {
			doc["lastRunDetails"] = lr
		}
		return doc
	}
	if kind != KindConnection {
		return doc
	}
	cs := e.connSpecs.get(str(doc, "connectionSpec", "id"))
	if cs == nil {
		return doc
	}
	return maskSecrets(doc, cs)
}

// ConnectionParams returns a copy of a base connection's stored auth.params,
// secrets included (responses and snapshots mask them), for tests that check
// what the operator sent.
func (e *Emulator) ConnectionParams(id string) (map[string]any, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.store.objects[KindConnection][id]
	if r == nil {
		return nil, false
	}
	params, _ := mapAt(r.Doc, "auth", "params")
	return cloneMap(params), true
}

// validateConnection checks a base connection: a known connection spec with
// an authSpec of the given name, and params that satisfy its JSON schema.
func (e *Emulator) validateConnection(doc map[string]any) *apiError {
	specID, cs, aerr := e.namedConnectionSpec(doc)
	if aerr != nil {
		return aerr
	}
	if cs == nil {
		return errInvalidSpec(specID)
	}
	name := str(doc, "auth", "specName")
	if name == "" {
		return errMandatory("auth.specName")
	}
	schema := e.authSchemas[authSchemaKey(specID, name)]
	if schema == nil {
		// A spec with an empty authSpec has no auth spec of any name.
		return &apiError{status: http.StatusBadRequest, code: "1415-400", title: "Invalid request",
			detail: "The auth spec '" + name + "' could not be found for the connection spec ID " + specID + ".",
			report: map[string]any{"id": specID}}
	}
	params, ok := mapAt(doc, "auth", "params")
	if !ok {
		return errMandatory("auth.params")
	}
	if v := schema.check(params); v != nil {
		// Adobe's catalogue has no code for params that fail the authSpec;
		// the emulator answers its generic invalid-request code and names
		// the property (never its value, which may be a secret).
		return &apiError{status: http.StatusBadRequest, code: "1100-400", title: "Invalid request",
			detail: "The request could not be processed. Error from flow provider: the auth param " + v.property + " " + v.reason +
				" (auth spec '" + name + "' of connection spec " + specID + ").",
			report: map[string]any{"property": "auth.params." + v.property}}
	}
	return nil
}

// namedConnectionSpec checks that a (base or source) connection has a name
// and a connectionSpec.id, and returns the spec, nil when unknown.
func (e *Emulator) namedConnectionSpec(doc map[string]any) (string, map[string]any, *apiError) {
	if str(doc, "name") == "" {
		return "", nil, errMandatory("name")
	}
	specID := str(doc, "connectionSpec", "id")
	if specID == "" {
		return "", nil, errMandatory("connectionSpec.id")
	}
	return specID, e.connSpecs.get(specID), nil
}

// validateBaseConnectionRefLocked checks a source connection's
// baseConnectionId against its connection spec; e.mu must be held.
func (e *Emulator) validateBaseConnectionRefLocked(doc, connSpec map[string]any, rc *reqCtx) *apiError {
	specID := str(connSpec, "id")
	baseID := str(doc, "baseConnectionId")
	if !needsBaseConnection(connSpec) {
		if baseID != "" {
			// A Streaming-SDK spec with an empty authSpec: no base connection.
			return &apiError{status: http.StatusBadRequest, code: "1332-400", title: "Invalid request",
				detail: "The source connection request with the connectionSpecId: " + specID + " cannot have a baseConnectionId. Please remove the baseConnectionId and try again."}
		}
		return nil
	}
	if baseID == "" {
		return errMandatory("baseConnectionId")
	}
	base := e.store.get(KindConnection, baseID, rc.org, rc.sandbox)
	if base == nil {
		return &apiError{status: http.StatusBadRequest, code: "1100-400", title: "Invalid request",
			detail: "The request could not be processed. Error from flow provider: the base connection " + baseID + " does not exist.",
			report: map[string]any{"id": baseID}}
	}
	if got := str(base.Doc, "connectionSpec", "id"); got != specID {
		return &apiError{status: http.StatusBadRequest, code: "1100-400", title: "Invalid request",
			detail: "The request could not be processed. Error from flow provider: the base connection " + baseID +
				" belongs to connection spec " + got + ", not " + specID + ".",
			report: map[string]any{"id": baseID}}
	}
	return nil
}

// sourcesUsingLocked returns the source connections in the partition that
// reference a base connection; e.mu must be held.
func (e *Emulator) sourcesUsingLocked(id string, rc *reqCtx) []string {
	var out []string
	for _, s := range e.store.list(KindSourceConnection, rc.org, rc.sandbox) {
		if str(s.Doc, "baseConnectionId") == id {
			out = append(out, s.ID)
		}
	}
	return out
}

// prevSecret is a replaced HMAC shared secret still accepted until a time.
type prevSecret struct {
	secret string
	until  time.Time
}

// rememberSecretLocked keeps the shared secret a PATCH replaced, when the
// overlap option is on; e.mu must be held.
func (e *Emulator) rememberSecretLocked(id string, before, after map[string]any) {
	if e.opts.HMACSecretOverlap <= 0 {
		return
	}
	old := str(before, "auth", "params", HMACSecretParam)
	if old == "" || old == str(after, "auth", "params", HMACSecretParam) {
		return
	}
	e.prevSecrets[id] = prevSecret{secret: old, until: e.clock().Add(e.opts.HMACSecretOverlap)}
}
