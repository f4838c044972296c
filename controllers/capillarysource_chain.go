package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/flowservice"
)

// chain is what a reconcile does, in order: every step has one signature and
// takes what earlier steps found (the specs, the IDs) from the scope. Steps
// that keep an Adobe object name its client; the delete path walks those in
// reverse, so an object goes before the objects it depends on.
var chain = []step{
	{run: (*CapillarySourceReconciler).resolveSpecs},
	{run: (*CapillarySourceReconciler).adopt},
	objectStep(newBaseConnection),
	objectStep(newSourceConnection),
	objectStep(newTargetConnection),
	objectStep(newMappingSet),
	objectStep(newDataflow),
	{run: (*CapillarySourceReconciler).observeIngestion},
	{run: (*CapillarySourceReconciler).writeConnectionDetails},
}

// step is one stage of the chain.
type step struct {
	run func(r *CapillarySourceReconciler, ctx context.Context, s *scope) error
	// object makes the client of the Adobe object the step keeps; nil for a
	// step that only reads.
	object func(s *scope) external
}

// objectStep keeps one Adobe object as declared.
func objectStep(newClient func(s *scope) external) step {
	return step{
		object: newClient,
		run: func(r *CapillarySourceReconciler, ctx context.Context, s *scope) error {
			return r.ensure(ctx, s, newClient(s))
		},
	}
}

// external is the client of one kind of Adobe object, in the spirit of
// crossplane-runtime's ExternalClient: it knows how to read, create, change
// and delete the object of the scope's CapillarySource, and nothing of when
// to. That decision is made once, for every kind, by ensure and remove.
type external interface {
	kind() kind
	// id is the status field that holds the object's ID.
	id() *string
	// Get reads the object by ID: exists is false when Adobe has none.
	Get(ctx context.Context, id string) (observation, error)
	// Create makes the object as declared and observes what it made. It
	// answers the new ID also when a later part of the create failed, so
	// the ID goes on record.
	Create(ctx context.Context) (observation, error)
	// Update brings the object Get read to what is declared.
	Update(ctx context.Context) error
	// Delete deletes the object; one already gone is not an error.
	Delete(ctx context.Context, id string) error
	// Ready says, once the object is as declared, what its condition says;
	// or an error while the object is not usable yet.
	Ready() (string, error)
}

// finder is a kind Adobe can find by name: an object whose create answer
// was lost is found again instead of made twice.
type finder interface {
	Find(ctx context.Context, name string) (observation, error)
}

// optional is a kind the spec may not ask for (no mappings, no mapping set).
type optional interface {
	// notWanted clears the object from status and says why, when the spec
	// does not ask for it; no reason: no condition either.
	notWanted() (string, bool)
}

// prepared is a kind whose create needs local work that can fail (params
// from a Secret): it runs before the create marker, since nothing is sent.
type prepared interface {
	prepare() error
}

// versioned is a kind whose status tells, without a read, that the object
// is not as declared (its params came from an older Secret).
type versioned interface {
	outdated() bool
}

// observation is what a client found of its object.
type observation struct {
	exists bool
	// id of an object found by name.
	id string
	// upToDate: as declared; otherwise Update brings it there.
	upToDate bool
	// replace: it cannot be brought to the spec in place (a dataflow bound
	// to replaced connections): it is deleted and made anew.
	replace bool
}

// kind describes one kind of Adobe object.
type kind struct {
	// name is the suffix of its Adobe name and its metrics label.
	name string
	// title names it in messages and events ("source connection").
	title string
	// event prefixes its Warning events ("SourceConnection" → SourceConnectionGone).
	event string
	// condition reports on it.
	condition string
	// readOnResync: read on a cheap resync too (the dataflow, the one read).
	readOnResync bool
	// rejected, when set, replaces AdobeRejected for a create or update
	// Adobe refused, with a hint at the spec field to fix.
	rejected *rejection
}

type rejection struct{ reason, hint string }

// errGone: a cheap resync found an object deleted out of band; the chain
// is walked again with every object checked.
var errGone = errors.New("an Adobe object is gone")

// reconcileNormal connects with the source's credential and walks the chain.
func (r *CapillarySourceReconciler) reconcileNormal(ctx context.Context, s *scope) error {
	cs := s.cs
	if err := r.connect(ctx, s, forReconcile); err != nil {
		return err
	}
	s.ok(v1alpha1.ConditionCredentialsReady, "Adobe IMS issued a token for "+s.credentialName)

	// Observing makes nothing, so nothing can exist unseen.
	s.mayExist = r.mayExist(cs) && !s.observeOnly()
	// A resync of a settled resource reads only the dataflow; every other
	// pass checks every object. Settled means Ready too: a terminal failure
	// also sets observedGeneration, and what it left undone (a rejected
	// mapping change, say) must be tried again, not reported Ready unchecked.
	// Drift on record is checked in full, so what a cheap resync does not
	// read is not reported as gone.
	_, requested := s.reconcileRequested()
	s.checkAll = requested || !(s.wasReady || s.wasWarming) || cs.Status.ObservedGeneration != cs.Generation ||
		cs.Status.DataflowID == "" || meta.IsStatusConditionTrue(cs.Status.Conditions, v1alpha1.ConditionDrifted)
	err := r.runChain(ctx, s)
	if errors.Is(err, errGone) {
		s.checkAll = true
		s.drift = nil
		err = r.runChain(ctx, s)
	}
	if err == nil || len(s.drift) > 0 {
		s.reportDrift()
	}
	return err
}

func (r *CapillarySourceReconciler) runChain(ctx context.Context, s *scope) error {
	for _, st := range chain {
		if err := st.run(r, ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// connect reads the credentials from the Secret and gets a token from IMS.
func (r *CapillarySourceReconciler) connect(ctx context.Context, s *scope, purpose access) error {
	creds, err := r.credentials(ctx, s, purpose)
	if err != nil {
		return err
	}
	s.credential = creds.key()
	s.adobe = r.Adobe.Connect(creds)
	if err := s.adobe.CheckCredentials(ctx); err != nil {
		return classify(v1alpha1.ConditionCredentialsReady, "issue a token", err)
	}
	r.keepToken(ctx, s, creds)
	return nil
}

// ensure keeps one object as declared: it observes it, then creates,
// replaces or updates it as the observation says.
func (r *CapillarySourceReconciler) ensure(ctx context.Context, s *scope, c external) error {
	k := c.kind()
	if o, ok := c.(optional); ok {
		if msg, skip := o.notWanted(); skip {
			if msg == "" {
				s.remove(k.condition)
			} else {
				s.set(k.condition, metav1.ConditionTrue, v1alpha1.ReasonNotApplicable, msg)
			}
			return nil
		}
	}
	obs, err := r.observe(ctx, s, c)
	if err != nil {
		return err
	}
	switch {
	case !obs.exists && s.observeOnly():
		// Nothing on record to observe, and nothing may be made.
		s.remove(k.condition)
		return nil
	case obs.exists && (obs.replace || !obs.upToDate) && !s.mayCorrect(c):
		s.drifted(c)
		obs.replace, obs.upToDate = false, true
	}
	switch {
	case obs.exists && obs.replace:
		old := *c.id()
		if err := c.Delete(ctx, old); err != nil && !flowservice.IsNotFound(err) {
			return k.classify("delete the stale "+k.title, err)
		}
		*c.id() = ""
		s.changed("Recreated", "Recreate", fmt.Sprintf("Deleted %s %s, bound to objects this resource no longer owns; creating a new one", k.title, old))
		fallthrough
	case !obs.exists:
		if obs, err = r.create(ctx, s, c); err != nil {
			return err
		}
	}
	if !obs.upToDate {
		s.progressing(k.condition, "Updating the "+k.title)
		if err := c.Update(ctx); err != nil {
			return k.classify("update the "+k.title, err)
		}
	}
	msg, err := c.Ready()
	if err != nil {
		return err
	}
	s.ok(k.condition, msg)
	return nil
}

// observe finds the object: by the ID in status, else by its name when it
// may exist. A settled resource's objects are trusted on a cheap resync,
// but for the kinds read on every resync.
func (r *CapillarySourceReconciler) observe(ctx context.Context, s *scope, c external) (observation, error) {
	k := c.kind()
	if id := *c.id(); id != "" {
		if v, ok := c.(versioned); !s.checkAll && !k.readOnResync && (!ok || !v.outdated()) {
			return observation{exists: true, upToDate: true}, nil
		}
		obs, err := c.Get(ctx, id)
		if err != nil {
			return obs, k.classify("read the "+k.title, err)
		}
		if obs.exists {
			return obs, nil
		}
		if !s.checkAll {
			return obs, errGone
		}
		if !s.correcting() {
			return obs, s.notFound(k, id)
		}
		s.warn(k.event+"Gone", "Recreate", fmt.Sprintf("%s %s was deleted in Adobe; creating a new one", capitalize(k.title), id))
		driftCorrections.WithLabelValues(k.name).Inc()
		*c.id() = ""
	}
	f, ok := c.(finder)
	if !ok || !s.mayExist {
		return observation{}, nil
	}
	obs, err := f.Find(ctx, adobeName(s.cs, k.name))
	if err != nil {
		return obs, k.classify("look up the "+k.title, err)
	}
	if obs.exists {
		*c.id() = obs.id
		return obs, r.saveProgress(ctx, s)
	}
	return obs, nil
}

// create makes the object, after recording that objects may exist from now
// on, and puts its ID on record at once.
func (r *CapillarySourceReconciler) create(ctx context.Context, s *scope, c external) (observation, error) {
	k := c.kind()
	s.progressing(k.condition, "Creating the "+k.title)
	if p, ok := c.(prepared); ok {
		if err := p.prepare(); err != nil {
			return observation{}, k.classify("prepare the "+k.title, err)
		}
	}
	if err := r.beginCreate(ctx, s); err != nil {
		return observation{}, err
	}
	obs, err := c.Create(ctx)
	if obs.id != "" {
		*c.id() = obs.id
		// One event names every object the pass created (finish sends it).
		s.adobeChanged = true
		s.created = append(s.created, k.title+" "+obs.id)
		// A kind Adobe can find by name is found again after a crash
		// (createStartedAt is on record, so mayExist holds): its ID rides
		// with the next status write. A kind it cannot find (the mapping
		// set) has its ID written at once, before the next call.
		if _, findable := c.(finder); !findable {
			if werr := r.saveProgress(ctx, s); werr != nil {
				return obs, werr
			}
		}
	}
	if err != nil {
		return obs, k.classify("create the "+k.title, err)
	}
	return obs, nil
}

// remove deletes the object: by the ID in status, else by its name when it
// may exist. Not found counts as done.
func (r *CapillarySourceReconciler) remove(ctx context.Context, s *scope, c external) error {
	k := c.kind()
	id := *c.id()
	if f, ok := c.(finder); ok && id == "" && s.mayExist {
		obs, err := f.Find(ctx, adobeName(s.cs, k.name))
		if err != nil {
			return fmt.Errorf("look up the %s: %w", k.title, err)
		}
		id = obs.id
	}
	if id == "" {
		return nil
	}
	if err := c.Delete(ctx, id); err != nil && !flowservice.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", k.title, id, err)
	}
	*c.id() = ""
	return nil
}

// classify is the package classify for this kind, with its own reason and
// hint when Adobe refused what the spec asks for.
func (k kind) classify(what string, err error) *stepError {
	se := classify(k.condition, what, err)
	if k.rejected != nil && se.terminal && se.reason == v1alpha1.ReasonAdobeRejected {
		se.reason = k.rejected.reason
		se.message += ": " + k.rejected.hint
	}
	return se
}

// mayExist says whether Adobe objects of this resource may exist without
// their IDs being in status: a create may have happened whose answer was
// lost to a crash, a timeout or a failed status write. Only then are missing
// objects looked up by name before they are created, and only then does a
// delete need Adobe. It holds from the moment the first create is about to
// be sent (status.createStartedAt, written just before it; the in-process
// record covers a cache that has not yet seen that write) and whenever
// status holds an ID. This costs a cold create no lookups.
func (r *CapillarySourceReconciler) mayExist(cs *v1alpha1.CapillarySource) bool {
	st := cs.Status
	return st.CreateStartedAt != nil || st.SourceConnectionID != "" || st.TargetConnectionID != "" ||
		st.MappingSetID != "" || st.DataflowID != "" || legacyCreateMarker(cs) ||
		r.createStartedHere(client.ObjectKeyFromObject(cs), cs.UID)
}

// legacyCreateMarker is the marker versions before createStartedAt wrote
// before their first create: SourceConnectionReady, Progressing, no ID yet.
func legacyCreateMarker(cs *v1alpha1.CapillarySource) bool {
	c := meta.FindStatusCondition(cs.Status.Conditions, v1alpha1.ConditionSourceConnectionReady)
	return c != nil && c.Reason == v1alpha1.ReasonProgressing
}

// beginCreate records, before the first create is sent, that objects of
// this resource may exist in Adobe from now on.
func (r *CapillarySourceReconciler) beginCreate(ctx context.Context, s *scope) error {
	r.markCreateStarted(client.ObjectKeyFromObject(s.cs), s.cs.UID)
	if s.cs.Status.CreateStartedAt != nil {
		return nil
	}
	s.cs.Status.CreateStartedAt = &metav1.Time{Time: s.now}
	return r.saveProgress(ctx, s)
}

// warn records a Warning event about the scope's resource.
func (s *scope) warn(reason, action, note string) {
	s.event(corev1.EventTypeWarning, reason, action, note)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
