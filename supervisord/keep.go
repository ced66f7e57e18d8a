package supervisord

// sockd's fds kept outside it, and given back when it starts again: the
// listening sockets (so the connections queued while sockd is away are
// served, an idle unit's too) and the read ends of the children's output
// pipes (so a child never dies of SIGPIPE or blocks on a full pipe while
// sockd is away). The keepers are the fd holder (internal/fdholder) and,
// under systemd, its fd store (internal/fdstore); cmd/sockd makes them.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FDKeeper keeps copies of sockd's fds, by name, outside sockd.
type FDKeeper interface {
	Put(name string, f *os.File) error
	Remove(name string) error
}

// asyncKeeper is an FDKeeper that can take or drop a copy without
// waiting for its answer (the fd holder's PutAsync, RemoveAsync); Flush
// returns the refusals.
type asyncKeeper interface {
	PutAsync(name string, f *os.File) error
	RemoveAsync(name string) error
	Flush() error
}

// Held are the fds (and buffered output) a keeper gave back at start, by
// name: "listen/SOCKET/N" (Listen*= line N of socket unit SOCKET) and
// "out/UNIT/PID/STREAM" (the output pipe of process PID of UNIT).
type Held struct {
	Files  map[string]*os.File
	Output map[string][]byte
}

// notifyName names sockd's NOTIFY_SOCKET in the keepers.
const notifyName = "sockd/notify"

// listenName names line i of socket unit sock.
func listenName(sock string, i int) string {
	return "listen/" + keepEscape(sock) + "/" + strconv.Itoa(i)
}

// outputName names the output pipe of stream of process pid of unit.
func outputName(unit string, pid int, stream string) string {
	return "out/" + keepEscape(unit) + "/" + strconv.Itoa(pid) + "/" + stream
}

// keepEscape makes a unit name fit a kept fd's name, in which ':' (which
// a unit name may hold) is not allowed: '%' and ':' become %25 and %3A.
func keepEscape(name string) string {
	if !strings.ContainsAny(name, "%:") {
		return name
	}
	return keepEscaper.Replace(name)
}

var keepEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// keepers is the Daemon's set of FDKeepers and what they gave back.
type keepers struct {
	list []FDKeeper
	log  func(err error)

	mu     sync.Mutex
	held   map[string]*os.File
	output map[string][]byte
	// gave lists, by name, the keepers that gave that fd back at start
	// and so still hold it (putReused skips them).
	gave map[string][]FDKeeper
}

func newKeepers(list []FDKeeper, held *Held, log func(error)) *keepers {
	k := &keepers{list: list, log: log, held: map[string]*os.File{}, output: map[string][]byte{}}
	if held != nil {
		for n, f := range held.Files {
			k.held[n] = f
		}
		for n, b := range held.Output {
			k.output[n] = b
		}
	}
	return k
}

// put gives each keeper a copy of f under name. A keeper that fails is
// logged: sockd serves on, only without that copy.
func (k *keepers) put(name string, f *os.File) {
	if k == nil {
		return
	}
	for _, kp := range k.list {
		if err := putTo(kp, name, f); err != nil {
			k.log(fmt.Errorf("keep %s: %w", name, err))
		}
	}
}

// putTo gives kp a copy of f, without waiting for its answer where kp
// can (its refusals come back from flush).
func putTo(kp FDKeeper, name string, f *os.File) error {
	if ak, ok := kp.(asyncKeeper); ok {
		return ak.PutAsync(name, f)
	}
	return kp.Put(name, f)
}

// flush waits for the keepers' answers to the copies put without
// waiting, and logs their refusals.
func (k *keepers) flush() {
	if k == nil {
		return
	}
	for _, kp := range k.list {
		if ak, ok := kp.(asyncKeeper); ok {
			if err := ak.Flush(); err != nil {
				k.log(fmt.Errorf("keep: %w", err))
			}
		}
	}
}

// putReused is put for a socket taken back from the keepers: those
// that gave it back hold that very socket under name already (a re-exec
// or recovery with 1,000 units would otherwise send 1,000 copies again).
func (k *keepers) putReused(name string, f *os.File) {
	if k == nil {
		return
	}
	k.mu.Lock()
	had := k.gave[name]
	delete(k.gave, name)
	k.mu.Unlock()
	for _, kp := range k.list {
		if slices.Contains(had, kp) {
			continue
		}
		if err := putTo(kp, name, f); err != nil {
			k.log(fmt.Errorf("keep %s: %w", name, err))
		}
	}
}

func (k *keepers) remove(names ...string) {
	if k == nil {
		return
	}
	for _, kp := range k.list {
		rm := kp.Remove
		if ak, ok := kp.(asyncKeeper); ok {
			rm = ak.RemoveAsync // 10,000 units stopping are not 10,000 round trips
		}
		for _, n := range names {
			if err := rm(n); err != nil {
				k.log(fmt.Errorf("forget %s: %w", n, err))
			}
		}
	}
}

// take returns the held file of name (nil if none), and its buffered
// output; both are the caller's from then on.
func (k *keepers) take(name string) (*os.File, []byte) {
	if k == nil {
		return nil, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	f, out := k.held[name], k.output[name]
	delete(k.held, name)
	delete(k.output, name)
	return f, out
}

// takeSocket returns the held files of socket unit sock's lines, one per
// line (nil where none is held).
func (k *keepers) takeSocket(sock string, lines int) []*os.File {
	fs := make([]*os.File, lines)
	for i := range fs {
		if k == nil {
			break
		}
		fs[i], _ = k.take(listenName(sock, i))
	}
	return fs
}

// leftover closes what no unit took (sockets of units that are gone,
// pipes of processes that are not adopted) and has the keepers forget
// them; it returns their names.
func (k *keepers) leftover() []string {
	k.mu.Lock()
	var names []string
	for n, f := range k.held {
		f.Close()
		names = append(names, n)
	}
	for n := range k.output {
		if _, ok := k.held[n]; !ok {
			names = append(names, n)
		}
	}
	k.held, k.output = map[string]*os.File{}, map[string][]byte{}
	k.mu.Unlock()
	k.remove(names...)
	return names
}

// outputLines splits buffered output into lines, as a child's output is
// split: the last line without a newline too.
func outputLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// namedPipe is an output pipe's read end, by stream.
type namedPipe struct {
	stream string
	f      *os.File
}

// mergeHeld joins what two keepers gave back; a's file wins a name both
// hold (b's copy is closed).
func mergeHeld(a, b *Held) *Held {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	m := &Held{Files: map[string]*os.File{}, Output: map[string][]byte{}}
	for _, h := range []*Held{a, b} {
		for n, f := range h.Files {
			if _, dup := m.Files[n]; dup {
				f.Close()
				continue
			}
			m.Files[n] = f
		}
		for n, o := range h.Output {
			if _, dup := m.Output[n]; !dup {
				m.Output[n] = o
			}
		}
	}
	return m
}
