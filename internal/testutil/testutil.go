// Package testutil holds what the tests of several packages share.
package testutil

import (
	"os"
	"testing"
)

// ShortDir returns a new directory with a short path, removed when the
// test ends. Unix socket paths must stay under 108 bytes, which
// t.TempDir's paths can exceed.
func ShortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sockd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
