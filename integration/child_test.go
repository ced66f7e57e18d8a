package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// fdReport is what the "fds" child answers: what it was handed.
type fdReport struct {
	Pid       int      `json:"pid"`
	ListenPID string   `json:"listen_pid"`
	Names     []string `json:"names"` // LISTEN_FDNAMES order
	Addrs     []string `json:"addrs"` // fd 3, 4, … local addresses
}

// childMain runs when sockd starts the test binary as a unit's service.
func childMain(mode string) {
	switch mode {
	case "fds":
		rep := fdReport{Pid: os.Getpid(), ListenPID: os.Getenv("LISTEN_PID")}
		files := activation.Files(false) // checks LISTEN_PID; fds in order
		var ls []net.Listener
		for _, f := range files {
			rep.Names = append(rep.Names, f.Name())
			l, err := net.FileListener(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(1)
			}
			rep.Addrs = append(rep.Addrs, l.Addr().String())
			ls = append(ls, l)
		}
		body, _ := json.Marshal(rep)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
		for _, l := range ls {
			go http.Serve(l, h)
		}
		daemon.SdNotify(false, daemon.SdNotifyReady)
		fmt.Println("child serving", len(ls), "sockets")
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		<-sigs
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown SOCKD_TEST_CHILD mode", mode)
		os.Exit(2)
	}
}
