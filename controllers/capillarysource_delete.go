package controllers

import (
	"cmp"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// reconcileDelete removes the Adobe objects (deletionPolicy Delete) in
// Adobe's order, flow first, then the connections, and lets the resource go.
// When it cannot (credentials gone, Adobe refusing), it says so in a
// condition and an event, with the way out, instead of hanging silently.
func (r *CapillarySourceReconciler) reconcileDelete(ctx context.Context, s *scope) (ctrl.Result, error) {
	cs := s.cs
	if !controllerutil.ContainsFinalizer(cs, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	// ObserveOnly takes precedence: CEL cannot tell the default Delete from
	// one the user chose, and an observed object was never ours to delete.
	if s.observeOnly() {
		s.event(corev1.EventTypeNormal, "Orphaned", "Delete", "Left the Adobe objects in place: managementPolicy ObserveOnly never deletes in Adobe, whatever deletionPolicy says")
		return r.release(ctx, s)
	}
	if cs.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		s.event(corev1.EventTypeNormal, "Orphaned", "Delete", "Left the Adobe objects in place (deletionPolicy: Orphan)")
		return r.release(ctx, s)
	}

	delCtx, cancel := context.WithTimeout(ctx, cmp.Or(r.ReconcileTimeout, DefaultReconcileTimeout))
	defer cancel()
	err := deadlineReached(delCtx, r.deleteAdobeObjects(delCtx, s))
	if err == nil {
		s.event(corev1.EventTypeNormal, "Deleted", "Delete", "Deleted the dataflow and the source and target connections in Adobe")
		return r.release(ctx, s)
	}

	se := classify(v1alpha1.ConditionReady, "delete the Adobe objects", err)
	msg := fmt.Sprintf("Cannot delete the Adobe objects: %s. Fix that, or set deletionPolicy: Orphan to leave them in Adobe and let the resource go", se.message)
	wasBlocked := isBlocked(s.before)
	s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleteBlocked, msg)
	var result ctrl.Result
	if se.terminal {
		s.set(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonDeleteBlocked, msg)
		s.remove(v1alpha1.ConditionReconciling)
		if !wasBlocked {
			s.warn(v1alpha1.ReasonDeleteBlocked, "Delete", msg)
		}
		result.RequeueAfter = jitter(r.StalledRetryInterval, 0.1)
	} else {
		cs.Status.Failures++
		cs.Status.LastFailureTime = &metav1.Time{Time: s.now}
		s.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonDeleting, se.message)
		result.RequeueAfter = max(r.retryDelay(cs.Status.Failures), se.retryAfter)
	}
	logf.FromContext(ctx).Info("cannot delete the Adobe objects yet", "reason", se.reason, "error", se.err)
	if werr := r.saveProgress(ctx, s); werr != nil {
		return ctrl.Result{}, werr
	}
	return result, nil
}

func isBlocked(cs *v1alpha1.CapillarySource) bool {
	return isStalledFor(cs, v1alpha1.ReasonDeleteBlocked)
}

// deleteAdobeObjects walks the chain's objects in reverse: each goes before
// the objects it depends on (the dataflow before its connections).
func (r *CapillarySourceReconciler) deleteAdobeObjects(ctx context.Context, s *scope) error {
	// Nothing can exist in Adobe for a resource that never began creating:
	// let it go without credentials (its Secret may never have existed).
	if s.mayExist = r.mayExist(s.cs); !s.mayExist {
		return nil
	}
	if err := r.connectForDelete(ctx, s); err != nil {
		return err
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].object == nil {
			continue
		}
		if err := r.remove(ctx, s, chain[i].object(s)); err != nil {
			if werr := r.saveProgress(ctx, s); werr != nil {
				return werr
			}
			return r.keptTokenRefused(s, err)
		}
	}
	return nil
}

// release deletes the connection details (their owner reference would too,
// through the garbage collector) and drops the finalizer; the API server
// then removes the resource.
func (r *CapillarySourceReconciler) release(ctx context.Context, s *scope) (ctrl.Result, error) {
	cs := s.cs
	if err := r.pruneConnectionDetails(ctx, cs); err != nil {
		return ctrl.Result{}, err
	}
	patchBase := cs.DeepCopy()
	controllerutil.RemoveFinalizer(cs, v1alpha1.Finalizer)
	// A merge patch replaces the whole list: the optimistic lock makes it
	// fail, rather than drop a finalizer another controller added meanwhile.
	if err := r.Patch(ctx, cs, client.MergeFromWithOptions(patchBase, client.MergeFromWithOptimisticLock{})); err != nil {
		if isConflict(err) {
			return ctrl.Result{RequeueAfter: jitter(conflictRequeue, 0.5)}, nil
		}
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	r.forget(client.ObjectKeyFromObject(cs))
	return ctrl.Result{}, nil
}
