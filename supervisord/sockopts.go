package supervisord

import (
	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
)

// warnSocketOptions logs the options the kernel refused on ls that, as
// in systemd, leave the socket open without them (Mark=, Priority=,
// IPTOS=, IPTTL=, TCPCongestion=, DeferAcceptSec=, PipeSize=): see
// activation.Listener.Warnings. Call it after Open, Reuse or Update.
func warnSocketOptions(log zerolog.Logger, unit string, ls ...*activation.Listener) {
	for _, l := range ls {
		for _, err := range l.Warnings() {
			log.Warn().Err(err).Str("unit", unit).Str("listen", l.Addr()).
				Msg("socket option not applied; the socket serves without it (as systemd does)")
		}
	}
}
