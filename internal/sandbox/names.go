package sandbox

import (
	"fmt"
	"strings"
)

// CapSet is a set of capabilities: bit n is capability n (CAP_CHOWN is
// bit 0).
type CapSet uint64

// Has reports whether c holds capability n.
func (c CapSet) Has(n int) bool { return n >= 0 && n < 64 && c&(1<<n) != 0 }

// capNames are the capabilities by number, as capabilities(7) and
// systemd spell them (Linux 6.x: 0 to 40).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCaps holds every capability this table knows.
const AllCaps = CapSet(1)<<len(capNames) - 1

// ParseCapability reads a capability name ("CAP_NET_ADMIN", any case) or
// number.
func ParseCapability(s string) (int, error) {
	u := strings.ToUpper(s)
	for i, n := range capNames {
		if u == n {
			return i, nil
		}
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s && n >= 0 && n < 64 {
		return n, nil
	}
	return 0, fmt.Errorf("unknown capability %q", s)
}

// CapabilityName is the name of capability n, or its number.
func CapabilityName(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return fmt.Sprint(n)
}

// String lists the names, space-separated.
func (c CapSet) String() string {
	var names []string
	for n := 0; n < 64; n++ {
		if c.Has(n) {
			names = append(names, CapabilityName(n))
		}
	}
	return strings.Join(names, " ")
}

// SecureBits are the SECBIT_* flags of capabilities(7) (prctl
// PR_SET_SECUREBITS).
type SecureBits uint32

// secureBitNames are SecureBits='s words and their bits.
var secureBitNames = []struct {
	name string
	bit  SecureBits
}{
	{"noroot", 1 << 0},
	{"noroot-locked", 1 << 1},
	{"no-setuid-fixup", 1 << 2},
	{"no-setuid-fixup-locked", 1 << 3},
	{"keep-caps", 1 << 4},
	{"keep-caps-locked", 1 << 5},
}

// SecBitKeepCaps is SECBIT_KEEP_CAPS.
const SecBitKeepCaps SecureBits = 1 << 4

// ParseSecureBit reads one word of SecureBits=.
func ParseSecureBit(s string) (SecureBits, error) {
	for _, b := range secureBitNames {
		if s == b.name {
			return b.bit, nil
		}
	}
	return 0, fmt.Errorf("unknown secure bit %q (want noroot, noroot-locked, no-setuid-fixup, no-setuid-fixup-locked, keep-caps or keep-caps-locked)", s)
}

// familyNames are the address families RestrictAddressFamilies= names,
// with their AF_* numbers (linux/socket.h).
var familyNames = map[string]int{
	"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_AX25": 3, "AF_IPX": 4,
	"AF_APPLETALK": 5, "AF_NETROM": 6, "AF_BRIDGE": 7, "AF_ATMPVC": 8,
	"AF_X25": 9, "AF_INET6": 10, "AF_ROSE": 11, "AF_DECnet": 12,
	"AF_NETBEUI": 13, "AF_SECURITY": 14, "AF_KEY": 15, "AF_NETLINK": 16,
	"AF_PACKET": 17, "AF_ASH": 18, "AF_ECONET": 19, "AF_ATMSVC": 20,
	"AF_RDS": 21, "AF_SNA": 22, "AF_IRDA": 23, "AF_PPPOX": 24,
	"AF_WANPIPE": 25, "AF_LLC": 26, "AF_IB": 27, "AF_MPLS": 28, "AF_CAN": 29,
	"AF_TIPC": 30, "AF_BLUETOOTH": 31, "AF_IUCV": 32, "AF_RXRPC": 33,
	"AF_ISDN": 34, "AF_PHONET": 35, "AF_IEEE802154": 36, "AF_CAIF": 37,
	"AF_ALG": 38, "AF_NFC": 39, "AF_VSOCK": 40, "AF_KCM": 41, "AF_QIPCRTR": 42,
	"AF_SMC": 43, "AF_XDP": 44, "AF_MCTP": 45,
}

// ParseAddressFamily reads one AF_* name of RestrictAddressFamilies=.
func ParseAddressFamily(s string) (int, error) {
	if n, ok := familyNames[s]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("unknown address family %q", s)
}
