package units

import (
	"math"
	"os"
	"syscall"
	"time"

	"github.com/sockd/sockd/internal/sandbox"
)

// Infinity is the time span systemd spells "infinity" (and "0" for
// TimeoutStartSec=/TimeoutStopSec=): no limit.
const Infinity = time.Duration(math.MaxInt64)

// Set is a loaded, validated unit directory. Units with errors are left
// out; their problems are in the Diagnostics returned beside the Set.
type Set struct {
	// Dir is the directory the set was loaded from ("" for LoadFiles).
	Dir string
	// Services holds every valid service unit by full name ("app.service",
	// templates as "app@.service").
	Services map[string]*Service
	// Sockets holds every valid socket unit by full name ("app.socket",
	// instances of a template as "app@x.socket"; templates themselves
	// are not sockets to open and are left out).
	Sockets map[string]*Socket
}

// ListenKind is the kind of a Listen*= line.
type ListenKind int

// The Listen*= kinds of systemd.socket(5).
const (
	Stream           ListenKind = iota // ListenStream=
	Datagram                           // ListenDatagram=
	SequentialPacket                   // ListenSequentialPacket=
	FIFO                               // ListenFIFO=
)

// Listen is one Listen*= line of a socket unit.
type Listen struct {
	Kind ListenKind
	// Network is the Go network name: "tcp", "tcp6" (BindIPv6Only=ipv6-only),
	// "udp", "udp6", "unix", "unixgram", "unixpacket", or "fifo".
	Network string
	// Address is "host:port" for IP ("[::]:8080" for a bare port, which
	// binds dual-stack as systemd does), a filesystem path, or "@name" for
	// an abstract Unix socket.
	Address string
	// Line is the line of the Listen*= option in File.
	Line int
	// File is the unit file or drop-in holding the option.
	File string
}

// Socket is a parsed socket unit (systemd.socket(5)).
type Socket struct {
	Name string // "app.socket"
	File string // path of the unit file; drop-ins are in DropIns
	// DropIns lists the drop-in files merged into this unit, in order.
	DropIns []string
	// Description is [Unit] Description=.
	Description string

	// Instance is the instance of a socket made from a template
	// ("x" for app@x.socket), "" otherwise. The Set holds no socket
	// templates, only their instances.
	Instance string

	Listens []Listen
	// Service is the unit it activates: "app.service" by default
	// ("app@x.service" for the instance app@x.socket), the template
	// "app@.service" when Accept is set (for app@x.socket too), or what
	// Service= names.
	Service string
	Accept  bool

	FileDescriptorName string // default: Name without ".socket"
	Backlog            int    // default 4096 (SOMAXCONN)
	BindIPv6Only       string // "default", "both", "ipv6-only"
	ReusePort          bool
	NoDelay            bool
	KeepAlive          bool
	KeepAliveTime      time.Duration // 0: kernel default
	KeepAliveInterval  time.Duration // 0: kernel default
	KeepAliveProbes    int           // 0: kernel default
	FreeBind           bool
	Transparent        bool
	Broadcast          bool
	PassCredentials    bool
	ReceiveBuffer      int // bytes; 0: kernel default
	SendBuffer         int // bytes; 0: kernel default
	BindToDevice       string
	SocketMode         os.FileMode // default 0666
	DirectoryMode      os.FileMode // default 0755
	SocketUser         string
	SocketGroup        string
	RemoveOnStop       bool
	Symlinks           []string
	NonBlocking        bool

	// The options below are set with setsockopt(2) (PipeSize with
	// fcntl(2)) as systemd sets them: a failure is a warning, not a
	// failed socket. The zero value is "not set".
	Mark          int           // SO_MARK, 0 to 2³¹-1; 0: not set (the kernel's default is 0 too)
	Priority      int           // SO_PRIORITY, 0 to 2³¹-1; 0: not set
	IPTOS         int           // IP_TOS, 0 to 255; 0: not set
	IPTTL         int           // IP_TTL / IPV6_UNICAST_HOPS, 1 to 255; 0: the kernel's default
	TCPCongestion string        // TCP_CONGESTION ("cubic", "reno", …); "": the kernel's default
	DeferAccept   time.Duration // TCP_DEFER_ACCEPT, set in whole seconds (rounded up); 0: off
	PipeSize      int           // F_SETPIPE_SZ of ListenFIFO=, bytes; 0: the kernel's default

	MaxConnections          int // default 64
	MaxConnectionsPerSource int // default 0: no limit
	TriggerLimitInterval    time.Duration
	TriggerLimitBurst       int

	// linkOpt is the option that chose Service (Accept= or Service=), for
	// diagnostics when that service is missing.
	linkOpt rawOption
}

// ServiceType is Type= of a service: how a started service becomes ready
// (systemd.service(5)). The parser always sets it: TypeSimple by
// default, TypeOneshot for a service with neither Type= nor ExecStart=.
// The zero value "" is treated as TypeSimple.
type ServiceType string

// The types sockd runs. Type=idle loads as TypeSimple and
// Type=notify-reload as TypeNotify, each with a warning; Type=forking and
// Type=dbus are errors.
const (
	TypeSimple  ServiceType = "simple"  // ready once started (the default)
	TypeExec    ServiceType = "exec"    // run as TypeSimple by sockd
	TypeNotify  ServiceType = "notify"  // ready when the service sends READY=1
	TypeOneshot ServiceType = "oneshot" // ExecStart= lines run in sequence; done when they exit
	TypeForking ServiceType = "forking" // ExecStart= forks the daemon and exits; PIDFile= names the main process
)

// RestartPolicy is Restart=: after which exits a service is started
// again (systemd.service(5)). The parser sets RestartNo by default; the
// zero value "" is treated as RestartNo.
type RestartPolicy string

// The Restart= values of systemd.service(5).
const (
	RestartNo         RestartPolicy = "no"
	RestartOnSuccess  RestartPolicy = "on-success"
	RestartOnFailure  RestartPolicy = "on-failure"
	RestartOnAbnormal RestartPolicy = "on-abnormal"
	RestartOnWatchdog RestartPolicy = "on-watchdog"
	RestartOnAbort    RestartPolicy = "on-abort"
	RestartAlways     RestartPolicy = "always"
)

// KillMode is KillMode=: which processes KillSignal= and the final
// SIGKILL go to (systemd.kill(5)). sockd's control group is the main
// process's process group. The parser sets KillControlGroup by default;
// the zero value "" is treated as KillControlGroup.
type KillMode string

// The KillMode= values of systemd.kill(5); docs/units.md says what each
// does under sockd.
const (
	KillControlGroup KillMode = "control-group" // both to the process group
	KillMixed        KillMode = "mixed"         // KillSignal= to the main process, SIGKILL to the group
	KillProcess      KillMode = "process"       // both to the main process
	KillNone         KillMode = "none"          // no KillSignal=; SIGKILL to the main process after TimeoutStopSec=
)

// NotifyAccess is NotifyAccess=: whose sd_notify messages a service's
// state follows (systemd.service(5)). The parser sets NotifyMain for
// Type=notify and NotifyNone otherwise; the zero value "" is treated as
// NotifyNone.
type NotifyAccess string

// The NotifyAccess= values of systemd.service(5).
const (
	NotifyNone NotifyAccess = "none" // no process
	NotifyMain NotifyAccess = "main" // the main process
	NotifyExec NotifyAccess = "exec" // as NotifyAll under sockd
	NotifyAll  NotifyAccess = "all"  // any process in the process group of one of the unit's processes
)

// Command is one Exec*= line after systemd quoting and prefixes.
type Command struct {
	// Path is the program (Argv[0] unless the "@" prefix set another argv0).
	Path string
	// Argv is the argument vector the program sees, Argv[0] included.
	Argv []string
	// IgnoreFailure is the "-" prefix: a failing exit code is not a failure.
	IgnoreFailure bool
	// Line is the line of the option in its file.
	Line int
	// File is the unit file or drop-in holding the option.
	File string
	// NoEnvExpand is the ":" prefix: $VAR and ${VAR} in Argv are not
	// replaced (see Expand).
	NoEnvExpand bool
	// FullPrivileges is the "+" prefix: the command runs as root, outside
	// the service's sandbox (User=, Group=, the Sandbox options do not
	// apply to it), as in systemd.
	FullPrivileges bool
}

// Output is where StandardOutput=/StandardError= send a stream.
type Output struct {
	// Kind is "journal" (sockd's log, the default), "inherit", "null",
	// "socket", "fd", "file", "append" or "truncate".
	Kind   string
	Path   string // for file:, append:, truncate:
	FDName string // for fd: a FileDescriptorName= of the service's sockets
}

// Input is where StandardInput= takes a process's standard input from.
type Input struct {
	// Kind is "null" (also the zero value ""), "socket", "data", "file"
	// or "fd".
	Kind   string
	Path   string // for file:
	FDName string // for fd: a FileDescriptorName= of the service's sockets
}

// EnvironmentFile is one EnvironmentFile= line.
type EnvironmentFile struct {
	Path     string
	Optional bool // "-" prefix: a missing file is not an error
}

// Rlimit is one Limit*= option.
type Rlimit struct {
	Resource int    // unix.RLIMIT_*
	Soft     uint64 // unix.RLIM_INFINITY for infinity
	Hard     uint64
}

// Service is a parsed service unit (systemd.service(5)).
type Service struct {
	Name     string // "app.service", a template "app@.service", an instance "app@x.service"
	File     string
	DropIns  []string
	Template bool   // Name is "prefix@.service"
	Instance string // the instance of an instantiated template, "" otherwise
	// Description is [Unit] Description=.
	Description string

	Type          ServiceType // default TypeSimple; TypeOneshot without Type= and ExecStart=
	ExecStart     []Command
	ExecStartPre  []Command
	ExecStartPost []Command
	ExecStop      []Command
	ExecReload    []Command

	Restart            RestartPolicy // default RestartNo
	RestartSec         time.Duration // default 100ms
	StartLimitInterval time.Duration // default 10s
	StartLimitBurst    int           // default 5
	TimeoutStartSec    time.Duration // default 90s; Infinity for none
	TimeoutStopSec     time.Duration // default 90s in systemd; sockd's default is 10s (documented)
	KillSignal         syscall.Signal
	KillMode           KillMode // default KillControlGroup
	SendSIGKILL        bool     // default true
	SuccessExitStatus  []int
	SuccessSignals     []syscall.Signal

	// Resources are the systemd.resource-control(5) options, in the
	// order set, one per option (resources.go).
	Resources []Resource
	// RestartSteps and RestartMaxDelay make the pause before an
	// automatic restart grow from RestartSec to RestartMaxDelay in
	// RestartSteps steps; 0 for either (RestartMaxDelaySec=infinity,
	// the default) keeps it at RestartSec.
	RestartSteps    int
	RestartMaxDelay time.Duration

	Environment      []string // "KEY=value", in order
	EnvironmentFiles []EnvironmentFile
	UnsetEnvironment []string
	PassEnvironment  []string

	// WorkingDirectory is an absolute path, "~" for the home of User=,
	// or "" for the default (sockd's own working directory).
	WorkingDirectory string
	// WorkingDirectoryOptional is the "-" prefix: a missing directory is
	// not an error.
	WorkingDirectoryOptional bool
	User                     string
	Group                    string
	SupplementaryGroups      []string
	UMask                    os.FileMode // default 0022
	Nice                     int
	HasNice                  bool
	Limits                   []Rlimit
	StandardInput            Input
	StandardInputData        []byte // StandardInputText= lines (each with a newline) and StandardInputData=, in order
	StandardOutput           Output
	StandardError            Output
	// DynamicUser is DynamicUser=: the service runs as a user and group
	// allocated when it starts. The parser then sets User= (if unset,
	// to DynamicUserName) and Group= (if unset, to User=).
	DynamicUser bool
	// ExecDirs are RuntimeDirectory=, StateDirectory=, CacheDirectory=,
	// LogsDirectory=, ConfigurationDirectory= and their options.
	ExecDirs ExecDirs
	// Sandbox holds the sandboxing options of systemd.exec(5)
	// (units/sandbox.go): PrivateTmp=, ProtectSystem=, capabilities…
	Sandbox sandbox.Options

	Sockets      []string     // socket units whose fds this service receives
	NotifyAccess NotifyAccess // default NotifyMain for TypeNotify, NotifyNone otherwise
	WatchdogSec  time.Duration

	// Instances is the sockd extension X-Instances=: how many processes
	// of this service run on the same sockets (default 1).
	Instances int
	// ReadyAfter is the sockd extension X-ReadyAfterSec=: for services
	// that do not notify, the time a new process must stay alive before
	// a restart counts it ready. 0 means ready at once (systemd's
	// Type=simple behaviour).
	ReadyAfter time.Duration
	// IdleTimeout is the sockd extension X-IdleTimeoutSec=: a running
	// unit whose sockets have had no connection for that long is
	// stopped, and waits for the next connection (0: never).
	IdleTimeout time.Duration
	// LogBufferBytes is the sockd extension X-LogBufferBytes=: the bytes
	// of output lines sockd keeps for `sockctl logs` (0: the default,
	// 1 MiB).
	LogBufferBytes int

	// Options of the service's life (units/lifecycle.go).

	// PIDFile is PIDFile=: for Type=forking, the file that names the main
	// process once the starting process has exited ("" for none).
	PIDFile string
	// GuessMainPID is GuessMainPID= (default true): without PIDFile=, the
	// main process of a Type=forking service is the one process left.
	GuessMainPID bool
	// RemainAfterExit is RemainAfterExit=: the unit stays active after
	// its processes have exited (a oneshot that sets something up).
	RemainAfterExit bool
	// ExecCondition is ExecCondition=: run before ExecStartPre=; an exit
	// of 1 to 254 skips the start without failing the unit, 255 or a
	// signal fails it.
	ExecCondition []Command
	// ExecStopPost is ExecStopPost=: run after the processes have
	// exited, whether stopped or not.
	ExecStopPost []Command
	// RestartPreventExitStatus and RestartForceExitStatus are the
	// options of those names: exits that never, or always, restart.
	RestartPreventExitStatus ExitStatusSet
	RestartForceExitStatus   ExitStatusSet
	// RuntimeMax is RuntimeMaxSec=: the service is stopped (result
	// timeout) once it has run that long; 0 for no limit.
	RuntimeMax time.Duration
	// ReloadSignal is ReloadSignal= (default SIGHUP): what reload-app
	// sends when there is no ExecReload=.
	ReloadSignal syscall.Signal
	// WatchdogSignal is WatchdogSignal= (default SIGABRT): what a process
	// that missed its watchdog gets, without ExecStop=.
	WatchdogSignal syscall.Signal
	// TimeoutAbort is TimeoutAbortSec=: how long such a process has
	// before SIGKILL; 0 means TimeoutStopSec=, Infinity none.
	TimeoutAbort time.Duration
	// Conditions are the [Unit] Condition*=/Assert*= lines sockd checks
	// before each start (units/conditions.go).
	Conditions []Condition

	// raw holds a template's options so that Instantiate can build an
	// instance from them.
	raw []rawOption
	// socketsOpt maps each Sockets= entry to its option, for diagnostics.
	socketsOpt map[string]rawOption
}
