package controllers

import (
	"k8s.io/apimachinery/pkg/types"
)

// memo is what this process remembers of one source besides its status, in
// memory only, until the source is gone. One entry a source in one map:
// three maps, as before, held ~3.5 MB at 5000 sources.
type memo struct {
	// uid tells one source from another of the same name: a memo of another
	// UID is no memo of this one.
	uid types.UID
	// seen: this process has reconciled the source (RestartSpread).
	seen bool
	// createStarted: this process began creating its objects (see mayExist).
	createStarted bool
	// kept: the access token of the last pass IMS accepted the credential
	// for, for deletion only (capillarysource_keptcredential.go).
	kept *keptCredential
}

// memoOf is the memo of the source with this name and UID, or a fresh one.
// Memos are values, stored whole, so a reader never sees half an update;
// only the source's own reconcile changes its memo, and the workqueue never
// hands one key to two workers at once, so a read-modify-write loses none.
func (r *CapillarySourceReconciler) memoOf(key types.NamespacedName, uid types.UID) memo {
	if v, ok := r.memos.Load(key); ok && v.(memo).uid == uid {
		return v.(memo)
	}
	return memo{uid: uid}
}

func (r *CapillarySourceReconciler) remember(key types.NamespacedName, m memo) {
	r.memos.Store(key, m)
}
