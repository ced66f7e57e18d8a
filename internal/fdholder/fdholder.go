// Package fdholder keeps copies of sockd's file descriptors in a small
// process of its own, so that they outlive sockd: after sockd is killed
// or crashes, a new sockd takes them back and nothing was closed in
// between (s6-fdholderd's model). sockd holds there every listening
// socket (so an idle unit's queue survives) and the read end of every
// child's output pipe (so a child never dies of SIGPIPE or blocks on a
// full pipe while sockd is away: the holder drains those into a bounded
// buffer while no sockd is connected, and hands the buffered bytes back).
//
// The holder is the sockd binary started as "sockd-fdholder
// __sockd-fdholder DIR" (MaybeRunHolder), in a session of its own; it
// listens on DIR/fdholder.sock (mode 0600) and serves one sockd at a
// time. It uses no CPU while idle. It exits when sockd tells it to
// (Client.Shutdown, at a clean stop of sockd).
package fdholder

import (
	"errors"
	"os"
)

// SocketName is the holder's socket in its directory.
const SocketName = "fdholder.sock"

// Output names start with OutputPrefix: the holder drains those fds
// (pipe read ends) while no sockd is connected.
const OutputPrefix = "out/"

// ErrNoHolder: no holder answers in the directory.
var ErrNoHolder = errors.New("fdholder: no holder")

// Client is sockd's connection to its holder. Its methods may be called
// from several goroutines.
type Client struct{}

// Connect connects to the holder in dir, starting one (the running
// binary, /proc/self/exe, as the holder) if none answers there.
func Connect(dir string) (*Client, error) { return nil, errors.New("fdholder: not implemented") }

// Put gives the holder a copy of f under name (at most 255 bytes of
// printable ASCII but ':'), replacing the fd held under that name.
func (c *Client) Put(name string, f *os.File) error { return errors.New("not implemented") }

// Remove closes the holder's copy of name; a name it does not hold is
// not an error.
func (c *Client) Remove(name string) error { return errors.New("not implemented") }

// Held is what a holder gives back.
type Held struct {
	Files map[string]*os.File
	// Output holds, by output name, what the holder read from that pipe
	// while no sockd was connected (at most the holder's bound per pipe;
	// the oldest bytes go first), and Dropped how many bytes it dropped.
	Output  map[string][]byte
	Dropped map[string]int64
}

// Take returns copies of every fd the holder holds (it keeps its own),
// and the output it buffered, which it then forgets.
func (c *Client) Take() (*Held, error) { return nil, errors.New("not implemented") }

// Close closes sockd's connection; the holder keeps what it holds and,
// from then on, drains the output pipes until a sockd connects again.
func (c *Client) Close() error { return nil }

// Shutdown tells the holder to close everything and exit, and waits
// until it has.
func (c *Client) Shutdown() error { return errors.New("not implemented") }

// MaybeRunHolder runs the holder when the binary was started as one and
// then never returns; otherwise it returns at once. Call it first thing
// in main (next to children.MaybeRunHelper).
func MaybeRunHolder() {}
