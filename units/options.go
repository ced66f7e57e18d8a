package units

import (
	"sort"
	"strings"
)

// Options systemd knows that sockd accepts but does not implement: they
// produce a warning and the unit still loads.
var (
	// unsupportedSocket are [Socket] options of systemd.socket(5).
	unsupportedSocket = words(`ListenSpecial ListenNetlink ListenMessageQueue ListenUSBFunction
		SocketProtocol DeferAcceptSec Priority IPTOS IPTTL Mark Timestamping PipeSize
		MessageQueueMaxMessages MessageQueueMessageSize SmackLabel SmackLabelIPIn SmackLabelIPOut
		SELinuxContextFromNet PassSecurity PassPacketInfo PassFileDescriptorsToExec AcceptFileDescriptors
		PassPIDFD Writable FlushPending ExecStartPre ExecStartPost ExecStopPre ExecStopPost TimeoutSec
		PollLimitIntervalSec PollLimitBurst DeferTrigger DeferTriggerMaxSec Slice`)
	// unsupportedService are [Service] options of systemd.service(5).
	unsupportedService = words(`BusName
		RestartSteps RestartMaxDelaySec RestartMode
		TimeoutAbortSec TimeoutStartFailureMode TimeoutStopFailureMode
		RuntimeRandomizedExtraSec FileDescriptorStoreMax FileDescriptorStorePreserve
		USBFunctionDescriptors USBFunctionStrings OOMPolicy OpenFile ExitType
		NonBlocking PermissionsStartOnly RootDirectoryStartOnly FailureAction SuccessAction
		StartLimitAction RebootArgument Slice`)
	// unsupportedExec are options of systemd.exec(5), systemd.kill(5) and
	// systemd.resource-control(5), valid in [Service] and [Socket].
	unsupportedExec = words(`RootDirectory RootImage RootImageOptions RootEphemeral RootHash
		RootHashSignature RootVerity RootImagePolicy MountImagePolicy ExtensionImagePolicy
		MountAPIVFS BindLogSockets ProtectProc ProcSubset BindPaths BindReadOnlyPaths MountImages
		ExtensionImages ExtensionDirectories DynamicUser SetLoginEnvironment PAMName
		CapabilityBoundingSet AmbientCapabilities NoNewPrivileges SecureBits SELinuxContext
		AppArmorProfile SmackProcessLabel CoredumpFilter KeyringMode OOMScoreAdjust TimerSlackNSec
		Personality IgnoreSIGPIPE CPUSchedulingPolicy CPUSchedulingPriority CPUSchedulingResetOnFork
		CPUAffinity NUMAPolicy NUMAMask IOSchedulingClass IOSchedulingPriority ProtectSystem
		ProtectHome RuntimeDirectory StateDirectory CacheDirectory LogsDirectory
		ConfigurationDirectory RuntimeDirectoryMode StateDirectoryMode CacheDirectoryMode
		LogsDirectoryMode ConfigurationDirectoryMode RuntimeDirectoryPreserve TimeoutCleanSec
		ReadWritePaths ReadOnlyPaths InaccessiblePaths ExecPaths NoExecPaths TemporaryFileSystem
		PrivateTmp PrivateDevices PrivateNetwork NetworkNamespacePath PrivateIPC IPCNamespacePath
		MemoryKSM PrivateUsers PrivatePIDs ProtectHostname ProtectClock ProtectKernelTunables
		ProtectKernelModules ProtectKernelLogs ProtectControlGroups RestrictAddressFamilies
		RestrictFileSystems RestrictNamespaces DelegateNamespaces LockPersonality
		MemoryDenyWriteExecute RestrictRealtime RestrictSUIDSGID RemoveIPC PrivateMounts MountFlags
		SystemCallFilter SystemCallErrorNumber SystemCallArchitectures SystemCallLog
		StandardInputText StandardInputData LogLevelMax LogExtraFields LogRateLimitIntervalSec
		LogRateLimitBurst LogFilterPatterns LogNamespace SyslogIdentifier SyslogFacility SyslogLevel
		SyslogLevelPrefix TTYPath TTYReset TTYVHangup TTYRows TTYColumns TTYVTDisallocate
		LoadCredential LoadCredentialEncrypted ImportCredential SetCredential SetCredentialEncrypted
		UtmpIdentifier UtmpMode User Group SupplementaryGroups WorkingDirectory Environment
		EnvironmentFile PassEnvironment UnsetEnvironment UMask Nice StandardInput StandardOutput
		StandardError LimitCPU LimitFSIZE LimitDATA LimitSTACK LimitCORE LimitRSS LimitNOFILE LimitAS
		LimitNPROC LimitMEMLOCK LimitLOCKS LimitSIGPENDING LimitMSGQUEUE LimitNICE LimitRTPRIO
		LimitRTTIME
		KillMode KillSignal RestartKillSignal SendSIGHUP SendSIGKILL FinalKillSignal WatchdogSignal
		CPUAccounting CPUWeight StartupCPUWeight CPUQuota CPUQuotaPeriodSec AllowedCPUs
		StartupAllowedCPUs AllowedMemoryNodes StartupAllowedMemoryNodes MemoryAccounting MemoryMin
		MemoryLow StartupMemoryLow DefaultStartupMemoryLow MemoryHigh StartupMemoryHigh MemoryMax
		StartupMemoryMax MemorySwapMax StartupMemorySwapMax MemoryZSwapMax StartupMemoryZSwapMax
		MemoryZSwapWriteback TasksAccounting TasksMax IOAccounting IOWeight StartupIOWeight
		IODeviceWeight IOReadBandwidthMax IOWriteBandwidthMax IOReadIOPSMax IOWriteIOPSMax
		IODeviceLatencyTargetSec IPAccounting IPAddressAllow IPAddressDeny SocketBindAllow
		SocketBindDeny RestrictNetworkInterfaces NFTSet IPIngressFilterPath IPEgressFilterPath
		BPFProgram DeviceAllow DevicePolicy Delegate DelegateSubgroup DisableControllers
		ManagedOOMSwap ManagedOOMMemoryPressure ManagedOOMMemoryPressureLimit ManagedOOMPreference
		MemoryPressureWatch MemoryPressureThresholdSec CoredumpReceive CPUShares StartupCPUShares
		MemoryLimit BlockIOAccounting BlockIOWeight StartupBlockIOWeight BlockIODeviceWeight
		BlockIOReadBandwidth BlockIOWriteBandwidth`)
	// unitIgnored are [Unit] options sockd accepts silently: documentation,
	// and dependencies that socket activation already provides.
	unitIgnored = words(`Description Documentation Wants Requires Requisite BindsTo PartOf Upholds
		Before After DefaultDependencies SourcePath IgnoreOnIsolate AllowIsolate CollectMode`)
	// unitWarned are [Unit] options sockd does not implement.
	unitWarned = words(`Conflicts OnFailure OnSuccess PropagatesReloadTo ReloadPropagatedFrom
		PropagatesStopTo StopPropagatedFrom JoinsNamespaceOf RequiresMountsFor WantsMountsFor
		OnFailureJobMode StopWhenUnneeded RefuseManualStart RefuseManualStop SurviveFinalKillSignal
		FailureAction SuccessAction FailureActionExitStatus SuccessActionExitStatus JobTimeoutSec
		JobRunningTimeoutSec JobTimeoutAction JobTimeoutRebootArgument StartLimitAction
		RebootArgument StartLimitIntervalSec StartLimitBurst`)
	// conditions are the suffixes of Condition*= and Assert*=.
	conditions = words(`Architecture Firmware Virtualization Host KernelCommandLine KernelVersion
		Credential Environment Security Capability ACPower NeedsUpdate FirstBoot PathExists
		PathExistsGlob PathIsDirectory PathIsSymbolicLink PathIsMountPoint PathIsReadWrite
		PathIsEncrypted DirectoryNotEmpty FileNotEmpty FileIsExecutable User Group
		ControlGroupController Memory CPUs CPUFeature OSRelease MemoryPressure CPUPressure
		IOPressure Version`)
	// installOptions are the [Install] options, all ignored by sockd.
	installOptions = words(`WantedBy RequiredBy UpheldBy Also Alias DefaultInstance`)
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[strings.TrimSuffix(w, "?")] = true
	}
	return m
}

func isCondition(name string) bool {
	if rest, ok := strings.CutPrefix(name, "Condition"); ok {
		return conditions[rest]
	}
	if rest, ok := strings.CutPrefix(name, "Assert"); ok {
		return conditions[rest]
	}
	return false
}

// suggest returns the candidate closest to name by edit distance, or ""
// when none is close enough to be a likely typo.
func suggest(name string, candidates ...map[string]bool) string {
	best, bestD := "", 1<<30
	if len(name) > 64 {
		return ""
	}
	var all []string
	for _, c := range candidates {
		for k := range c {
			all = append(all, k)
		}
	}
	sort.Strings(all)
	lname := strings.ToLower(name)
	for _, k := range all {
		if diff := len(k) - len(name); diff > 4 || diff < -4 {
			continue
		}
		d := editDistance(lname, strings.ToLower(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	limit := len(name) / 3
	if limit < 1 {
		limit = 1
	}
	if limit > 4 {
		limit = 4
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein (optimal string alignment)
// distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 200 || len(b) > 200 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
