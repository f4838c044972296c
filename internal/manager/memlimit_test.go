package manager

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	cases := map[string]struct {
		gomemlimit, limit string
		want              int64
	}{
		"from the container's limit": {limit: "268435456", want: int64(math.Floor(268435456 * MemoryLimitShare))},
		"none":                       {want: 0},
		"not a number":               {limit: "256Mi", want: 0},
		"GOMEMLIMIT wins":            {gomemlimit: "100MiB", limit: "268435456", want: prev},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			t.Setenv(EnvMemoryLimit, tc.limit)
			debug.SetMemoryLimit(prev)
			got, why := ApplyMemoryLimit()
			if got != tc.want {
				t.Errorf("limit = %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}
