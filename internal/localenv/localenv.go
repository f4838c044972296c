// Package localenv runs the whole product on loopback: a control plane
// (envtest's kube-apiserver and etcd), the Adobe emulator, and the operator's
// real manager pointed at it. Integration tests, the chaos and HA drills, the
// benchmark and `make demo` all stand on it.
package localenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
	"github.com/aepoperator/capillary-operator/internal/manager"
)

// Options configure Start.
type Options struct {
	// Emulator configures the Adobe emulator; Credentials must hold the
	// credentials the resources will use.
	Emulator emulator.Options
	// EmulatorAddr is where the emulator listens; default 127.0.0.1:0.
	EmulatorAddr string
	// ValidateRequests loads Adobe's OpenAPI specs (aepspec.Dir) so the
	// emulator refuses any request that strays from Adobe's wire format. When
	// the specs cannot be found, Start fails.
	ValidateRequests bool
	// ControlPlane configures the control plane (a fixed CertDir, for tests
	// that restart kube-apiserver).
	ControlPlane controlplane.Options
}

// Env is a running control plane and emulator.
type Env struct {
	ControlPlane *controlplane.ControlPlane
	Config       *rest.Config
	Client       client.Client
	Emulator     *emulator.Emulator
	// AdobeURL is the emulator's base URL: the IMS URL and the Platform URL.
	AdobeURL string
}

// Start boots the control plane (with the CRDs) and the emulator.
func Start(opts Options) (*Env, error) {
	emuOpts := opts.Emulator
	if opts.ValidateRequests && emuOpts.SpecValidator == nil {
		dir, err := aepspec.Dir()
		if err != nil {
			return nil, err
		}
		v, err := aepspec.Load(dir)
		if err != nil {
			return nil, err
		}
		emuOpts.SpecValidator = v
	}
	emu, err := emulator.New(emuOpts)
	if err != nil {
		return nil, fmt.Errorf("create Adobe emulator: %w", err)
	}
	url, err := emu.Start(opts.EmulatorAddr)
	if err != nil {
		return nil, fmt.Errorf("start Adobe emulator: %w", err)
	}
	cp, err := controlplane.Start(opts.ControlPlane)
	if err != nil {
		_ = emu.Close()
		return nil, err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		_ = cp.Stop()
		_ = emu.Close()
		return nil, fmt.Errorf("create client: %w", err)
	}
	return &Env{ControlPlane: cp, Config: cp.Config, Client: c, Emulator: emu, AdobeURL: url}, nil
}

// ManagerOptions are the production defaults pointed at the emulator, with
// the metrics and probe servers off (several managers may share a process)
// and no inlet warm-up.
func (e *Env) ManagerOptions() manager.Options {
	o := manager.Defaults()
	o.IMSURL = e.AdobeURL
	o.PlatformURL = e.AdobeURL
	o.AllowInsecureEndpoints = true
	o.MetricsAddr = "0"
	o.ProbeAddr = "0"
	o.SkipNameValidation = true
	// The emulator's inlets accept at once unless told otherwise; the tests
	// that are about the warm-up set both sides.
	o.InletWarmup = 0
	return o
}

// Manager is a running operator.
type Manager struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// StartManager runs the operator with opts until Stop.
func (e *Env) StartManager(opts manager.Options) (*Manager, error) {
	return e.StartManagerWithConfig(e.Config, opts)
}

// StartManagerWithConfig runs the operator with opts against cfg (a copy of
// Config with a wrapped transport, say) until Stop.
func (e *Env) StartManagerWithConfig(cfg *rest.Config, opts manager.Options) (*Manager, error) {
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		err := mgr.Start(ctx)
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		m.Stop()
		return nil, errors.New("manager cache did not sync")
	}
	return m, nil
}

// Stop stops the operator and waits for it to finish.
func (m *Manager) Stop() error {
	if m == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Done is closed when the manager has stopped.
func (m *Manager) Done() <-chan struct{} { return m.done }

// Stop shuts down the control plane and the emulator.
func (e *Env) Stop() error {
	var errs []error
	if e.ControlPlane != nil {
		errs = append(errs, e.ControlPlane.Stop())
	}
	if e.Emulator != nil {
		errs = append(errs, e.Emulator.Close())
	}
	return errors.Join(errs...)
}
