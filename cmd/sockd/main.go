// Command sockd is the socket-activation supervisor daemon: it owns the
// sockets of the unit files in --units and starts their services on the
// first connection. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/fdholder"
)

func main() {
	children.MaybeRunHelper()
	fdholder.MaybeRunHolder()
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockd:", err)
	}
	os.Exit(code)
}
