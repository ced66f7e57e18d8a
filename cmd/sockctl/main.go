// Command sockctl controls a running sockd through its API socket.
//
// Usage: sockctl [--api PATH] [--json] VERB [ARGS]; run "sockctl help".
// Exit codes: 0 done, 1 the operation failed, 2 usage, 3 cannot reach
// sockd.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	maybeRunHelper() // exec's helper: sets LISTEN_PID in the command (exec_linux.go)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, terminal: isTerminal(os.Stdout), stdin: os.Stdin}
	err := c.run(ctx, os.Args[1:])
	stop()
	if msg := errorText(err); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(exitCode(err))
}

// isTerminal reports whether f is a character device, which for stdout
// means a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
