// Package version holds what the release build stamps into the manager with
// -ldflags -X (see internal/release.LDFlags): the release and the commit. A
// plain `go build` leaves the defaults.
package version

var (
	// Version is the release, `git describe --tags --always --dirty --abbrev=12` at build time.
	Version = "dev"
	// Revision is the full commit hash the binary was built from.
	Revision = "unknown"
)
