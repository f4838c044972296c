package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// scope carries one reconcile of one CapillarySource, and what its steps
// found for the steps after them.
type scope struct {
	cs *v1alpha1.CapillarySource
	// before is the object as last written, to patch against.
	before *v1alpha1.CapillarySource
	now    time.Time
	events events.EventRecorder
	// wasReady: Ready was True when this reconcile began; wasWarming: it was
	// False only because the inlet was warming up (everything else settled).
	wasReady, wasWarming bool
	// inletWarmup is --inlet-warmup; warmingUntil, when set, is when the
	// inlet of a dataflow found as declared starts to accept events.
	inletWarmup  time.Duration
	warmingUntil time.Time
	// flow is the dataflow as the dataflow step read it.
	flow *flowservice.Flow
	// synced: a reconcile had succeeded before this one (lastSyncTime was set).
	synced bool

	// credential identifies the Adobe credential in use (Credentials.key),
	// adobe is bound to it; both set by connect.
	credential string
	adobe      Adobe
	// usingKeptToken, set when a deletion goes on with the token kept from
	// an earlier pass, is the missing-Secret failure it stands in for.
	usingKeptToken *stepError
	// secret is the credential's Secret, read by connect; in memory only.
	secret *corev1.Secret
	// secretRef names its keys: the source's own, or its ClusterAdobeCredential's.
	secretRef v1alpha1.CredentialsSecretReference
	// credentialName names the credential in messages without exposing a
	// ClusterAdobeCredential's Secret.
	credentialName string
	// specs are the connection spec and its flow spec, from resolveSpecs.
	specs resolvedSpecs
	// mayExist: objects may exist in Adobe without their IDs in status
	// (see mayExist); when false, no lookup by name is needed.
	mayExist bool
	// checkAll: read every object, not only those read on a cheap resync.
	checkAll bool
	// adobeChanged: this reconcile created, changed or deleted something in Adobe.
	adobeChanged bool
	// drift lists the differences a policy left in Adobe (see reportDrift).
	drift []string
	// clusterCredential is the ClusterAdobeCredential the source uses, if any.
	clusterCredential *v1alpha1.ClusterAdobeCredential
	// created names the objects this reconcile created ("source connection
	// <id>"), for the one Created event finish sends.
	created []string
}

func (r *CapillarySourceReconciler) newScope(cs *v1alpha1.CapillarySource) *scope {
	return &scope{
		cs:          cs,
		before:      cs.DeepCopy(),
		now:         r.now(),
		events:      r.Recorder,
		wasReady:    meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionReady),
		wasWarming:  isReadyFor(cs, v1alpha1.ReasonInletWarmingUp),
		inletWarmup: r.InletWarmup,
		synced:      cs.Status.LastSyncTime != nil,
	}
}

// rebase makes the current object the base of the next patch.
func (s *scope) rebase() { s.before = s.cs.DeepCopy() }

func (s *scope) set(condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.cs.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: s.cs.Generation,
	})
}

func (s *scope) ok(condType, message string) {
	s.set(condType, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, message)
}

func (s *scope) remove(condType string) {
	meta.RemoveStatusCondition(&s.cs.Status.Conditions, condType)
}

// reconcileRequested says whether the manual trigger annotation carries a
// token not handled yet.
func (s *scope) reconcileRequested() (string, bool) {
	token, ok := s.cs.Annotations[v1alpha1.ReconcileRequestAnnotation]
	return token, ok && token != s.cs.Status.LastHandledReconcileAt
}

// forgetFailuresOfOlderSpec resets the failure count when it was counted
// against an older generation (the Reconciling condition says which): a
// spec change starts afresh.
func (s *scope) forgetFailuresOfOlderSpec() {
	rc := meta.FindStatusCondition(s.cs.Status.Conditions, v1alpha1.ConditionReconciling)
	if s.cs.Status.Failures > 0 && (rc == nil || rc.ObservedGeneration != s.cs.Generation) {
		s.cs.Status.Failures = 0
		s.cs.Status.LastFailureTime = nil
	}
}

// backoffRemaining is how long to wait before retrying after transient
// failures. A manual trigger skips the wait.
func (s *scope) backoffRemaining(delay func(int32) time.Duration) time.Duration {
	st := s.cs.Status
	if st.Failures == 0 || st.LastFailureTime == nil {
		return 0
	}
	if _, requested := s.reconcileRequested(); requested {
		return 0
	}
	// Measured with the shortest jittered delay, so the requeue that finish
	// scheduled is never turned away here.
	least := time.Duration(float64(delay(st.Failures)) * (1 - retryJitter))
	return max(st.LastFailureTime.Add(least).Sub(s.now), 0)
}

// saveProgress writes status now, mid-chain, so an ID Adobe just returned is
// on record before the next call: a crash here must not lose it.
func (r *CapillarySourceReconciler) saveProgress(ctx context.Context, s *scope) error {
	if equality.Semantic.DeepEqual(s.before.Status, s.cs.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, s.cs, client.MergeFrom(s.before)); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	s.rebase()
	return nil
}

// finish summarises the step conditions into Ready, Reconciling and Stalled
// (kstatus), books the failure for backoff, writes status if anything
// changed, and decides when to look again.
func (r *CapillarySourceReconciler) finish(ctx context.Context, s *scope, err error) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	cs := s.cs
	var result ctrl.Result
	s.reportCreated()

	if token, requested := s.reconcileRequested(); requested {
		cs.Status.LastHandledReconcileAt = token
	}

	var se *stepError
	switch {
	case err == nil:
		cs.Status.Failures = 0
		cs.Status.LastFailureTime = nil
		cs.Status.ObservedGeneration = cs.Generation
		s.remove(v1alpha1.ConditionReconciling)
		s.remove(v1alpha1.ConditionStalled)
		if !s.warmingUntil.IsZero() {
			// Settled, but the inlet does not accept events yet: Ready
			// waits for it, and the next look is when it will.
			msg := fmt.Sprintf("The dataflow is new: Adobe's inlet accepts events from %s (status.inletReadyAt)", s.warmingUntil.UTC().Format(time.RFC3339))
			s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInletWarmingUp, msg)
			s.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonInletWarmingUp, msg)
		} else if s.observeOnly() && cs.Status.DataflowID == "" {
			s.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonNothingManaged,
				"managementPolicy is ObserveOnly and no dataflow is named: nothing is managed in Adobe; set the annotation "+v1alpha1.AdoptDataflowAnnotation+" to observe one")
		} else if s.observeOnly() {
			s.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonObserving,
				fmt.Sprintf("Observing dataflow %s (%s); nothing is changed in Adobe (managementPolicy: ObserveOnly)", cs.Status.DataflowID, cs.Status.DataflowState))
		} else if cs.Spec.Suspend {
			s.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSuspended,
				"The dataflow exists and is disabled because spec.suspend is true")
		} else {
			s.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
				"The dataflow is enabled; Capillary can send events to status.inletUrl")
		}
		// Stamped only when the pass changed something (or never was): a resync
		// that finds everything as declared writes nothing to the API server.
		if cs.Status.LastSyncTime == nil || s.adobeChanged || !equality.Semantic.DeepEqual(s.before.Status, cs.Status) {
			cs.Status.LastSyncTime = &metav1.Time{Time: s.now}
		}
		result.RequeueAfter = r.resyncInterval(cs)
		if !s.warmingUntil.IsZero() {
			result.RequeueAfter = min(result.RequeueAfter, s.warmingUntil.Sub(s.now)+time.Second)
		}

	case errors.As(err, &se) && se.terminal:
		cs.Status.Failures = 0
		cs.Status.LastFailureTime = nil
		// Stalled is a verdict on this generation: kstatus reads it as Failed.
		cs.Status.ObservedGeneration = cs.Generation
		s.set(se.condition, metav1.ConditionFalse, se.reason, se.message)
		s.remove(v1alpha1.ConditionReconciling)
		s.set(v1alpha1.ConditionStalled, metav1.ConditionTrue, se.reason, se.message)
		s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, se.reason, se.message)
		if !isStalledFor(s.before, se.reason) {
			s.warn(se.reason, "Reconcile", se.message)
		}
		log.Info("stalled: waiting for a change to the spec or the Secret", "reason", se.reason, "error", se.err)
		result.RequeueAfter = jitter(r.StalledRetryInterval, 0.1)

	default:
		if !errors.As(err, &se) {
			se = classify(v1alpha1.ConditionReady, "reconcile", err)
		}
		if isConflict(err) {
			// Someone else wrote the object; requeue quietly with a fresh read.
			return ctrl.Result{RequeueAfter: jitter(conflictRequeue, 0.5)}, nil
		}
		if se.kubernetes {
			// Not Adobe's failure: say so, and leave the retry to the
			// workqueue's backoff instead of the persisted Adobe backoff.
			if se.condition != v1alpha1.ConditionReady {
				s.set(se.condition, metav1.ConditionFalse, se.reason, se.message)
			}
			s.remove(v1alpha1.ConditionStalled)
			s.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, se.reason, se.message)
			s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, se.reason, se.message)
			if werr := r.saveProgress(ctx, s); werr != nil {
				log.V(1).Info("could not write status either", "error", werr.Error())
			}
			return ctrl.Result{}, err
		}
		cs.Status.Failures++
		cs.Status.LastFailureTime = &metav1.Time{Time: s.now}
		if se.condition != v1alpha1.ConditionReady {
			s.set(se.condition, metav1.ConditionFalse, se.reason, se.message)
		}
		s.remove(v1alpha1.ConditionStalled)
		s.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressingWithRetry, se.message)
		s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, se.reason, se.message)
		log.Info("transient failure, backing off", "failures", cs.Status.Failures, "error", se.err)
		result.RequeueAfter = max(r.retryDelay(cs.Status.Failures), se.retryAfter)
	}

	if werr := r.saveProgress(ctx, s); werr != nil {
		if isConflict(werr) {
			return ctrl.Result{RequeueAfter: jitter(conflictRequeue, 0.5)}, nil
		}
		return ctrl.Result{}, werr
	}
	observeTimeToReady(cs, err == nil && !s.synced, s.now)
	return result, nil
}

// conflictRequeue is how soon a reconcile that lost a write race runs again.
const conflictRequeue = time.Second

func isConflict(err error) bool { return apierrors.IsConflict(err) }

func isReadyFor(cs *v1alpha1.CapillarySource, reason string) bool {
	c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Reason == reason
}

func isStalledFor(cs *v1alpha1.CapillarySource, reason string) bool {
	c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

// progressing marks a step as under way, and the resource as Reconciling.
func (s *scope) progressing(condType, message string) {
	s.set(condType, metav1.ConditionFalse, v1alpha1.ReasonProgressing, message)
	s.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing, message)
	if !meta.IsStatusConditionTrue(s.cs.Status.Conditions, v1alpha1.ConditionReady) {
		s.set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, message)
	}
}

// reportCreated sends one Created event naming every object this pass
// created, in the order they were made (one event, not one per object: a
// Kubernetes write each).
func (s *scope) reportCreated() {
	if len(s.created) == 0 {
		return
	}
	s.event(corev1.EventTypeNormal, "Created", "Create", "Created "+strings.Join(s.created, ", "))
	s.created = nil
}

// changed records a change this reconcile made in Adobe, with its event.
func (s *scope) changed(reason, action, note string) {
	s.adobeChanged = true
	s.event(corev1.EventTypeNormal, reason, action, note)
}

func (s *scope) event(eventType, reason, action, note string) {
	if s.events == nil {
		return
	}
	s.events.Eventf(s.cs, nil, eventType, reason, action, "%s", note)
}
