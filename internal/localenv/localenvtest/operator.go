package localenvtest

import (
	"os"
	"testing"

	"github.com/aepoperator/capillary-operator/internal/localenv"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// Full says whether the reliability drills run at full size (CHAOS_FULL=1,
// as make test-chaos sets it) rather than in their short form.
func Full() bool { return os.Getenv("CHAOS_FULL") == "1" }

// Size is the short figure, or the long one when Full.
func Size[T any](short, long T) T {
	if Full() {
		return long
	}
	return short
}

// Operator is the manager under test, which a test may restart.
type Operator struct {
	t    testing.TB
	env  *localenv.Env
	opts manager.Options
	m    *localenv.Manager
}

// StartOperator runs a manager with opts until the test ends.
func (s *Suite) StartOperator(t testing.TB, opts manager.Options) *Operator {
	t.Helper()
	o := &Operator{t: t, env: s.Env, opts: opts}
	o.start()
	t.Cleanup(o.Stop)
	return o
}

func (o *Operator) start() {
	o.t.Helper()
	m, err := o.env.StartManager(o.opts)
	if err != nil {
		o.t.Fatalf("start operator: %v", err)
	}
	o.m = m
}

// Stop stops the manager, waiting for the passes in flight; a second Stop
// does nothing.
func (o *Operator) Stop() {
	if o.m == nil {
		return
	}
	if err := o.m.Stop(); err != nil {
		o.t.Errorf("operator stopped with an error: %v", err)
	}
	o.m = nil
}

// Restart stops the manager and starts a new one with the same options.
func (o *Operator) Restart() {
	o.t.Helper()
	o.Stop()
	o.start()
}
