package emulator

import (
	"mime"
	"net/http"
	"strings"
	"time"
)

// maxBodyBytes bounds request bodies; Adobe's own limits are far lower than
// anything the operator sends.
const maxBodyBytes = 1 << 20

// reqCtx carries what the pipeline learns about one request.
type reqCtx struct {
	op        string
	requestID string
	clientID  string
	org       string
	sandbox   string
}

type routeClass int

const (
	classIMS routeClass = iota
	classPlatform
	classCollection
	classUnknown
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, rc *reqCtx)

type route struct {
	pattern string
	op      string
	class   routeClass
	handle  handlerFunc
}

func (e *Emulator) routes() *http.ServeMux {
	fs, dp := FlowServicePrefix, DataPrepPrefix
	rs := []route{
		{"POST " + IMSTokenPath, OpIMSToken, classIMS, e.handleToken},

		{"GET " + fs + "/connectionSpecs", OpConnectionSpecsList, classPlatform, e.listSpecs(e.connSpecs)},
		{"GET " + fs + "/connectionSpecs/{id}", OpConnectionSpecsGet, classPlatform, e.getSpec(e.connSpecs)},
		{"GET " + fs + "/flowSpecs", OpFlowSpecsList, classPlatform, e.listSpecs(flowSpecs)},
		{"GET " + fs + "/flowSpecs/{id}", OpFlowSpecsGet, classPlatform, e.getSpec(flowSpecs)},

		{"POST " + fs + "/connections", OpConnectionsCreate, classPlatform, e.createObject(KindConnection)},
		{"GET " + fs + "/connections", OpConnectionsList, classPlatform, e.listObjects(KindConnection)},
		{"GET " + fs + "/connections/{id}", OpConnectionsGet, classPlatform, e.getObject(KindConnection)},
		{"PATCH " + fs + "/connections/{id}", OpConnectionsPatch, classPlatform, e.patchObject(KindConnection)},
		{"DELETE " + fs + "/connections/{id}", OpConnectionsDelete, classPlatform, e.deleteObject(KindConnection)},

		{"POST " + fs + "/sourceConnections", OpSourceConnectionsCreate, classPlatform, e.createObject(KindSourceConnection)},
		{"GET " + fs + "/sourceConnections", OpSourceConnectionsList, classPlatform, e.listObjects(KindSourceConnection)},
		{"GET " + fs + "/sourceConnections/{id}", OpSourceConnectionsGet, classPlatform, e.getObject(KindSourceConnection)},
		{"PATCH " + fs + "/sourceConnections/{id}", OpSourceConnectionsPatch, classPlatform, e.patchObject(KindSourceConnection)},
		{"DELETE " + fs + "/sourceConnections/{id}", OpSourceConnectionsDelete, classPlatform, e.deleteObject(KindSourceConnection)},

		{"POST " + fs + "/targetConnections", OpTargetConnectionsCreate, classPlatform, e.createObject(KindTargetConnection)},
		{"GET " + fs + "/targetConnections", OpTargetConnectionsList, classPlatform, e.listObjects(KindTargetConnection)},
		{"GET " + fs + "/targetConnections/{id}", OpTargetConnectionsGet, classPlatform, e.getObject(KindTargetConnection)},
		{"PATCH " + fs + "/targetConnections/{id}", OpTargetConnectionsPatch, classPlatform, e.patchObject(KindTargetConnection)},
		{"DELETE " + fs + "/targetConnections/{id}", OpTargetConnectionsDelete, classPlatform, e.deleteObject(KindTargetConnection)},

		{"POST " + fs + "/flows", OpFlowsCreate, classPlatform, e.createObject(KindFlow)},
		{"GET " + fs + "/flows", OpFlowsList, classPlatform, e.listObjects(KindFlow)},
		{"GET " + fs + "/flows/{id}", OpFlowsGet, classPlatform, e.getObject(KindFlow)},
		{"PATCH " + fs + "/flows/{id}", OpFlowsPatch, classPlatform, e.patchObject(KindFlow)},
		{"DELETE " + fs + "/flows/{id}", OpFlowsDelete, classPlatform, e.deleteObject(KindFlow)},
		{"POST " + fs + "/flows/{id}/action", OpFlowsAction, classPlatform, e.flowAction},

		{"GET " + fs + "/runs", OpRunsList, classPlatform, e.listRuns},
		{"GET " + fs + "/runs/{id}", OpRunsGet, classPlatform, e.getRun},

		{"POST " + dp + "/mappingSets", OpMappingSetsCreate, classPlatform, e.createMappingSet},
		{"GET " + dp + "/mappingSets", OpMappingSetsList, classPlatform, e.listMappingSets},
		{"GET " + dp + "/mappingSets/{id}", OpMappingSetsGet, classPlatform, e.getMappingSet},
		{"PUT " + dp + "/mappingSets/{id}", OpMappingSetsUpdate, classPlatform, e.updateMappingSet},

		{"POST " + CollectionPrefix + "/{inlet}", OpCollection, classCollection, e.handleCollection},
		{"POST " + CollectionPrefix + "/batch/{inlet}", OpCollectionBatch, classCollection, e.handleCollectionBatch},

		{"/", OpUnknown, classUnknown, e.handleUnknown},
	}
	mux := http.NewServeMux()
	for _, rt := range rs {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { e.serve(w, r, rt) })
	}
	mux.Handle(IntrospectPrefix+"/", e.introspectMux())
	return mux
}

// serve runs one Adobe request through latency, the gateway's rate limit,
// fault injection, the gateway checks, spec validation and the handler, and
// counts it.
func (e *Emulator) serve(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	rc := &reqCtx{op: rt.op, requestID: newUUID()}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	w.Header().Set("x-request-id", rc.requestID)

	d := e.faults.decide(rt.op)
	if d.delay > 0 {
		if err := e.sleep(r.Context(), d.delay); err != nil {
			return // the caller went away
		}
	}

	// The gateway's per-credential limit comes first: beyond it nothing is
	// done, whatever fault was drawn.
	if rt.class == classPlatform {
		if ok, wait := e.limits.admit(r.Header.Get("x-api-key"), e.clock()); !ok {
			rc.clientID = clientHint(r, rt)
			w.Header().Set("Retry-After", retryAfterValue(retryAfterSeconds(wait)))
			w.Header().Set(HeaderEmulatorReason, ReasonRateLimited)
			gatewayError(w, http.StatusTooManyRequests, "429050", "Too many requests")
			e.finish(rt, rc, r, http.StatusTooManyRequests, ReasonRateLimited, start, 0)
			return
		}
	}

	status := 0
	fault := ""
	switch d.kind {
	case fault503:
		fault = ReasonFault503
		rc.clientID = clientHint(r, rt)
		w.Header().Set("Retry-After", retryAfterValue(d.retryAfter))
		w.Header().Set(HeaderEmulatorReason, ReasonFault503)
		if rt.class == classIMS {
			imsError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The service is temporarily unavailable.")
		} else {
			errServiceUnavailable().write(w, rc)
		}
		status = http.StatusServiceUnavailable
	case fault429:
		fault = ReasonFault429
		rc.clientID = clientHint(r, rt)
		w.Header().Set("Retry-After", retryAfterValue(d.retryAfter))
		w.Header().Set(HeaderEmulatorReason, ReasonFault429)
		gatewayError(w, http.StatusTooManyRequests, "429050", "Too many requests")
		status = http.StatusTooManyRequests
	case faultLost:
		fault = ReasonFaultLost
		sink := &discardWriter{header: http.Header{}}
		e.dispatch(sink, r, rt, rc)
		committed := sink.status
		if d.lostMode == LostModeDrop {
			status = StatusDropped
			e.finish(rt, rc, r, status, fault, start, committed)
			dropConnection(w)
			return
		}
		w.Header().Set(HeaderEmulatorReason, ReasonFaultLost)
		if rt.class == classIMS {
			imsError(w, http.StatusInternalServerError, "server_error", "An internal error has occurred.")
		} else {
			errInternal().write(w, rc)
		}
		status = http.StatusInternalServerError
		e.finish(rt, rc, r, status, fault, start, committed)
		return
	case faultTokenExpiry:
		if rt.class == classPlatform {
			fault = ReasonFaultTokenExpiry
			if tok, ok := bearerToken(r.Header.Get("Authorization")); ok {
				e.expireToken(tok)
			}
		}
		fallthrough
	default:
		sw := &statusWriter{ResponseWriter: w}
		e.dispatch(sw, r, rt, rc)
		status = sw.code()
	}
	e.finish(rt, rc, r, status, fault, start, 0)
}

func (e *Emulator) finish(rt route, rc *reqCtx, r *http.Request, status int, fault string, start time.Time, committed int) {
	e.calls.add(rt.op, status, rc.clientID)
	attrs := []any{"op", rt.op, "method", r.Method, "path", r.URL.Path, "status", status,
		"clientId", rc.clientID, "requestId", rc.requestID, "duration", time.Since(start)}
	if fault != "" {
		attrs = append(attrs, "fault", fault)
	}
	if committed != 0 {
		attrs = append(attrs, "committedStatus", committed)
	}
	e.log.Debug("request", attrs...)
}

// dispatch runs the gateway checks (Platform only), spec validation and the
// handler.
func (e *Emulator) dispatch(w http.ResponseWriter, r *http.Request, rt route, rc *reqCtx) {
	if rt.class == classPlatform {
		if !e.gateway(w, r, rc) {
			return
		}
		// Flow Service answers a PATCH without If-Match with its own code;
		// the spec only knows the header is required.
		if r.Method == http.MethodPatch && r.Header.Get("If-Match") == "" {
			errIfMatchMissing().write(w, rc)
			return
		}
		if e.validator != nil {
			if err := e.validator.ValidateRequest(r); err != nil {
				w.Header().Set(HeaderEmulatorReason, ReasonSpecViolation)
				(&apiError{status: http.StatusBadRequest, code: "1000-400", title: "Bad request",
					detail: "The request is invalid. Please check the request and try again. " + err.Error()}).write(w, rc)
				return
			}
		}
	}
	rt.handle(w, r, rc)
}

// gateway applies the checks Adobe's API gateway and Flow Service make on
// every Platform request, in that order, writing the error when one fails.
func (e *Emulator) gateway(w http.ResponseWriter, r *http.Request, rc *reqCtx) bool {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		gatewayError(w, http.StatusForbidden, "403010", "Oauth token is missing.")
		return false
	}
	apiKey := r.Header.Get("x-api-key")
	rc.clientID = apiKey
	if apiKey == "" {
		gatewayError(w, http.StatusForbidden, "403000", "Api Key is required")
		return false
	}
	info, valid := e.lookupToken(token)
	if !valid {
		gatewayError(w, http.StatusUnauthorized, "401013", "Oauth token is not valid")
		return false
	}
	rc.clientID = info.clientID
	if apiKey != info.clientID {
		gatewayError(w, http.StatusForbidden, "403003", "Api Key is invalid")
		return false
	}
	rc.org = r.Header.Get("x-gw-ims-org-id")
	if rc.org == "" {
		gatewayError(w, http.StatusBadRequest, "400003", "Missing header")
		return false
	}
	rc.sandbox = r.Header.Get("x-sandbox-name")
	if rc.sandbox == "" {
		(&apiError{status: http.StatusBadRequest, code: "2105-400", title: "Header is missing",
			detail: "The header x-sandbox-name is missing in the request. Please add the header in the request and try again."}).write(w, rc)
		return false
	}
	if len(e.sandboxes) > 0 && !e.sandboxes[rc.sandbox] {
		(&apiError{status: http.StatusNotFound, code: "2100-404", title: "Sandbox not found",
			detail: "The sandbox with the name '" + rc.sandbox + "' could not be found. Please ensure that the sandbox name is correct and try again."}).write(w, rc)
		return false
	}
	if e.unentitled[rc.org] {
		perm := "write"
		if r.Method == http.MethodGet {
			perm = "read"
		}
		(&apiError{status: http.StatusForbidden, code: "2118-403", title: "Missing permission",
			detail: "The permission " + perm + " is missing. Please contact your administrator to resolve permissions and try again."}).write(w, rc)
		return false
	}
	if hasBody(r) && !jsonContentType(r) {
		errProblem(http.StatusBadRequest, "BadRequestError", "A valid content-type must be specified").write(w, rc)
		return false
	}
	return true
}

func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func hasBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return r.ContentLength != 0
	}
	return false
}

func jsonContentType(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	return mt == "application/json" || (r.Method == http.MethodPatch && mt == "application/json-patch+json")
}

// clientHint names the caller of a request the emulator answers before
// authenticating it.
func clientHint(r *http.Request, rt route) string {
	if rt.class == classIMS {
		if err := r.ParseForm(); err == nil {
			return r.PostForm.Get("client_id")
		}
		return ""
	}
	return r.Header.Get("x-api-key")
}

func (e *Emulator) handleUnknown(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	errProblem(http.StatusNotFound, "NotFoundError", "No Adobe API is emulated at "+r.Method+" "+r.URL.Path).write(w, rc)
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// discardWriter swallows the response of a request whose answer is lost.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.header }
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}

// dropConnection closes the client connection without a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: net/http aborts the response on this panic
	// without logging it.
	panic(http.ErrAbortHandler)
}
