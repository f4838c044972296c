package localenvtest

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// Version is one version of a CapillarySource as a watch saw it.
type Version struct {
	Name            string
	ResourceVersion string
	Generation      int64
	Deleting        bool
	Status          v1alpha1.CapillarySourceStatus
}

// Ready is the version's Ready condition as "Status/Reason", or "" when it
// has none.
func (v Version) Ready() string {
	c := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// StatusLog records every version of the CapillarySources of one namespace
// (every status write shows as one), from a watch that resumes after the
// API server goes away and lists again after a 410.
type StatusLog struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	versions []Version
	seen     map[string]bool
	relists  int
}

// RecordStatus starts a StatusLog of namespace ns.
func RecordStatus(cfg *rest.Config, ns string) (*StatusLog, error) {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &StatusLog{cancel: cancel, done: make(chan struct{}), seen: map[string]bool{}}
	rv, err := l.list(ctx, c, ns)
	if err != nil {
		cancel()
		return nil, err
	}
	go l.run(ctx, c, ns, rv)
	return l, nil
}

func (l *StatusLog) list(ctx context.Context, c client.WithWatch, ns string) (string, error) {
	var list v1alpha1.CapillarySourceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return "", err
	}
	for i := range list.Items {
		l.add(&list.Items[i])
	}
	return list.ResourceVersion, nil
}

func (l *StatusLog) run(ctx context.Context, c client.WithWatch, ns, rv string) {
	defer close(l.done)
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &v1alpha1.CapillarySourceList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				rv = l.relist(ctx, c, ns, rv)
			}
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Error:
				if st := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(st) || apierrors.IsGone(st) {
					rv = l.relist(ctx, c, ns, rv)
				}
			case watch.Bookmark:
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
			default:
				if cs, ok := ev.Object.(*v1alpha1.CapillarySource); ok {
					l.add(cs)
					rv = cs.ResourceVersion
				}
			}
		}
		w.Stop()
	}
}

func (l *StatusLog) relist(ctx context.Context, c client.WithWatch, ns, rv string) string {
	l.mu.Lock()
	l.relists++
	l.mu.Unlock()
	if nrv, err := l.list(ctx, c, ns); err == nil {
		return nrv
	}
	return rv
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (l *StatusLog) add(cs *v1alpha1.CapillarySource) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := cs.Name + "@" + cs.ResourceVersion
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	l.versions = append(l.versions, Version{Name: cs.Name, ResourceVersion: cs.ResourceVersion, Generation: cs.Generation,
		Deleting: cs.DeletionTimestamp != nil, Status: *cs.Status.DeepCopy()})
}

// Stop ends the watch.
func (l *StatusLog) Stop() {
	l.cancel()
	<-l.done
}

// Versions returns what was recorded of the source name, oldest first.
func (l *StatusLog) Versions(name string) []Version {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Version
	for _, v := range l.versions {
		if v.Name == name {
			out = append(out, v)
		}
	}
	return out
}

// Len is the number of versions recorded.
func (l *StatusLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.versions)
}

// Relists is how often the watch had to list again (410 Gone).
func (l *StatusLog) Relists() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.relists
}

// ReadyRuns is the Ready condition ("Status/Reason") of the source's
// versions with repeats in a row folded: one entry per change.
func (l *StatusLog) ReadyRuns(name string) []string {
	var runs []string
	for _, v := range l.Versions(name) {
		r := v.Ready()
		if len(runs) == 0 || runs[len(runs)-1] != r {
			runs = append(runs, r)
		}
	}
	return runs
}
