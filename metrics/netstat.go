package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The kernel counts connections dropped at a full listen queue for the
// whole network namespace, not per socket (TcpExt in /proc/net/netstat,
// what `nstat` and `netstat -s` show): they are exported as they are,
// host-wide, under the names below.
var (
	descListenOverflows = prometheus.NewDesc("sockd_host_tcp_listen_overflows_total",
		"Connections the kernel dropped because a listening socket's accept queue was full, for the whole host (network namespace), not only sockd's sockets (TcpExt ListenOverflows).",
		nil, nil)
	descListenDrops = prometheus.NewDesc("sockd_host_tcp_listen_drops_total",
		"Connections the kernel dropped at a listening socket for any reason, overflows included, for the whole host (network namespace) (TcpExt ListenDrops).",
		nil, nil)
)

// netstatCollector reads the listen-queue counters at scrape time.
type netstatCollector struct{ path string }

func (c *netstatCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descListenOverflows
	ch <- descListenDrops
}

func (c *netstatCollector) Collect(ch chan<- prometheus.Metric) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return // no procfs (a container without it): nothing to say
	}
	ext, err := parseNetstat(b, "TcpExt")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descListenDrops, err)
		return
	}
	for _, x := range []struct {
		d    *prometheus.Desc
		name string
	}{{descListenOverflows, "ListenOverflows"}, {descListenDrops, "ListenDrops"}} {
		if v, ok := ext[x.name]; ok {
			ch <- prometheus.MustNewConstMetric(x.d, prometheus.CounterValue, float64(v), nil...)
		}
	}
}

// parseNetstat returns the counters of one section of /proc/net/netstat
// (or /proc/net/snmp): a line of names and a line of values, each
// starting with "Section:".
func parseNetstat(b []byte, section string) (map[string]uint64, error) {
	prefix := section + ":"
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		vals := f[1:]
		if len(vals) != len(names) {
			return nil, fmt.Errorf("parse netstat %s: %d names, %d values", section, len(names), len(vals))
		}
		out := make(map[string]uint64, len(names))
		for i, n := range names {
			v, err := strconv.ParseUint(vals[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse netstat %s %s: %w", section, n, err)
			}
			out[n] = v
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read netstat: %w", err)
	}
	return nil, fmt.Errorf("parse netstat: no %s values", section)
}
