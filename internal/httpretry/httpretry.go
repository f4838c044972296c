// Package httpretry holds what the operator's HTTP clients (and the Adobe
// emulator) share about waiting: reading a Retry-After header and sleeping
// for as long as a context allows.
package httpretry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps what RetryAfter returns, so an absurd header cannot
// overflow a duration or park a caller for days.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter reads a Retry-After header value, delay-seconds or an HTTP
// date, as a wait from now. It answers 0 for an empty, unreadable, negative
// or past value, so callers fall back to their own backoff.
func RetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(value); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}

// Sleep waits for d or until ctx is done, whichever comes first, and then
// returns ctx's error if it ended the wait. A non-positive d returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
