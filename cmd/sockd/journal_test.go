package main

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/supervisord"
)

// sent is one entry a journalSink sent.
type sent struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

func recordingSink(fail bool) (*journalSink, *[]sent, *bytes.Buffer) {
	var got []sent
	var fallback bytes.Buffer
	j := &journalSink{fallback: &fallback, send: func(msg string, pri journal.Priority, fields map[string]string) error {
		got = append(got, sent{msg, pri, fields})
		if fail {
			return errors.New("no journal")
		}
		return nil
	}}
	return j, &got, &fallback
}

func TestJournalOutput(t *testing.T) {
	j, got, _ := recordingSink(false)
	j.output(supervisord.OutputLine{Unit: "app.service", LogLine: api.LogLine{Pid: 42, Stream: "stdout", Line: "hello"}})
	j.output(supervisord.OutputLine{Unit: "app.service", LogLine: api.LogLine{Pid: 42, Stream: "stderr", Line: "oops\x00\r"}})
	j.output(supervisord.OutputLine{Unit: "app.service", LogLine: api.LogLine{Pid: 42, Stream: "stderr", Line: "<3>bad"}})
	j.output(supervisord.OutputLine{Unit: "echo@.service", Instance: "echo@1.service", Command: "ExecStartPre", LogLine: api.LogLine{Stream: "stdout", Line: "<9>x"}})
	want := []sent{
		{"hello", journal.PriInfo, map[string]string{"SYSLOG_IDENTIFIER": "app", "SOCKD_UNIT": "app.service", "SOCKD_STREAM": "stdout", "SOCKD_PID": "42"}},
		{"oops\x00\r", journal.PriNotice, map[string]string{"SYSLOG_IDENTIFIER": "app", "SOCKD_UNIT": "app.service", "SOCKD_STREAM": "stderr", "SOCKD_PID": "42"}},
		{"bad", journal.PriErr, map[string]string{"SYSLOG_IDENTIFIER": "app", "SOCKD_UNIT": "app.service", "SOCKD_STREAM": "stderr", "SOCKD_PID": "42"}},
		{"<9>x", journal.PriInfo, map[string]string{"SYSLOG_IDENTIFIER": "echo@", "SOCKD_UNIT": "echo@.service", "SOCKD_STREAM": "stdout",
			"SOCKD_INSTANCE": "echo@1.service", "SOCKD_COMMAND": "ExecStartPre"}},
	}
	if len(*got) != len(want) {
		t.Fatalf("sent %d entries, want %d", len(*got), len(want))
	}
	for i, w := range want {
		g := (*got)[i]
		if g.msg != w.msg || g.pri != w.pri || !maps.Equal(g.fields, w.fields) {
			t.Errorf("entry %d: %q %d %v, want %q %d %v", i, g.msg, g.pri, g.fields, w.msg, w.pri, w.fields)
		}
	}
}

// sockd's own zerolog events become entries with their fields.
func TestJournalWriter(t *testing.T) {
	j, got, _ := recordingSink(false)
	log := zerolog.New(j).With().Timestamp().Logger()
	log.Warn().Str("unit", "app.service").Int("pid", 7).Str("error", "boom").Str("priority", "spoof").
		Str("_pid", "1").Str("code-file", "x").Str("9lives", "y").Strs("units", []string{"a", "b"}).Msg("restart failed")
	log.Error().Msg("bad")
	log.Debug().Msg("detail")
	if len(*got) != 3 {
		t.Fatalf("sent %d entries", len(*got))
	}
	e := (*got)[0]
	want := map[string]string{"SYSLOG_IDENTIFIER": "sockd", "SOCKD_UNIT": "app.service", "SOCKD_PID": "7", "ERROR": "boom",
		"SOCKD_PRIORITY": "spoof", "PID": "1", "SOCKD_CODE_FILE": "x", "SOCKD_9LIVES": "y", "UNITS": `["a","b"]`}
	if e.msg != "restart failed" || e.pri != journal.PriWarning || !maps.Equal(e.fields, want) {
		t.Errorf("got %q %d %v\nwant fields %v", e.msg, e.pri, e.fields, want)
	}
	if (*got)[1].pri != journal.PriErr || (*got)[2].pri != journal.PriDebug {
		t.Errorf("priorities %d %d", (*got)[1].pri, (*got)[2].pri)
	}
	for k := range e.fields {
		if !validJournalField(k) {
			t.Errorf("field %q is not a valid journal field name", k)
		}
	}
}

// A journal that refuses an entry: it goes to stderr, as without the
// journal, and sockd says why once.
func TestJournalFallback(t *testing.T) {
	j, _, fallback := recordingSink(true)
	log := zerolog.New(j)
	log.Info().Msg("own event")
	j.output(supervisord.OutputLine{Unit: "app.service", LogLine: api.LogLine{Pid: 42, Stream: "stdout", Line: "child line"}})
	out := fallback.String()
	if strings.Count(out, "no journal") != 1 || !strings.Contains(out, `"message":"own event"`) || !strings.Contains(out, `"message":"child line"`) {
		t.Errorf("stderr:\n%s", out)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"error": "ERROR", "unit": "SOCKD_UNIT", "old_pids": "OLD_PIDS", "a.b-c": "A_B_C", "__x": "X", "___": "",
		"message": "SOCKD_MESSAGE", "object_pid": "SOCKD_OBJECT_PID", strings.Repeat("a", 80): strings.Repeat("A", 64),
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

// validJournalField is journald's rule for a field name a client sends.
func validJournalField(k string) bool {
	if k == "" || len(k) > 64 || k[0] == '_' || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
