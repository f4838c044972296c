package manager

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// EnvMemoryLimit names the environment variable that carries the
// container's memory limit in bytes. The Deployment and the Helm chart set
// it from the container's own limit with the Downward API
// (resourceFieldRef limits.memory), so the figure is never written twice.
const EnvMemoryLimit = "CAPILLARY_MEMORY_LIMIT"

// MemoryLimitShare is the share of the container's limit given to the Go
// runtime as its soft memory limit (GOMEMLIMIT): the rest is left for what
// the runtime does not count (the binary's mapped text, kernel buffers) so
// the garbage collector works harder before the kernel kills the process.
const MemoryLimitShare = 0.9

// ApplyMemoryLimit sets the Go runtime's soft memory limit to
// MemoryLimitShare of the container's limit, read from EnvMemoryLimit. An
// explicit GOMEMLIMIT wins (the runtime read it at start); without either,
// or with no limit set (the Downward API then gives the node's memory),
// nothing changes. It returns the limit set, 0 for none, and why.
func ApplyMemoryLimit() (int64, string) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" && v != "off" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT is set"
	}
	raw := strings.TrimSpace(os.Getenv(EnvMemoryLimit))
	if raw == "" {
		return 0, EnvMemoryLimit + " is not set"
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Sprintf("%s=%q is not a number of bytes", EnvMemoryLimit, raw)
	}
	soft := int64(math.Floor(float64(limit) * MemoryLimitShare))
	debug.SetMemoryLimit(soft)
	return soft, fmt.Sprintf("%.0f%% of the container's %d MiB", MemoryLimitShare*100, limit>>20)
}
