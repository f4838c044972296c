package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/aepoperator/capillary-operator/internal/controlplane"
	"github.com/aepoperator/capillary-operator/internal/manager"
	"github.com/aepoperator/capillary-operator/test/bench/child"
)

// The child's types, as the harness reads them.
type (
	childStats   = child.Stats
	childOptions = child.Options
	memStats     = child.MemStats
)

// manifestEnv is the Go runtime's part of the manager container's
// environment in config/manager/manager.yaml, as a pod would have it: the
// memory limit handed over by the Downward API (CAPILLARY_MEMORY_LIMIT, in
// bytes) and the plain GO* variables (GOGC).
func manifestEnv() ([]string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	if err != nil {
		return nil, err
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name != "manager" {
				continue
			}
			q, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				return nil, errors.New("no memory limit for the manager container in config/manager/manager.yaml")
			}
			env := []string{fmt.Sprintf("%s=%d", manager.EnvMemoryLimit, q.Value())}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "GO") && e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
			return env, nil
		}
	}
	return nil, errors.New("no manager container in config/manager/manager.yaml")
}

// childBuild is the manager child's binary (./child/cmd), built once per
// process into a temporary folder that removeChildBinary deletes.
var childBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

func childBinary() (string, error) {
	childBuild.once.Do(func() {
		root, err := controlplane.RepoRoot()
		if err != nil {
			childBuild.err = err
			return
		}
		if childBuild.dir, err = os.MkdirTemp("", "capillary-bench-child-"); err != nil {
			childBuild.err = err
			return
		}
		childBuild.path = filepath.Join(childBuild.dir, "manager")
		goTool, err := exec.LookPath("go")
		if err != nil {
			childBuild.err = fmt.Errorf("build the manager child: no go on PATH: %w", err)
			return
		}
		cmd := exec.Command(goTool, "build", "-o", childBuild.path, "./test/bench/child/cmd")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			childBuild.err = fmt.Errorf("build the manager child: %w\n%s", err, b)
		}
	})
	return childBuild.path, childBuild.err
}

// removeChildBinary deletes the built child, if any.
func removeChildBinary() {
	if childBuild.dir != "" {
		_ = os.RemoveAll(childBuild.dir)
	}
}

// managerProc is a running manager child, seen from the harness.
type managerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	log   *os.File
	http  *http.Client
	done  chan error

	stopOnce sync.Once
	stopErr  error
}

// startManager starts a manager child against the harness's environment,
// with the manager flags args, logging to logPath.
func startManager(cfg *rest.Config, adobeURL string, args []string, cacheSecretData bool, logPath string) (*managerProc, error) {
	exe, err := childBinary()
	if err != nil {
		return nil, err
	}
	env, err := manifestEnv()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	// The production rules for the Go runtime (the memory limit from the
	// manifest's limit, as the Downward API would hand it over; GOGC), and
	// none of the harness's own GO* settings.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GO") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start manager child: %w", err)
	}
	p := &managerProc{cmd: cmd, stdin: stdin, log: logFile, http: &http.Client{Timeout: time.Minute}, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	spec := child.Spec{
		Host: cfg.Host, CAData: cfg.CAData, CertData: cfg.CertData, KeyData: cfg.KeyData, Token: cfg.BearerToken,
		AdobeURL: adobeURL, Args: args, CacheSecretData: cacheSecretData,
	}
	b, _ := json.Marshal(spec)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		p.kill()
		return nil, fmt.Errorf("send child spec: %w", err)
	}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), child.AddrTag); ok {
				addrCh <- a
			}
		}
		close(addrCh)
	}()
	select {
	case a, ok := <-addrCh:
		if !ok {
			p.kill()
			return nil, fmt.Errorf("manager child exited before it was ready; see %s", logPath)
		}
		p.addr = a
	case <-time.After(3 * time.Minute):
		p.kill()
		return nil, fmt.Errorf("manager child not ready after 3m; see %s", logPath)
	}
	return p, nil
}

// stats asks the child for its counters; settle runs the GC first, secrets
// counts the Secrets in its cache.
func (p *managerProc) stats(settle, secrets bool) (childStats, error) {
	q := []string{}
	if settle {
		q = append(q, "settle=1")
	}
	if secrets {
		q = append(q, "secrets=1")
	}
	resp, err := p.http.Get("http://" + p.addr + "/stats?" + strings.Join(q, "&"))
	if err != nil {
		return childStats{}, fmt.Errorf("manager stats: %w", err)
	}
	defer resp.Body.Close()
	var st childStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return childStats{}, fmt.Errorf("decode manager stats: %w", err)
	}
	return st, nil
}

func (p *managerProc) reset() error {
	resp, err := p.http.Post("http://"+p.addr+"/reset", "", nil)
	if err != nil {
		return fmt.Errorf("reset manager counters: %w", err)
	}
	resp.Body.Close()
	return nil
}

// stop closes stdin, so the manager shuts down, and waits for it. It may
// be called again; later calls return the first result.
func (p *managerProc) stop() error {
	p.stopOnce.Do(func() {
		_ = p.stdin.Close()
		select {
		case p.stopErr = <-p.done:
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = errors.New("manager child did not stop within a minute; killed")
		}
		_ = p.log.Close()
	})
	return p.stopErr
}

// kill ends a child that never became ready.
func (p *managerProc) kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		p.stopErr = <-p.done
		_ = p.log.Close()
	})
}
