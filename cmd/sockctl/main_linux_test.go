package main

import (
	"os"
	"testing"

	"github.com/sockd/sockd/children"
)

// TestMain lets the test binary play exec's helper, as main does.
func TestMain(m *testing.M) {
	children.MaybeRunHelper()
	os.Exit(m.Run())
}
