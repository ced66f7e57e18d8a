package fdholder

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The protocol: sockd and the holder talk over one SOCK_SEQPACKET
// connection, which keeps message boundaries and carries fds
// (SCM_RIGHTS). Every message starts with its kind. sockd sends one
// request and reads replies until a final one (K or E); the holder reads
// nothing else meanwhile.
//
//	request   kind  payload                       fds
//	Put       'P'   name                          the fd
//	Remove    'R'   name
//	Take      'T'   room (uint32): fds sockd can take
//	Shutdown  'S'
//
//	reply     kind  payload                       fds
//	done      'K'   (greeting: nothing)           greeting: the holder's pidfd, if any
//	busy      'B'   text (greeting only)
//	failed    'E'   text
//	files     'F'   {len (uint8), name}…          one per name, in order
//	output    'O'   len (uint8), name, dropped (uint64), bytes
//
// The holder greets each connection with K, or with B or E and closes
// it. Take's reply is F messages, then O messages (one name's bytes may
// take several, to be appended), then K.
const (
	opPut      = 'P'
	opRemove   = 'R'
	opTake     = 'T'
	opShutdown = 'S'

	replyOK     = 'K'
	replyBusy   = 'B'
	replyErr    = 'E'
	replyFiles  = 'F'
	replyOutput = 'O'
)

const (
	// maxBatch is the most fds in one message: the kernel refuses more
	// than SCM_MAX_FD (253) in one SCM_RIGHTS message.
	maxBatch = 250
	// maxPayload bounds what the holder puts in one message, well under
	// the default socket send buffer (net.core.wmem_default, 208 KiB),
	// which bounds a SOCK_SEQPACKET message.
	maxPayload = 32 << 10
	// maxMsg is the receive buffer: room for any message either side
	// sends.
	maxMsg = maxPayload + 512
	// maxName is the longest name, so that its length fits a byte.
	maxName = 255
)

// MaxOutput is how many bytes of one output pipe the holder keeps while
// no sockd is connected: the most recent ones.
const MaxOutput = 64 << 10

// checkName returns an error unless name is 1 to 255 bytes of printable
// ASCII other than ':'.
func checkName(name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("name %q: must be 1 to %d bytes", name, maxName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == ':' {
			return fmt.Errorf("name %q: only printable ASCII other than ':'", name)
		}
	}
	return nil
}

var errProtocol = errors.New("protocol error")

// appendName appends name with its length byte.
func appendName(b []byte, name string) []byte {
	return append(append(b, byte(len(name))), name...)
}

// cutName reads a name written by appendName off the front of b.
func cutName(b []byte) (name string, rest []byte, err error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, errProtocol
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}

// outputHeader is an output message's header: kind, name, dropped.
func outputHeader(name string, dropped int64) []byte {
	b := appendName([]byte{replyOutput}, name)
	return binary.LittleEndian.AppendUint64(b, uint64(dropped))
}

// parseOutput splits an output message's payload (after its kind).
func parseOutput(b []byte) (name string, dropped int64, data []byte, err error) {
	name, b, err = cutName(b)
	if err != nil || len(b) < 8 {
		return "", 0, nil, errProtocol
	}
	return name, int64(binary.LittleEndian.Uint64(b)), b[8:], nil
}
