package emulator

import (
	"encoding/json"
	"io"
	"net/http"
)

// introspectMux serves the emulator's own JSON API under /__emulator/. It is
// not an Adobe API: no faults, no authentication, no call counting. It never
// returns credentials or tokens.
//
//	GET    /__emulator/healthz               {"status":"ok"}
//	GET    /__emulator/state                 Snapshot of every stored object
//	GET    /__emulator/calls                 [{operation,status,clientId,count}]
//	DELETE /__emulator/calls                 reset the counts
//	GET    /__emulator/faults                current Faults
//	POST   /__emulator/faults                replace Faults (same JSON)
//	GET    /__emulator/ratelimit             current RateLimit ({perSecond,burst})
//	POST   /__emulator/ratelimit             replace RateLimit (same JSON)
//	POST   /__emulator/expire-tokens         expire every issued token
//	DELETE /__emulator/objects/{kind}/{id}   out-of-band deletion (Vanish)
//	GET    /__emulator/runs[?flowId=]        Runs (counts, status, the run as served)
//	GET    /__emulator/records[?flowId=]     Records posted to inlets, with outcomes
func (e *Emulator) introspectMux() *http.ServeMux {
	p := IntrospectPrefix
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET "+p+"/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Objects())
	})
	mux.HandleFunc("GET "+p+"/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Calls().List())
	})
	mux.HandleFunc("DELETE "+p+"/calls", func(w http.ResponseWriter, r *http.Request) {
		e.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+p+"/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Faults())
	})
	mux.HandleFunc("POST "+p+"/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err == nil {
			err = json.Unmarshal(data, &f)
		}
		if err == nil {
			err = e.SetFaults(f)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, e.Faults())
	})
	mux.HandleFunc("GET "+p+"/ratelimit", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.RateLimit())
	})
	mux.HandleFunc("POST "+p+"/ratelimit", func(w http.ResponseWriter, r *http.Request) {
		var l RateLimit
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		err := dec.Decode(&l)
		if err == nil {
			err = e.SetRateLimit(l)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, e.RateLimit())
	})
	mux.HandleFunc("POST "+p+"/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		e.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+p+"/objects/{kind}/{id}", func(w http.ResponseWriter, r *http.Request) {
		kind := Kind(r.PathValue("kind"))
		if !kind.valid() {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unknown kind " + string(kind)})
			return
		}
		if !e.Vanish(kind, r.PathValue("id")) {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such object"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+p+"/runs", func(w http.ResponseWriter, r *http.Request) {
		runs := e.Runs(r.URL.Query().Get("flowId"))
		if runs == nil {
			runs = []Run{}
		}
		writeJSON(w, http.StatusOK, runs)
	})
	mux.HandleFunc("GET "+p+"/records", func(w http.ResponseWriter, r *http.Request) {
		recs := e.Records(r.URL.Query().Get("flowId"))
		if recs == nil {
			recs = []Record{}
		}
		writeJSON(w, http.StatusOK, recs)
	})
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "unknown emulator endpoint " + r.Method + " " + r.URL.Path})
	})
	return mux
}
