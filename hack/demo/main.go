// Command demo runs the whole product on this machine, with no cluster and no
// Adobe account: a local control plane (envtest's kube-apiserver and etcd),
// the Adobe emulator, and the operator's real manager pointed at it. It
// applies config/samples, waits for them to be Ready, prints them as kubectl
// would with the KUBECONFIG to reach them, and stays up until Ctrl-C.
//
//	make demo    # or: go run ./hack/demo [-namespace default]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/emulator"
)

func main() {
	opts := options{}
	flag.StringVar(&opts.Namespace, "namespace", "default", "namespace the samples are applied to")
	flag.DurationVar(&opts.ReadyTimeout, "ready-timeout", 3*time.Minute, "how long to wait for the samples to become Ready")
	flag.DurationVar(&opts.InletWarmup, "inlet-warmup", 5*time.Second, "the inlet's warm-up, for the emulator and the operator alike (Adobe's is about 5m)")
	auth := flag.String("connection-auth", string(emulator.ConnectionAuthOAuth2), "the Capillary connection spec's auth the emulator serves: none, oauth2 or hmac")
	flag.Parse()
	var err error
	if opts.ConnectionAuth, err = emulator.ParseConnectionAuth(*auth); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	root, err := controlplane.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: run it from the repository (make demo):", err)
		os.Exit(1)
	}
	opts.Root = root

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		// After the first Ctrl-C, a second one kills the demo outright.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
