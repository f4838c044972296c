package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
)

// ensureEnvtest builds kube-apiserver and etcd with hack/setup-envtest.sh
// when they are missing (the first run on a machine: about ten minutes),
// showing the script's progress on the stage line.
func ensureEnvtest(ctx context.Context, p *progress, root, logPath string) error {
	if controlplane.BinariesPresent() {
		return nil
	}
	p.printf("The local control plane's kube-apiserver and etcd are not built yet: building them from\n"+
		"the Go module proxy into %s (first run only, about 10 minutes).\n", controlplane.AssetsDir())
	st := p.start("Building kube-apiserver and etcd")
	err := runSetupEnvtest(ctx, st, root, logPath)
	st.done(err)
	if err != nil {
		return err
	}
	if !controlplane.BinariesPresent() {
		return fmt.Errorf("hack/setup-envtest.sh finished but %s lacks kube-apiserver or etcd", controlplane.AssetsDir())
	}
	return nil
}

func runSetupEnvtest(ctx context.Context, st *stage, root, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(filepath.Join(root, "hack", "setup-envtest.sh"))
	cmd.Dir = root
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	setProcessGroup(cmd)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if msg, ok := strings.CutPrefix(line, "[envtest] "); ok {
				st.update(msg)
			} else {
				st.tick(line) // go get and go build output
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	if err := cmd.Start(); err != nil {
		_ = pw.Close()
		wg.Wait()
		return fmt.Errorf("run hack/setup-envtest.sh: %w", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		// Stop the script and its go builds together, so its cleanup trap
		// runs and no half-built binary is left behind.
		terminateGroup(cmd)
		select {
		case err = <-waitErr:
		case <-time.After(15 * time.Second):
			killGroup(cmd)
			err = <-waitErr
		}
		err = errors.Join(ctx.Err(), err)
	}
	_ = pw.Close()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("hack/setup-envtest.sh (log: %s): %w", logPath, err)
	}
	return nil
}
