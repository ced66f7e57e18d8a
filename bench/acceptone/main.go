// Command acceptone is the tenant app of the bench's 10,000-unit step:
// the sleep service, made to answer one request so that a tenant
// can be triggered and counted. Started by socket activation with one
// listening socket (fd 3), it accepts one connection, writes one byte,
// closes it and then sleeps until it is stopped. It uses no more of Go
// than syscall, so that it starts and stays small.
package main

import (
	"os"
	"syscall"
	"time"
)

func main() {
	nfd, _, err := syscall.Accept(3)
	if err != nil {
		os.Stderr.WriteString("acceptone: accept on fd 3: " + err.Error() + "\n")
		os.Exit(1)
	}
	syscall.Write(nfd, []byte{'x'})
	syscall.Close(nfd)
	time.Sleep(1 << 62) // as sleep does, until SIGTERM ends it
}
