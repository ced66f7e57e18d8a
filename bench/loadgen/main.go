// Command loadgen is sockd's load generator: a separate client process
// that sends HTTP GETs over TCP or a Unix socket from N workers, either
// with a new connection per request or with keep-alive, and prints one
// JSON report: requests, failures by kind, latency percentiles.
//
//	loadgen -addr 127.0.0.1:8080 -c 8 -d 20s [-keepalive] [-unix]
//
// It stops after -d, or when its standard input closes if -d is 0, so a
// test can run it for exactly as long as something else takes.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/internal/loadreport"
)

// Report is what loadgen prints.
type Report = loadreport.Report

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port, or a socket path with -unix")
	unixSock := flag.Bool("unix", false, "addr is a Unix socket path")
	conc := flag.Int("c", 8, "concurrent workers")
	dur := flag.Duration("d", 10*time.Second, "duration; 0 runs until stdin closes")
	keepAlive := flag.Bool("keepalive", false, "reuse connections")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	flag.Parse()

	network := "tcp"
	if *unixSock {
		network = "unix"
	}
	ctx, cancel := context.WithCancel(context.Background())
	if *dur > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), *dur)
	} else {
		go func() {
			io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			cancel()
		}()
	}
	defer cancel()

	var mu sync.Mutex
	rep := Report{Failures: map[string]int{}}
	var lat []time.Duration
	start := time.Now()
	pace := newPacer()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{
				DisableKeepAlives:   !*keepAlive,
				MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, *addr)
				},
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: *timeout}
			var mine []time.Duration
			fails := map[string]int{}
			var errs []string
			ok := 0
			for pace.wait(ctx) {
				t0 := time.Now()
				kind, err := do(c)
				if ctx.Err() != nil && kind != "" {
					break // cut off by the end of the run, not a failure
				}
				d := time.Since(t0)
				if kind == "" {
					ok++
					mine = append(mine, d)
				} else {
					fails[kind]++
					if len(errs) < 5 {
						errs = append(errs, fmt.Sprintf("%s after %.3fs (took %s): %v",
							time.Now().Format("15:04:05.000"), time.Since(start).Seconds(), d, err))
					}
				}
			}
			mu.Lock()
			rep.OK += ok
			for k, v := range fails {
				rep.Failures[k] += v
			}
			rep.Errors = append(rep.Errors, errs...)
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	rep.Requests = rep.OK
	for _, v := range rep.Failures {
		rep.Requests += v
	}
	rep.RPS = float64(rep.OK) / rep.Seconds
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		rep.P50 = ms(lat[len(lat)*50/100])
		rep.P99 = ms(lat[len(lat)*99/100])
		rep.Max = ms(lat[len(lat)-1])
	}
	json.NewEncoder(os.Stdout).Encode(rep)
}

// do makes one request and classifies a failure: "refused", "reset",
// "eof", "timeout", "status" or "other"; "" for success.
func do(c *http.Client) (string, error) {
	resp, err := c.Get("http://loadgen/")
	if err != nil {
		return classify(err), err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return classify(err), err
	}
	if resp.StatusCode != 200 {
		return "status", fmt.Errorf("status %s", resp.Status)
	}
	return "", nil
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
