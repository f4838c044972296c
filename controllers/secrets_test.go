package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// recordingTransport remembers every bearer token the operator sent, so the
// scan below can look for them.
type recordingTransport struct {
	mu     sync.Mutex
	tokens map[string]bool
}

var tokenRecorder = &recordingTransport{tokens: map[string]bool{}}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		rt.mu.Lock()
		rt.tokens[tok] = true
		rt.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (rt *recordingTransport) secrets() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := append([]string{clientSecret, "wrong-secret-value"}, extraSecrets...)
	for t := range rt.tokens {
		out = append(out, t)
	}
	return out
}

// scanForSecrets checks everything the suite's operators wrote (logs, events,
// status) for every client secret and token the tests used.
func scanForSecrets() error {
	ctx := context.Background()
	var haystacks []string
	haystacks = append(haystacks, logs.String())
	var evs eventsv1.EventList
	if err := suite.Env.Client.List(ctx, &evs); err != nil {
		return err
	}
	var core corev1.EventList
	if err := suite.Env.Client.List(ctx, &core); err != nil {
		return err
	}
	var sources v1alpha1.CapillarySourceList
	if err := suite.Env.Client.List(ctx, &sources); err != nil {
		return err
	}
	for _, v := range []any{evs, core, sources} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		haystacks = append(haystacks, string(b))
	}
	secrets := tokenRecorder.secrets()
	if len(secrets) < 3 {
		return fmt.Errorf("the scan saw no token: the recorder is not wired")
	}
	if len(evs.Items) == 0 {
		return fmt.Errorf("the scan saw no event: events are not being recorded")
	}
	for _, h := range haystacks {
		for _, s := range secrets {
			if strings.Contains(h, s) {
				return fmt.Errorf("a client secret or token (%d chars) appears in logs, events or status", len(s))
			}
		}
	}
	return nil
}
