// Command cmd is the benchmark's manager child (package child); the harness
// builds and starts it.
package main

import (
	"fmt"
	"os"

	"github.com/aepoperator/capillary-operator/test/bench/child"
)

func main() {
	if err := child.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager child:", err)
		os.Exit(1)
	}
}
