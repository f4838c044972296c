// Command aep-emulator serves the Adobe emulator (internal/emulator) on a
// loopback port: IMS tokens, Flow Service and Data Prep, with optional
// OpenAPI validation and fault injection. Point the operator at it with
// --ims-url and --platform-url set to the printed URL.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aepoperator/capillary-operator/internal/aepspec"
	"github.com/aepoperator/capillary-operator/internal/emulator"
)

// Used when no credential is configured, so `make emulator` works out of the
// box. They guard nothing but a local emulator.
const (
	defaultClientID     = "emulator-client"
	defaultClientSecret = "emulator-secret"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "aep-emulator:", err)
		os.Exit(1)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type config struct {
	addr, baseURL, specDir, stateFile, credFile, logLevel string
	allowRemote, noSpec                                   bool
	creds, unentitled, sandboxes, rejectDS, rejectMap     listFlag
	tokenLifetime                                         time.Duration
	faults                                                emulator.Faults
	faultOps, lostMode                                    string
	connectionAuth                                        emulator.ConnectionAuth
	hmacOverlap                                           time.Duration
	inletWarmup                                           time.Duration
	rateLimit                                             emulator.RateLimit
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fl := flag.NewFlagSet("aep-emulator", flag.ContinueOnError)
	fl.SetOutput(out)
	fl.Usage = func() {
		fmt.Fprintf(out, `Usage: aep-emulator [flags]

Serves a local Adobe Experience Platform for tests and demos: IMS
(POST /ims/token/v3), Flow Service (/data/foundation/flowservice) and Data Prep
(/data/foundation/conversion), plus flows' inlet URLs (/collection/{id} and
/collection/batch/{id}) and a JSON introspection API under /__emulator/
(state, calls, faults, ratelimit, expire-tokens, objects/{kind}/{id}, runs,
records).
Events posted to an inlet go through the flow's mapping set and are counted
into hourly runs, read with GET /data/foundation/flowservice/runs. Use the printed
URL as both the operator's --ims-url and --platform-url.

--connection-auth picks the Capillary connection spec's authSpec: "none"
(no base connection, open inlet), "oauth2" (base connection with an Adobe
client credential; inlet posts need Authorization: Bearer and
x-adobe-flow-id) or "hmac" (base connection with a shared secret; inlet
posts need x-hmac-sha256, the hex HMAC-SHA256 of the body, and
x-adobe-flow-id). docs/emulator.md says which parts are Adobe's.

Operation names for --fault-ops: %s
(or a group such as "flows.*", or "*").

Flags:
`, strings.Join(emulator.Operations(), ", "))
		fl.PrintDefaults()
	}

	fl.StringVar(&c.addr, "addr", "127.0.0.1:8089", "listen address; must be loopback unless --allow-remote")
	fl.BoolVar(&c.allowRemote, "allow-remote", false, "allow listening on a non-loopback address")
	fl.StringVar(&c.baseURL, "base-url", "", "URL callers reach the emulator at, used in flows' options.inletUrl (default: http://<bound address>)")
	fl.Var(&c.creds, "credential", "accepted IMS credential as clientID:clientSecret; repeatable (default: "+defaultClientID+":"+defaultClientSecret+" when no credential is given)")
	fl.StringVar(&c.credFile, "credentials-file", "", "file of clientID:clientSecret lines to accept, keeping secrets out of the process list")
	fl.DurationVar(&c.tokenLifetime, "token-lifetime", emulator.DefaultTokenLifetime, "lifetime of issued access tokens (reported as expires_in seconds)")
	fl.StringVar(&c.specDir, "spec-dir", "", "folder with Adobe's flow-service.yaml and data-prep.yaml to validate every Platform request against (default: $"+aepspec.EnvDir+", else shared/reference above the module root; without specs the emulator runs unvalidated)")
	fl.BoolVar(&c.noSpec, "no-spec", false, "do not validate requests against Adobe's OpenAPI specs")
	auth := fl.String("connection-auth", string(emulator.ConnectionAuthNone), "authSpec of the Capillary connection spec and what its inlets check: none, oauth2 or hmac")
	fl.DurationVar(&c.hmacOverlap, "hmac-secret-overlap", 0, "accept an HMAC base connection's previous shared secret this long after it was rotated (0: only the current one; an assumption, Adobe publishes no overlap)")
	fl.DurationVar(&c.inletWarmup, "inlet-warmup", 0, "how long after a streaming dataflow is created, or its mapping changed, its inlet drops the events it accepts (Adobe asks for about 5m; 0: none)")
	fl.StringVar(&c.stateFile, "state-file", "", "JSON file to load objects from and save them to after every change, so a restart keeps them (tokens are not saved)")

	fl.Uint64Var(&c.faults.Seed, "seed", 1, "seed for fault decisions and jitter; the same seed and request sequence give the same faults")
	fl.DurationVar(&c.faults.Latency, "latency", 0, "delay added to each targeted request")
	fl.DurationVar(&c.faults.Jitter, "jitter", 0, "extra random delay in [0, jitter) added to each targeted request")
	fl.Float64Var(&c.faults.Rate503, "rate-503", 0, "probability [0,1] of answering a targeted request 503 with Retry-After (nothing committed)")
	fl.DurationVar(&c.faults.RetryAfter, "retry-after", time.Second, "Retry-After sent with injected 503 and 429 answers (whole seconds, at least 1)")
	fl.Float64Var(&c.faults.Rate429, "rate-429", 0, "probability [0,1] of answering a targeted request 429 with Retry-After (nothing committed)")
	fl.Float64Var(&c.faults.RateLostResponse, "rate-lost", 0, "probability [0,1] of carrying out a targeted request and then losing its response")
	fl.StringVar(&c.lostMode, "lost-mode", string(emulator.LostMode500), `how a response is lost: "500" (answer 500 Internal Error) or "drop" (close the connection)`)
	fl.Float64Var(&c.faults.RateTokenExpiry, "rate-token-expiry", 0, "probability [0,1] that a targeted Platform request finds its token expired (the token is invalidated, the answer is 401 401013)")
	fl.Float64Var(&c.rateLimit.PerSecond, "rate-limit", 0, "the gateway's limit: Platform requests per second per credential (x-api-key); beyond it 429 with Retry-After, nothing done (0: no limit)")
	fl.IntVar(&c.rateLimit.Burst, "rate-limit-burst", 0, "burst of --rate-limit (0: one second's worth)")
	fl.StringVar(&c.faultOps, "fault-ops", "", "comma-separated operations the faults and latency apply to (default: all)")

	fl.Var(&c.unentitled, "unentitled-org", "org ID whose Platform requests get 403 FLOW-2118-403; repeatable")
	fl.Var(&c.sandboxes, "sandbox", "sandbox that exists (others get 404 FLOW-2100-404); repeatable (default: any sandbox)")
	fl.Var(&c.rejectDS, "reject-dataset", "dataset ID target connections may not use (400); repeatable")
	fl.Var(&c.rejectMap, "reject-mapping", "XDM destination path Data Prep refuses in a mapping set (400); repeatable")
	fl.StringVar(&c.logLevel, "log-level", "info", `"debug" logs one line per request (never tokens, secrets or bodies), "info" only start and stop`)

	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fl.Args())
	}
	ca, err := emulator.ParseConnectionAuth(*auth)
	if err != nil {
		return nil, fmt.Errorf("--connection-auth: %w", err)
	}
	c.connectionAuth = ca
	if c.hmacOverlap < 0 {
		return nil, errors.New("--hmac-secret-overlap must not be negative")
	}
	if c.inletWarmup < 0 {
		return nil, errors.New("--inlet-warmup must not be negative")
	}
	c.faults.LostMode = emulator.LostMode(c.lostMode)
	if c.faultOps != "" {
		for _, op := range strings.Split(c.faultOps, ",") {
			if op = strings.TrimSpace(op); op != "" {
				c.faults.Operations = append(c.faults.Operations, op)
			}
		}
	}
	if err := c.faults.Validate(); err != nil {
		return nil, fmt.Errorf("invalid fault flags: %w", err)
	}
	return c, nil
}

func readCredentials(c *config) (map[string]string, error) {
	lines := append([]string(nil), c.creds...)
	if c.credFile != "" {
		f, err := os.Open(c.credFile)
		if err != nil {
			return nil, fmt.Errorf("read credentials file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read credentials file: %w", err)
		}
	}
	creds := map[string]string{}
	for _, l := range lines {
		id, secret, ok := strings.Cut(l, ":")
		if !ok || id == "" || secret == "" {
			// Never echo the line: it may hold a secret.
			return nil, errors.New("a credential is not of the form clientID:clientSecret")
		}
		creds[id] = secret
	}
	return creds, nil
}

func run(args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if c.logLevel == "debug" {
		level = slog.LevelDebug
	} else if c.logLevel != "info" {
		return fmt.Errorf("--log-level must be debug or info, got %q", c.logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	creds, err := readCredentials(c)
	if err != nil {
		return err
	}
	if len(creds) == 0 {
		creds[defaultClientID] = defaultClientSecret
		log.Info("no credential configured; accepting the default emulator credential", "clientId", defaultClientID)
	}

	var validator emulator.RequestValidator
	if !c.noSpec {
		dir := c.specDir
		if dir == "" {
			if dir, err = aepspec.Dir(); err != nil {
				log.Warn("Adobe OpenAPI specs not found; requests are not validated", "error", err)
			}
		}
		if dir != "" {
			v, err := aepspec.Load(dir)
			if err != nil {
				return fmt.Errorf("load Adobe OpenAPI specs: %w", err)
			}
			validator = v
			log.Info("validating requests against Adobe's OpenAPI specs", "dir", dir)
		}
	}

	emu, err := emulator.New(emulator.Options{
		Credentials:    creds,
		TokenLifetime:  c.tokenLifetime,
		SpecValidator:  validator,
		Faults:         c.faults,
		StateFile:      c.stateFile,
		Logger:         log,
		BaseURL:        c.baseURL,
		AllowRemote:    c.allowRemote,
		UnentitledOrgs: c.unentitled,
		Sandboxes:      c.sandboxes,
		RejectDatasets: c.rejectDS,
		RejectMappings: c.rejectMap,

		ConnectionAuth:    c.connectionAuth,
		HMACSecretOverlap: c.hmacOverlap,
		InletWarmup:       c.inletWarmup,
		RateLimit:         c.rateLimit,
	})
	if err != nil {
		return fmt.Errorf("create emulator: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	url, err := emu.Start(c.addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Adobe emulator at %s (use as --ims-url and --platform-url); Capillary connection auth: %s\n", url, emu.ConnectionAuth())
	<-ctx.Done()
	stop()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return emu.Shutdown(sctx)
}
