package osmem_test

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/osmemtest"
)

// TestConformanceNative runs the conformance suite on the backend of the
// running OS, so that every rule the simulator enforces is checked against
// the real kernel.
func TestConformanceNative(t *testing.T) {
	osmemtest.Run(t, func(*testing.T) osmem.OS { return osmem.Native() })
}
