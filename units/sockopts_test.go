package units

import (
	"reflect"
	"testing"
	"time"
)

// The values of Mark=, Priority=, IPTOS=, IPTTL=, TCPCongestion=,
// DeferAcceptSec= and PipeSize= as systemd spells them, and the empty
// value that resets each one (in a drop-in, say).
func TestSocketOptionValues(t *testing.T) {
	type opts struct {
		Mark, Priority, IPTOS, IPTTL int
		TCPCongestion                string
		DeferAccept                  time.Duration
		PipeSize                     int
	}
	for _, c := range []struct {
		lines string
		want  opts
	}{
		{"Mark=0\nPriority=0\n", opts{}},
		{"Mark=2147483647\nPriority=7\n", opts{Mark: 1<<31 - 1, Priority: 7}},
		{"IPTOS=low-delay\n", opts{IPTOS: 0x10}},
		{"IPTOS=throughput\n", opts{IPTOS: 0x08}},
		{"IPTOS=reliability\n", opts{IPTOS: 0x04}},
		{"IPTOS=low-cost\n", opts{IPTOS: 0x02}},
		{"IPTOS=184\n", opts{IPTOS: 184}},
		{"IPTOS=0xb8\n", opts{IPTOS: 0xb8}},
		{"IPTOS=255\n", opts{IPTOS: 255}},
		{"IPTTL=1\n", opts{IPTTL: 1}},
		{"IPTTL=255\n", opts{IPTTL: 255}},
		{"TCPCongestion=reno\n", opts{TCPCongestion: "reno"}},
		{"TCPCongestion=bbr\nTCPCongestion=\n", opts{}},
		{"DeferAcceptSec=5\n", opts{DeferAccept: 5 * time.Second}},
		{"DeferAcceptSec=500ms\n", opts{DeferAccept: 500 * time.Millisecond}},
		{"DeferAcceptSec=1min 30s\n", opts{DeferAccept: 90 * time.Second}},
		{"DeferAcceptSec=infinity\n", opts{DeferAccept: Infinity}},
		{"DeferAcceptSec=0\n", opts{}},
		{"PipeSize=64K\n", opts{PipeSize: 64 << 10}},
		{"PipeSize=1M\n", opts{PipeSize: 1 << 20}},
		{"PipeSize=4096\n", opts{PipeSize: 4096}},
		{"Mark=1\nPriority=2\nIPTOS=3\nIPTTL=4\nTCPCongestion=cubic\nDeferAcceptSec=5\nPipeSize=6\n" +
			"Mark=\nPriority=\nIPTOS=\nIPTTL=\nDeferAcceptSec=\nPipeSize=\n", opts{TCPCongestion: "cubic"}},
	} {
		set, diags := load(t, map[string]string{"app.service": okService,
			"app.socket": "[Socket]\nListenStream=80\nListenFIFO=/run/app.fifo\n" + c.lines})
		if len(diags) != 0 {
			t.Errorf("%q: diagnostics %q", c.lines, diags)
			continue
		}
		s := set.Sockets["app.socket"]
		got := opts{s.Mark, s.Priority, s.IPTOS, s.IPTTL, s.TCPCongestion, s.DeferAccept, s.PipeSize}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, want %+v", c.lines, got, c.want)
		}
	}
}
