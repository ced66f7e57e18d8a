package main

// sockd under systemd with its stderr on the journal: child output and
// sockd's own log go to the journal natively, with fields
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/supervisord"
)

// journalSink sends log entries to the journal, and to fallback (sockd's
// stderr, as without the journal) when a send fails.
type journalSink struct {
	send     func(msg string, pri journal.Priority, fields map[string]string) error
	fallback io.Writer
	warnOnce sync.Once
}

// detectJournal returns a sink when sockd's stderr is the journal's
// stream (JOURNAL_STREAM names its device and inode, as systemd sets it
// for StandardError=journal, the default) and the journal's socket
// answers; else nil, and sockd logs to stderr as always. Why it is not
// used, when JOURNAL_STREAM is set, is written to stderr.
func detectJournal(stderr io.Writer) *journalSink {
	on, err := journal.StderrIsJournalStream()
	if err != nil {
		fmt.Fprintf(stderr, "sockd: JOURNAL_STREAM: %v; logging to stderr\n", err)
		return nil
	}
	if !on {
		return nil
	}
	if !journal.Enabled() {
		fmt.Fprintln(stderr, "sockd: stderr is the journal's stream, but its socket does not answer; logging to stderr")
		return nil
	}
	return &journalSink{send: journal.Send, fallback: stderr}
}

// Priorities of child output. Both streams are "info" under systemd
// (SyslogLevel=info); sockd tells them apart with stderr one step up,
// at "notice", so that `journalctl -p notice` shows what services wrote
// to stderr without calling every Go or Python program's routine
// stderr chatter a warning (`-p warning` stays sockd's own warnings and
// lines a service marks). A line may set its own priority with a
// "<N>" prefix (sd-daemon(3)), as SyslogLevelPrefix=yes does.
const (
	priStdout = journal.PriInfo
	priStderr = journal.PriNotice
)

// output is Config.Output: one line of a unit's process.
func (j *journalSink) output(l supervisord.OutputLine) {
	msg, pri := l.Line, priStdout
	if l.Stream == api.StreamStderr {
		pri = priStderr
	}
	if p, rest, ok := levelPrefix(msg); ok {
		msg, pri = rest, p
	}
	fields := map[string]string{
		"SYSLOG_IDENTIFIER": strings.TrimSuffix(l.Unit, ".service"),
		"SOCKD_UNIT":        l.Unit,
		"SOCKD_STREAM":      l.Stream,
	}
	if l.Pid != 0 {
		fields["SOCKD_PID"] = strconv.Itoa(l.Pid)
	}
	if l.Instance != "" {
		fields["SOCKD_INSTANCE"] = l.Instance
	}
	if l.Command != "" {
		fields["SOCKD_COMMAND"] = l.Command
	}
	if err := j.send(msg, pri, fields); err != nil {
		j.failed(err)
		fb := zerolog.New(j.fallback).With().Timestamp().Logger()
		ev := fb.Info().Str("unit", l.Unit).Str("stream", l.Stream)
		if l.Pid != 0 {
			ev = ev.Int("pid", l.Pid)
		}
		ev.Msg(l.Line)
	}
}

// levelPrefix splits "<N>rest" (N 0-7) into its priority and the rest.
func levelPrefix(s string) (journal.Priority, string, bool) {
	if len(s) >= 3 && s[0] == '<' && s[1] >= '0' && s[1] <= '7' && s[2] == '>' {
		return journal.Priority(s[1] - '0'), s[3:], true
	}
	return 0, s, false
}

// Write takes one of zerolog's JSON events (sockd's own log) and sends
// it as one journal entry: "message" is MESSAGE, "level" PRIORITY, and
// every other field its name in upper case (see fieldName).
func (j *journalSink) Write(p []byte) (int, error) {
	msg, pri, fields := journalEntry(p)
	if err := j.send(msg, pri, fields); err != nil {
		j.failed(err)
		return j.fallback.Write(p)
	}
	return len(p), nil
}

// failed says once, on stderr, that the journal refused an entry.
func (j *journalSink) failed(err error) {
	j.warnOnce.Do(func() {
		fmt.Fprintf(j.fallback, "sockd: journal: %v; what it refuses goes to stderr\n", err)
	})
}

// journalEntry turns one zerolog JSON event into a journal entry.
func journalEntry(p []byte) (string, journal.Priority, map[string]string) {
	var ev map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return strings.TrimSpace(string(p)), journal.PriInfo, map[string]string{"SYSLOG_IDENTIFIER": "sockd"}
	}
	fields := map[string]string{"SYSLOG_IDENTIFIER": "sockd"}
	msg, pri := "", journal.PriInfo
	for k, raw := range ev {
		v := rawString(raw)
		switch k {
		case zerolog.MessageFieldName:
			msg = v
			continue
		case zerolog.LevelFieldName:
			pri = levelPriority(v)
			continue
		case zerolog.TimestampFieldName:
			continue // the journal stamps every entry
		}
		if name := fieldName(k); name != "" {
			fields[name] = v
		}
	}
	return msg, pri, fields
}

// rawString is a JSON value as a journal field's value: a string's
// text, anything else its JSON.
func rawString(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// levelPriority maps zerolog's level to syslog's priority.
func levelPriority(level string) journal.Priority {
	switch level {
	case "trace", "debug":
		return journal.PriDebug
	case "info":
		return journal.PriInfo
	case "warn":
		return journal.PriWarning
	case "error":
		return journal.PriErr
	case "fatal":
		return journal.PriCrit
	case "panic":
		return journal.PriEmerg
	}
	return journal.PriInfo
}

// fieldName is the journal field of a zerolog field: "unit", "pid" and
// "stream" are the SOCKD_ fields that child output carries too (so
// `journalctl SOCKD_UNIT=app.service` finds sockd's lines about app
// with app's own); others are upper-cased, every character but A-Z,
// 0-9 and _ made _, leading underscores (trusted fields) dropped, at
// most 64 bytes; a name journald gives a meaning of its own gets
// SOCKD_ before it. "" when nothing is left.
func fieldName(k string) string {
	switch k {
	case "unit":
		return "SOCKD_UNIT"
	case "pid":
		return "SOCKD_PID"
	case "stream":
		return "SOCKD_STREAM"
	}
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	name := strings.TrimLeft(string(b), "_")
	if reservedField(name) {
		name = "SOCKD_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// reservedField reports whether journald or journalctl give name a
// meaning of their own (systemd.journal-fields(7)).
func reservedField(name string) bool {
	switch name {
	case "":
		return false
	case "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO",
		"INVOCATION_ID", "USER_INVOCATION_ID", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID",
		"SYSLOG_TIMESTAMP", "SYSLOG_RAW", "DOCUMENTATION", "TID", "UNIT", "USER_UNIT":
		return true
	}
	return strings.HasPrefix(name, "OBJECT_") || strings.HasPrefix(name, "COREDUMP") || name[0] >= '0' && name[0] <= '9'
}
