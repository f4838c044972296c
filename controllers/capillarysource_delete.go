package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
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
	if cs.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		r.event(cs, corev1.EventTypeNormal, "Orphaned", "Delete", "Left the Adobe objects in place (deletionPolicy: Orphan)")
		return r.release(ctx, s)
	}

	delCtx, cancel := context.WithTimeout(ctx, cmp.Or(r.ReconcileTimeout, DefaultReconcileTimeout))
	defer cancel()
	err := deadlineReached(delCtx, r.deleteAdobeObjects(delCtx, s))
	if err == nil {
		r.event(cs, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted the dataflow and the source and target connections in Adobe")
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
			r.event(cs, corev1.EventTypeWarning, v1alpha1.ReasonDeleteBlocked, "Delete", msg)
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

func (r *CapillarySourceReconciler) deleteAdobeObjects(ctx context.Context, s *scope) error {
	cs := s.cs
	// Nothing can exist in Adobe for a resource that never began creating:
	// let it go without credentials (its Secret may never have existed).
	if !r.mayExist(cs) {
		return nil
	}
	adobe, err := r.connect(ctx, s)
	if err != nil {
		return err
	}
	// Objects whose create response was lost are not in status: find them by name.

	flowID := cs.Status.DataflowID
	if flowID == "" {
		found, err := adobe.FindFlow(ctx, adobeName(cs, kindDataflow))
		if err != nil {
			return fmt.Errorf("look up the dataflow: %w", err)
		}
		if found != nil {
			flowID = found.ID
		}
	}
	if flowID != "" {
		if err := adobe.DeleteFlow(ctx, flowID); err != nil && !flowservice.IsNotFound(err) {
			return fmt.Errorf("delete dataflow %s: %w", flowID, err)
		}
		cs.Status.DataflowID = ""
		cs.Status.InletURL = ""
		cs.Status.DataflowState = ""
		if err := r.saveProgress(ctx, s); err != nil {
			return err
		}
	}

	srcID := cs.Status.SourceConnectionID
	if srcID == "" {
		found, err := adobe.FindSourceConnection(ctx, adobeName(cs, kindSource))
		if err != nil {
			return fmt.Errorf("look up the source connection: %w", err)
		}
		if found != nil {
			srcID = found.ID
		}
	}
	tgtID := cs.Status.TargetConnectionID
	if tgtID == "" {
		found, err := adobe.FindTargetConnection(ctx, adobeName(cs, kindTarget))
		if err != nil {
			return fmt.Errorf("look up the target connection: %w", err)
		}
		if found != nil {
			tgtID = found.ID
		}
	}
	var errs []error
	if srcID != "" {
		if err := adobe.DeleteSourceConnection(ctx, srcID); err != nil && !flowservice.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete source connection %s: %w", srcID, err))
		} else {
			cs.Status.SourceConnectionID = ""
		}
	}
	if tgtID != "" {
		if err := adobe.DeleteTargetConnection(ctx, tgtID); err != nil && !flowservice.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete target connection %s: %w", tgtID, err))
		} else {
			cs.Status.TargetConnectionID = ""
		}
	}
	if err := errors.Join(errs...); err != nil {
		if werr := r.saveProgress(ctx, s); werr != nil {
			return werr
		}
		return err
	}
	return nil
}

// release drops the finalizer; the API server then removes the resource.
func (r *CapillarySourceReconciler) release(ctx context.Context, s *scope) (ctrl.Result, error) {
	cs := s.cs
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
