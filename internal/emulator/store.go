package emulator

import (
	"cmp"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// record is one stored object. IDs are unique across partitions; a request
// from another org or sandbox sees the object as absent.
type record struct {
	Kind    Kind           `json:"kind"`
	ID      string         `json:"id"`
	Org     string         `json:"imsOrgId"`
	Sandbox string         `json:"sandboxName"`
	Seq     int64          `json:"seq"`
	Doc     map[string]any `json:"doc"`
	// History holds every version of a mapping set, index = version.
	History []map[string]any `json:"history,omitempty"`
}

func (r *record) etag() string {
	s, _ := r.Doc["etag"].(string)
	return s
}

type store struct {
	objects map[Kind]map[string]*record
	seq     int64
	// runs are the dataflow runs counted from ingested records (runs.go).
	runs   map[string]*runRec
	runSeq int64
}

func newStore() store {
	s := store{objects: map[Kind]map[string]*record{}, runs: map[string]*runRec{}}
	for _, k := range Kinds() {
		s.objects[k] = map[string]*record{}
	}
	return s
}

func (s *store) put(r *record) {
	if r.Seq == 0 {
		s.seq++
		r.Seq = s.seq
	}
	s.objects[r.Kind][r.ID] = r
}

// get returns the object if it exists in the (org, sandbox) partition.
func (s *store) get(kind Kind, id, org, sandbox string) *record {
	r := s.objects[kind][id]
	if r == nil || r.Org != org || r.Sandbox != sandbox {
		return nil
	}
	return r
}

// list returns the partition's objects of a kind in creation order.
func (s *store) list(kind Kind, org, sandbox string) []*record {
	var out []*record
	for _, r := range s.objects[kind] {
		if r.Org == org && r.Sandbox == sandbox {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

func (s *store) delete(kind Kind, id string) bool {
	if _, ok := s.objects[kind][id]; !ok {
		return false
	}
	delete(s.objects[kind], id)
	return true
}

// Object is a stored Adobe object as the emulator would return it.
type Object struct {
	Kind    Kind   `json:"kind"`
	ID      string `json:"id"`
	Org     string `json:"imsOrgId"`
	Sandbox string `json:"sandboxName"`
	// ETag is the current etag (with its embedded quotes); empty for
	// mapping sets, which are versioned instead.
	ETag string `json:"etag,omitempty"`
	// Doc is a private copy of the object's JSON representation.
	Doc map[string]any `json:"doc"`
}

// Name returns the object's name field.
func (o Object) Name() string { s, _ := o.Doc["name"].(string); return s }

// State returns the object's state field ("enabled"/"disabled" for flows).
func (o Object) State() string { s, _ := o.Doc["state"].(string); return s }

// Field returns the value at a dotted path such as "options.inletUrl" or
// "params.dataSetId", or nil.
func (o Object) Field(path string) any {
	var cur any = o.Doc
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

// Snapshot is a point-in-time copy of the stored objects, each list in
// creation order.
type Snapshot struct {
	// Connections are base connections; their secret auth params (those
	// whose schema says format password) are masked. Read the stored values
	// with Emulator.ConnectionParams.
	Connections       []Object `json:"connections"`
	SourceConnections []Object `json:"sourceConnections"`
	TargetConnections []Object `json:"targetConnections"`
	Flows             []Object `json:"flows"`
	MappingSets       []Object `json:"mappingSets"`
}

// Of returns the objects of one kind.
func (s Snapshot) Of(kind Kind) []Object {
	switch kind {
	case KindConnection:
		return s.Connections
	case KindSourceConnection:
		return s.SourceConnections
	case KindTargetConnection:
		return s.TargetConnections
	case KindFlow:
		return s.Flows
	case KindMappingSet:
		return s.MappingSets
	}
	return nil
}

// In returns the part of the snapshot in one org and sandbox.
func (s Snapshot) In(org, sandbox string) Snapshot {
	keep := func(in []Object) []Object {
		var out []Object
		for _, o := range in {
			if o.Org == org && o.Sandbox == sandbox {
				out = append(out, o)
			}
		}
		return out
	}
	return Snapshot{
		Connections:       keep(s.Connections),
		SourceConnections: keep(s.SourceConnections),
		TargetConnections: keep(s.TargetConnections),
		Flows:             keep(s.Flows),
		MappingSets:       keep(s.MappingSets),
	}
}

// Find returns the object of a kind with an ID.
func (s Snapshot) Find(kind Kind, id string) (Object, bool) {
	for _, o := range s.Of(kind) {
		if o.ID == id {
			return o, true
		}
	}
	return Object{}, false
}

// Len returns the number of objects in the snapshot.
func (s Snapshot) Len() int {
	return len(s.Connections) + len(s.SourceConnections) + len(s.TargetConnections) + len(s.Flows) + len(s.MappingSets)
}

// snapshot copies every object; view turns a private copy of a stored
// document into the one callers may see.
func (s *store) snapshot(view func(kind Kind, doc map[string]any) map[string]any) Snapshot {
	objects := func(kind Kind) []Object {
		recs := s.all(kind)
		out := make([]Object, 0, len(recs))
		for _, r := range recs {
			out = append(out, Object{Kind: kind, ID: r.ID, Org: r.Org, Sandbox: r.Sandbox, ETag: r.etag(), Doc: view(kind, cloneMap(r.Doc))})
		}
		return out
	}
	return Snapshot{
		Connections:       objects(KindConnection),
		SourceConnections: objects(KindSourceConnection),
		TargetConnections: objects(KindTargetConnection),
		Flows:             objects(KindFlow),
		MappingSets:       objects(KindMappingSet),
	}
}

// stateFile is the on-disk form of the store. Tokens are deliberately not
// saved: a restarted emulator makes callers fetch new ones, as Adobe would
// after a token expires.
type stateFile struct {
	Version int       `json:"version"`
	Seq     int64     `json:"seq"`
	Objects []*record `json:"objects"`
	// Runs are absent from files written before runs existed.
	Runs []*runRec `json:"runs,omitempty"`
}

const stateFileVersion = 1

func (s *store) save(path string) error {
	st := stateFile{Version: stateFileVersion, Seq: s.seq}
	for _, kind := range Kinds() {
		st.Objects = append(st.Objects, s.all(kind)...)
	}
	for _, r := range s.runs {
		st.Runs = append(st.Runs, r)
	}
	slices.SortFunc(st.Runs, func(a, b *runRec) int { return cmp.Compare(a.Seq, b.Seq) })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

// all returns every object of a kind in creation order.
func (s *store) all(kind Kind) []*record {
	out := make([]*record, 0, len(s.objects[kind]))
	for _, r := range s.objects[kind] {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// load reads a state file; a missing file is an empty store.
func loadStore(path string) (store, error) {
	s := newStore()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return s, fmt.Errorf("decode state file %s: %w", path, err)
	}
	if st.Version != stateFileVersion {
		return s, fmt.Errorf("state file %s has version %d, want %d", path, st.Version, stateFileVersion)
	}
	for _, r := range st.Objects {
		if r == nil || !r.Kind.valid() || r.ID == "" || r.Doc == nil {
			return s, fmt.Errorf("state file %s holds an invalid object", path)
		}
		s.put(r)
		s.seq = max(s.seq, r.Seq)
	}
	s.seq = max(s.seq, st.Seq)
	for _, r := range st.Runs {
		if r == nil || r.ID == "" || r.FlowID == "" {
			return s, fmt.Errorf("state file %s holds an invalid run", path)
		}
		s.runs[r.ID] = r
		s.runSeq = max(s.runSeq, r.Seq)
	}
	return s, nil
}

// sandboxID derives a stable UUID-shaped sandbox ID from the org and sandbox
// name; Adobe returns sandboxId on every object.
func sandboxID(org, sandbox string) string {
	h := sha1.Sum([]byte(org + "/" + sandbox))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// cloneMap deep-copies a JSON document.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return cloneMap(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = cloneValue(x)
		}
		return out
	default:
		return v
	}
}
