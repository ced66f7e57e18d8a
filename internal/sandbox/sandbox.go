// Package sandbox applies the sandboxing options of systemd.exec(5) to a
// process that is about to exec a service's program: a mount namespace
// (PrivateTmp=, ProtectSystem=, ProtectHome=, ReadOnlyPaths= and kin,
// TemporaryFileSystem=, PrivateDevices=, ProtectKernelTunables=,
// ProtectKernelModules=, ProtectControlGroups=), capabilities
// (CapabilityBoundingSet=, AmbientCapabilities=, SecureBits=),
// NoNewPrivileges= and seccomp filters (RestrictAddressFamilies=,
// MemoryDenyWriteExecute=).
//
// units parses the options into Options; supervisord adds what it
// prepares for them (Setup: the PrivateTmp= directories, the writable
// RuntimeDirectory= and kin, a staging directory); children hands the
// Setup to its exec helper, which calls Apply on the one thread that then
// execs the program. PrivateUsers= is the exception: a user namespace
// must be made by a single-threaded process, so children asks for it when
// it forks the helper (CloneFlags, UIDMappings).
package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Options are a service's sandboxing options, as its unit file says
// them. The zero value asks for nothing.
type Options struct {
	NoNewPrivileges bool `json:",omitempty"`
	// CapabilityBoundingSet is nil to leave the bounding set as it is,
	// else the capabilities kept in it.
	CapabilityBoundingSet *CapSet    `json:",omitempty"`
	AmbientCapabilities   CapSet     `json:",omitempty"`
	SecureBits            SecureBits `json:",omitempty"`

	PrivateUsers bool `json:",omitempty"`

	PrivateTmp            bool          `json:",omitempty"`
	ProtectSystem         ProtectSystem `json:",omitempty"`
	ProtectHome           ProtectHome   `json:",omitempty"`
	ReadWritePaths        []Path        `json:",omitempty"`
	ReadOnlyPaths         []Path        `json:",omitempty"`
	InaccessiblePaths     []Path        `json:",omitempty"`
	TemporaryFileSystem   []TmpFS       `json:",omitempty"`
	PrivateDevices        bool          `json:",omitempty"`
	ProtectKernelTunables bool          `json:",omitempty"`
	ProtectKernelModules  bool          `json:",omitempty"`
	ProtectControlGroups  bool          `json:",omitempty"`

	// RestrictAddressFamilies is nil to allow every family.
	RestrictAddressFamilies *AddressFamilies `json:",omitempty"`
	MemoryDenyWriteExecute  bool             `json:",omitempty"`
}

// ProtectSystem is ProtectSystem=: "" (no), "yes", "full" or "strict".
type ProtectSystem string

// ProtectHome is ProtectHome=: "" (no), "yes", "read-only" or "tmpfs".
type ProtectHome string

// Path is one entry of ReadWritePaths=, ReadOnlyPaths= or
// InaccessiblePaths=: an absolute path, and whether it was given with the
// "-" prefix (a missing path is then skipped instead of failing the
// start).
type Path struct {
	Path     string
	Optional bool `json:",omitempty"`
}

// TmpFS is one entry of TemporaryFileSystem=: a path and its mount
// options ("" for systemd's default, mode=0755).
type TmpFS struct {
	Path    string
	Options string `json:",omitempty"`
}

// AddressFamilies is RestrictAddressFamilies=: the families a socket may
// be made in (Allow), or, with Deny, the ones it may not.
type AddressFamilies struct {
	Deny     bool  `json:",omitempty"`
	Families []int `json:",omitempty"` // AF_* numbers
}

// Setup is what the exec helper applies: the unit's Options and what
// sockd prepared for them.
type Setup struct {
	Options
	// TmpDir and VarTmpDir are the host directories mounted on /tmp and
	// /var/tmp for PrivateTmp=, shared by every process of the unit.
	TmpDir    string `json:",omitempty"`
	VarTmpDir string `json:",omitempty"`
	// Writable are paths that stay writable under ProtectSystem=strict
	// and the like: the unit's RuntimeDirectory=, StateDirectory=,
	// CacheDirectory= and LogsDirectory= (systemd does the same).
	Writable []string `json:",omitempty"`
	// Staging is an existing empty directory of root's that the helper
	// may mount a tmpfs on, in its own namespace only, to build what it
	// mounts elsewhere (a private /dev, inaccessible nodes).
	Staging string `json:",omitempty"`
	// Dir is the working directory, entered after the mounts are made
	// (so that it is the namespace's view of it). "" leaves it.
	Dir string `json:",omitempty"`
}

// MountNamespace reports whether o needs a mount namespace.
func (o *Options) MountNamespace() bool {
	return o.PrivateTmp || o.ProtectSystem != "" || o.ProtectHome != "" ||
		len(o.ReadWritePaths) > 0 || len(o.ReadOnlyPaths) > 0 || len(o.InaccessiblePaths) > 0 ||
		len(o.TemporaryFileSystem) > 0 || o.PrivateDevices || o.ProtectKernelTunables ||
		o.ProtectKernelModules || o.ProtectControlGroups
}

// Empty reports whether o asks for nothing.
func (o *Options) Empty() bool {
	return !o.MountNamespace() && !o.NoNewPrivileges && o.CapabilityBoundingSet == nil &&
		o.AmbientCapabilities == 0 && o.SecureBits == 0 && !o.PrivateUsers &&
		o.RestrictAddressFamilies == nil && !o.MemoryDenyWriteExecute
}

// Encode turns s into one word without commas (base64 of JSON), for the
// exec helper's command line.
func (s *Setup) Encode() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic("sandbox: " + err.Error()) // plain data: cannot fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reverses Encode.
func Decode(word string) (*Setup, error) {
	b, err := base64.RawURLEncoding.DecodeString(word)
	if err != nil {
		return nil, fmt.Errorf("sandbox setup: %w", err)
	}
	var s Setup
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sandbox setup: %w", err)
	}
	return &s, nil
}
