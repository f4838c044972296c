// Package ownership maps the Adobe objects held by the emulator to the
// CapillarySources that own them, through the operator's deterministic names
// (capillary-<namespace>-<name>-<uid>-{source,target,dataflow}), and counts
// what the drills must never see: duplicates, leaks and missing objects.
package ownership

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/emulator"
)

// Kinds the operator names and deletes. Mapping sets have no name and no
// delete API, so they are checked through status only.
var Kinds = []emulator.Kind{emulator.KindSourceConnection, emulator.KindTargetConnection, emulator.KindFlow}

var suffix = map[emulator.Kind]string{
	emulator.KindSourceConnection: "-source",
	emulator.KindTargetConnection: "-target",
	emulator.KindFlow:             "-dataflow",
}

const uidLen = 36 // a Kubernetes UID is a UUID

// OwnerUID returns the UID in an object's name, or "" when the name is not
// one the operator gives.
func OwnerUID(kind emulator.Kind, name string) types.UID {
	rest, ok := strings.CutSuffix(name, suffix[kind])
	if !ok || !strings.HasPrefix(name, "capillary-") || len(rest) < uidLen {
		return ""
	}
	uid := rest[len(rest)-uidLen:]
	if strings.Count(uid, "-") != 4 {
		return ""
	}
	return types.UID(uid)
}

// Index is the emulator's connections and flows grouped by owner UID.
type Index struct {
	byOwner map[types.UID]map[emulator.Kind][]emulator.Object
	// Foreign are objects whose name the operator did not give.
	Foreign []emulator.Object
}

// NewIndex groups a snapshot's connections and flows by owner.
func NewIndex(s emulator.Snapshot) Index {
	ix := Index{byOwner: map[types.UID]map[emulator.Kind][]emulator.Object{}}
	for _, kind := range Kinds {
		for _, o := range s.Of(kind) {
			uid := OwnerUID(kind, o.Name())
			if uid == "" {
				ix.Foreign = append(ix.Foreign, o)
				continue
			}
			if ix.byOwner[uid] == nil {
				ix.byOwner[uid] = map[emulator.Kind][]emulator.Object{}
			}
			ix.byOwner[uid][kind] = append(ix.byOwner[uid][kind], o)
		}
	}
	return ix
}

// Of returns the objects of a kind owned by uid.
func (ix Index) Of(uid types.UID, kind emulator.Kind) []emulator.Object {
	return ix.byOwner[uid][kind]
}

// Owners returns every owner UID with at least one object.
func (ix Index) Owners() []types.UID {
	out := make([]types.UID, 0, len(ix.byOwner))
	for uid := range ix.byOwner {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}

// Report is what Check found; a clean report has only zeros and no Problems.
type Report struct {
	// Duplicates: objects beyond the first of a kind for one resource.
	Duplicates int
	// Leaks: objects whose owner is not among the live resources.
	Leaks int
	// Missing: a live resource without its object, or whose status names an
	// object Adobe does not hold.
	Missing int
	// Problems describes each finding.
	Problems []string
}

func (r *Report) add(counter *int, format string, args ...any) {
	*counter++
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Check compares the Adobe objects with the live resources: each resource
// has exactly one source connection, target connection and dataflow, they
// are the ones its status names, the dataflow is wired to them, the status'
// mapping set exists, and no object belongs to anyone else. Objects of
// resources in allowed (orphaned on purpose) are not leaks.
func Check(s emulator.Snapshot, live []v1alpha1.CapillarySource, allowed map[types.UID]bool) Report {
	ix := NewIndex(s)
	var r Report
	liveUIDs := map[types.UID]bool{}
	for i := range live {
		cs := &live[i]
		liveUIDs[cs.UID] = true
		statusID := map[emulator.Kind]string{
			emulator.KindSourceConnection: cs.Status.SourceConnectionID,
			emulator.KindTargetConnection: cs.Status.TargetConnectionID,
			emulator.KindFlow:             cs.Status.DataflowID,
		}
		for _, kind := range Kinds {
			objs := ix.Of(cs.UID, kind)
			switch {
			case len(objs) == 0:
				r.add(&r.Missing, "%s/%s has no %s in Adobe", cs.Namespace, cs.Name, kind)
			case len(objs) > 1:
				r.Duplicates += len(objs) - 1
				r.Problems = append(r.Problems, fmt.Sprintf("%s/%s has %d %s in Adobe", cs.Namespace, cs.Name, len(objs), kind))
			case objs[0].ID != statusID[kind]:
				r.add(&r.Missing, "%s/%s status names %s %q, Adobe holds %q", cs.Namespace, cs.Name, kind, statusID[kind], objs[0].ID)
			}
		}
		if flows := ix.Of(cs.UID, emulator.KindFlow); len(flows) == 1 {
			f := flows[0]
			if !slices.Equal(stringsAt(f, "sourceConnectionIds"), []string{cs.Status.SourceConnectionID}) ||
				!slices.Equal(stringsAt(f, "targetConnectionIds"), []string{cs.Status.TargetConnectionID}) {
				r.add(&r.Missing, "%s/%s dataflow %s is not wired to its own connections", cs.Namespace, cs.Name, f.ID)
			}
		}
		if id := cs.Status.MappingSetID; id != "" {
			if _, ok := s.Find(emulator.KindMappingSet, id); !ok {
				r.add(&r.Missing, "%s/%s status names mapping set %s, which Adobe does not hold", cs.Namespace, cs.Name, id)
			}
		}
	}
	for _, uid := range ix.Owners() {
		if liveUIDs[uid] || allowed[uid] {
			continue
		}
		for _, kind := range Kinds {
			for _, o := range ix.Of(uid, kind) {
				r.add(&r.Leaks, "%s %s (%s) has no owning resource", kind, o.ID, o.Name())
			}
		}
	}
	for _, o := range ix.Foreign {
		r.add(&r.Leaks, "%s %s (%q) was not named by the operator", o.Kind, o.ID, o.Name())
	}
	return r
}

func stringsAt(o emulator.Object, field string) []string {
	raw, _ := o.Field(field).([]any)
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}
