package units

// The option names systemd's unit file parser knows, per section, as data.
// They were extracted from src/core/load-fragment-gperf.gperf.in at the
// systemd tag v257 (commit 70bae7648f2c18010187c9cf20093155eaa26029,
// "Finalize NEWS and meson.version for v257"), with the macros for the
// exec, kill and cgroup contexts expanded; that file is what
// systemd.unit(5), systemd.socket(5), systemd.service(5),
// systemd.exec(5), systemd.kill(5) and systemd.resource-control(5)
// document, plus the legacy names the parser still maps. sockd warns
// about a name it knows from here but does not implement, and treats
// any other name as unknown (an error). TestSystemdOptions holds the
// counts and the version.

// systemdOptionsVersion is the systemd release the lists come from.
const systemdOptionsVersion = "v257 (70bae7648f2c18010187c9cf20093155eaa26029)"

var (
	// systemdUnit are the [Unit] options.
	systemdUnit = words(`
		After AllowIsolate AssertACPower AssertArchitecture AssertCPUFeature AssertCPUPressure
		AssertCPUs AssertCapability AssertControlGroupController AssertCredential
		AssertDirectoryNotEmpty AssertEnvironment AssertFileIsExecutable AssertFileNotEmpty
		AssertFirstBoot AssertGroup AssertHost AssertIOPressure AssertKernelCommandLine
		AssertKernelVersion AssertMemory AssertMemoryPressure AssertNeedsUpdate AssertOSRelease
		AssertPathExists AssertPathExistsGlob AssertPathIsDirectory AssertPathIsEncrypted
		AssertPathIsMountPoint AssertPathIsReadWrite AssertPathIsSymbolicLink AssertSecurity
		AssertUser AssertVirtualization Before BindTo BindsTo CollectMode ConditionACPower
		ConditionArchitecture ConditionCPUFeature ConditionCPUPressure ConditionCPUs
		ConditionCapability ConditionControlGroupController ConditionCredential
		ConditionDirectoryNotEmpty ConditionEnvironment ConditionFileIsExecutable
		ConditionFileNotEmpty ConditionFirmware ConditionFirstBoot ConditionGroup ConditionHost
		ConditionIOPressure ConditionKernelCommandLine ConditionKernelVersion ConditionMemory
		ConditionMemoryPressure ConditionNeedsUpdate ConditionOSRelease ConditionPathExists
		ConditionPathExistsGlob ConditionPathIsDirectory ConditionPathIsEncrypted
		ConditionPathIsMountPoint ConditionPathIsReadWrite ConditionPathIsSymbolicLink
		ConditionSecurity ConditionUser ConditionVirtualization Conflicts DefaultDependencies
		Description Documentation FailureAction FailureActionExitStatus IgnoreOnIsolate
		IgnoreOnSnapshot JobRunningTimeoutSec JobTimeoutAction JobTimeoutRebootArgument
		JobTimeoutSec JoinsNamespaceOf OnFailure OnFailureIsolate OnFailureJobMode OnSuccess
		OnSuccessJobMode PartOf PropagateReloadFrom PropagateReloadTo PropagatesReloadTo
		PropagatesStopTo RebootArgument RefuseManualStart RefuseManualStop ReloadPropagatedFrom
		Requires RequiresMountsFor RequiresOverridable Requisite RequisiteOverridable SourcePath
		StartLimitAction StartLimitBurst StartLimitInterval StartLimitIntervalSec
		StopPropagatedFrom StopWhenUnneeded SuccessAction SuccessActionExitStatus
		SurviveFinalKillSignal Upholds Wants WantsMountsFor`)
	// systemdInstall are the [Install] options (systemd's unit loader
	// ignores them; systemctl enable reads them).
	systemdInstall = words(`
		Alias Also DefaultInstance RequiredBy UpheldBy WantedBy`)
	// systemdExec are the options of systemd.exec(5), systemd.kill(5) and
	// systemd.resource-control(5), valid in [Service] and [Socket] alike.
	systemdExec = words(`
		AllowedCPUs AllowedMemoryNodes AmbientCapabilities AppArmorProfile BPFProgram
		BindLogSockets BindPaths BindReadOnlyPaths BlockIOAccounting BlockIODeviceWeight
		BlockIOReadBandwidth BlockIOWeight BlockIOWriteBandwidth CPUAccounting CPUAffinity
		CPUQuota CPUQuotaPeriodSec CPUSchedulingPolicy CPUSchedulingPriority
		CPUSchedulingResetOnFork CPUShares CPUWeight CacheDirectory CacheDirectoryMode
		Capabilities CapabilityBoundingSet ConfigurationDirectory ConfigurationDirectoryMode
		CoredumpFilter CoredumpReceive DefaultMemoryLow DefaultMemoryMin DefaultStartupMemoryLow
		Delegate DelegateSubgroup DeviceAllow DevicePolicy DisableControllers DynamicUser
		Environment EnvironmentFile ExecPaths ExecSearchPath ExtensionDirectories
		ExtensionImagePolicy ExtensionImages FinalKillSignal Group IOAccounting
		IODeviceLatencyTargetSec IODeviceWeight IOReadBandwidthMax IOReadIOPSMax IOSchedulingClass
		IOSchedulingPriority IOWeight IOWriteBandwidthMax IOWriteIOPSMax IPAccounting
		IPAddressAllow IPAddressDeny IPCNamespacePath IPEgressFilterPath IPIngressFilterPath
		IgnoreSIGPIPE ImportCredential InaccessibleDirectories InaccessiblePaths KeyringMode
		KillMode KillSignal LimitAS LimitCORE LimitCPU LimitDATA LimitFSIZE LimitLOCKS
		LimitMEMLOCK LimitMSGQUEUE LimitNICE LimitNOFILE LimitNPROC LimitRSS LimitRTPRIO
		LimitRTTIME LimitSIGPENDING LimitSTACK LoadCredential LoadCredentialEncrypted
		LockPersonality LogExtraFields LogFilterPatterns LogLevelMax LogNamespace
		LogRateLimitBurst LogRateLimitIntervalSec LogsDirectory LogsDirectoryMode
		ManagedOOMMemoryPressure ManagedOOMMemoryPressureDurationSec ManagedOOMMemoryPressureLimit
		ManagedOOMPreference ManagedOOMSwap MemoryAccounting MemoryDenyWriteExecute MemoryHigh
		MemoryKSM MemoryLimit MemoryLow MemoryMax MemoryMin MemoryPressureThresholdSec
		MemoryPressureWatch MemorySwapMax MemoryZSwapMax MemoryZSwapWriteback MountAPIVFS
		MountFlags MountImagePolicy MountImages NFTSet NUMAMask NUMAPolicy NetClass
		NetworkNamespacePath Nice NoExecPaths NoNewPrivileges OOMScoreAdjust PAMName
		PassEnvironment Personality PrivateDevices PrivateIPC PrivateMounts PrivateNetwork
		PrivatePIDs PrivateTmp PrivateUsers ProcSubset ProtectClock ProtectControlGroups
		ProtectHome ProtectHostname ProtectKernelLogs ProtectKernelModules ProtectKernelTunables
		ProtectProc ProtectSystem ReadOnlyDirectories ReadOnlyPaths ReadWriteDirectories
		ReadWritePaths RemoveIPC RestartKillSignal RestrictAddressFamilies RestrictFileSystems
		RestrictNamespaces RestrictNetworkInterfaces RestrictRealtime RestrictSUIDSGID
		RootDirectory RootEphemeral RootHash RootHashSignature RootImage RootImageOptions
		RootImagePolicy RootVerity RuntimeDirectory RuntimeDirectoryMode RuntimeDirectoryPreserve
		SELinuxContext SecureBits SendSIGHUP SendSIGKILL SetCredential SetCredentialEncrypted
		SetLoginEnvironment Slice SmackProcessLabel SocketBindAllow SocketBindDeny StandardError
		StandardInput StandardInputData StandardInputText StandardOutput StartupAllowedCPUs
		StartupAllowedMemoryNodes StartupBlockIOWeight StartupCPUShares StartupCPUWeight
		StartupIOWeight StartupMemoryHigh StartupMemoryLow StartupMemoryMax StartupMemorySwapMax
		StartupMemoryZSwapMax StateDirectory StateDirectoryMode SupplementaryGroups SyslogFacility
		SyslogIdentifier SyslogLevel SyslogLevelPrefix SystemCallArchitectures
		SystemCallErrorNumber SystemCallFilter SystemCallLog TTYColumns TTYPath TTYReset TTYRows
		TTYVHangup TTYVTDisallocate TasksAccounting TasksMax TemporaryFileSystem TimeoutCleanSec
		TimerSlackNSec UMask UnsetEnvironment User UtmpIdentifier UtmpMode WatchdogSignal
		WorkingDirectory`)
	// systemdService are the other [Service] options.
	systemdService = words(`
		BusName BusPolicy ExecCondition ExecReload ExecStart ExecStartPost ExecStartPre ExecStop
		ExecStopPost ExitType FailureAction FileDescriptorStoreMax FileDescriptorStorePreserve
		GuessMainPID NonBlocking NotifyAccess OOMPolicy OpenFile PIDFile PermissionsStartOnly
		RebootArgument ReloadSignal RemainAfterExit Restart RestartForceExitStatus
		RestartMaxDelaySec RestartMode RestartPreventExitStatus RestartSec RestartSteps
		RootDirectoryStartOnly RuntimeMaxSec RuntimeRandomizedExtraSec Sockets StartLimitAction
		StartLimitBurst StartLimitInterval SuccessExitStatus SysVStartPriority TimeoutAbortSec
		TimeoutSec TimeoutStartFailureMode TimeoutStartSec TimeoutStopFailureMode TimeoutStopSec
		Type USBFunctionDescriptors USBFunctionStrings WatchdogSec`)
	// systemdSocket are the other [Socket] options.
	systemdSocket = words(`
		Accept Backlog BindIPv6Only BindToDevice Broadcast DeferAcceptSec DirectoryMode
		ExecStartPost ExecStartPre ExecStopPost ExecStopPre FileDescriptorName FlushPending
		FreeBind IPTOS IPTTL KeepAlive KeepAliveIntervalSec KeepAliveProbes KeepAliveTimeSec
		ListenDatagram ListenFIFO ListenMessageQueue ListenNetlink ListenSequentialPacket
		ListenSpecial ListenStream ListenUSBFunction Mark MaxConnections MaxConnectionsPerSource
		MessageQueueMaxMessages MessageQueueMessageSize NoDelay PassCredentials
		PassFileDescriptorsToExec PassPacketInfo PassSecurity PipeSize PollLimitBurst
		PollLimitIntervalSec Priority ReceiveBuffer RemoveOnStop ReusePort SELinuxContextFromNet
		SendBuffer Service SmackLabel SmackLabelIPIn SmackLabelIPOut SocketGroup SocketMode
		SocketProtocol SocketUser Symlinks TCPCongestion TimeoutSec Timestamping Transparent
		TriggerLimitBurst TriggerLimitIntervalSec Writable`)

	// systemdNewer* are names of systemd after v257 (its main branch, or
	// sockd's earlier lists taken from newer manual pages); they are
	// treated like the lists above.
	systemdNewerUnit   = words(`AssertFirmware AssertVersion ConditionVersion`)
	systemdNewerExec   = words(`DelegateNamespaces PrivateBPF BPFDelegateCommands BPFDelegateMaps BPFDelegatePrograms BPFDelegateAttachments`)
	systemdNewerSocket = words(`AcceptFileDescriptors DeferTrigger DeferTriggerMaxSec PassPIDFD`)
)

// legacyOptions maps "Section.Name" for the names systemd's parser maps
// to another option or accepts only to ignore (they are in the lists
// above too) to the name that replaced them ("Section.Name" for one that
// moved to another section), "" when none did.
var legacyOptions = map[string]string{
	// [Unit]
	"Unit.BindTo":               "BindsTo",
	"Unit.PropagateReloadTo":    "PropagatesReloadTo",
	"Unit.PropagateReloadFrom":  "ReloadPropagatedFrom",
	"Unit.RequiresOverridable":  "Requires",
	"Unit.RequisiteOverridable": "Requisite",
	"Unit.OnFailureIsolate":     "OnFailureJobMode",
	"Unit.StartLimitInterval":   "StartLimitIntervalSec",
	"Unit.IgnoreOnSnapshot":     "",
	// [Service] options that moved to [Unit]
	"Service.StartLimitInterval": "Unit.StartLimitIntervalSec",
	"Service.StartLimitBurst":    "Unit.StartLimitBurst",
	"Service.StartLimitAction":   "Unit.StartLimitAction",
	"Service.FailureAction":      "Unit.FailureAction",
	"Service.RebootArgument":     "Unit.RebootArgument",
	// [Service] options systemd only warns about
	"Service.SysVStartPriority": "",
	"Service.BusPolicy":         "",
}

// legacyExecOptions are the legacy names among systemdExec, valid in
// [Service] and [Socket], and what replaced them ("" when nothing did).
var legacyExecOptions = map[string]string{
	"ReadWriteDirectories":    "ReadWritePaths",
	"ReadOnlyDirectories":     "ReadOnlyPaths",
	"InaccessibleDirectories": "InaccessiblePaths",
	"CPUShares":               "CPUWeight",
	"StartupCPUShares":        "StartupCPUWeight",
	"MemoryLimit":             "MemoryMax",
	"BlockIOAccounting":       "IOAccounting",
	"BlockIOWeight":           "IOWeight",
	"StartupBlockIOWeight":    "StartupIOWeight",
	"BlockIODeviceWeight":     "IODeviceWeight",
	"BlockIOReadBandwidth":    "IOReadBandwidthMax",
	"BlockIOWriteBandwidth":   "IOWriteBandwidthMax",
	"Capabilities":            "",
	"NetClass":                "",
}
