package units

import "fmt"

// Limits of X-LogBufferBytes=: at least one line of some length, at most
// what sockd would hold for one unit without a second thought.
const (
	minLogBufferBytes = 4 << 10
	maxLogBufferBytes = 1 << 30
)

func init() {
	registerServiceOptions(map[string]serviceHandler{
		// X-LogBufferBytes= is sockd's own: the size of the unit's log
		// ring, with K, M or G suffixes in base 1024. Empty resets it to
		// the default.
		"X-LogBufferBytes": func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.s.LogBufferBytes = 0
				return nil
			}
			n, err := parseSize(o.Value)
			if err != nil || n < minLogBufferBytes || n > maxLogBufferBytes {
				return fmt.Errorf("invalid value %q (want a size from 4K to 1G)", o.Value)
			}
			b.s.LogBufferBytes = int(n)
			return nil
		},
	})
}
