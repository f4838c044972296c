// Command manager runs the capillary-operator: it keeps each CapillarySource's
// Adobe Experience Platform objects as declared.
package main

import (
	"flag"
	"fmt"
	"os"

	// Mozilla's root certificates, used when the system has none: the image
	// is empty apart from this binary, so there is no /etc/ssl to read.
	// System roots (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs) win when
	// present. See docs/deploy.md, "Where the root certificates come from".
	_ "golang.org/x/crypto/x509roots/fallback"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/internal/version"
)

func main() {
	opts := manager.Defaults()
	opts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and the commit, and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version, version.Revision)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	memLimit, why := manager.ApplyMemoryLimit()
	log.Info("Go memory limit", "bytes", memLimit, "from", why)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "unable to load a kubeconfig")
		os.Exit(1)
	}
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		log.Error(err, "unable to set up the operator")
		os.Exit(1)
	}
	log.Info("starting", "version", version.Version, "revision", version.Revision, "imsURL", opts.IMSURL, "platformURL", opts.PlatformURL, "resyncInterval", opts.ResyncInterval)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}
