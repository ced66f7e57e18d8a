package units

// RestartSteps= and RestartMaxDelaySec=: the growth of the pause before
// an automatic restart (systemd.service(5)).

// restartBuild keeps the options that finishRestart checks together.
type restartBuild struct {
	steps, maxDelay *rawOption
}

func init() {
	registerServiceOptions(map[string]serviceHandler{
		"RestartSteps": func(b *serviceBuild, o rawOption) error {
			if err := setInt(&b.s.RestartSteps, o.Value, 1<<31-1); err != nil {
				return err
			}
			b.restart.steps = &o
			return nil
		},
		"RestartMaxDelaySec": func(b *serviceBuild, o rawOption) error {
			if err := setSeconds(&b.s.RestartMaxDelay, o.Value); err != nil {
				return err
			}
			if b.s.RestartMaxDelay == Infinity {
				b.s.RestartMaxDelay, b.restart.maxDelay = 0, nil // the default: no growth
				return nil
			}
			b.restart.maxDelay = &o
			return nil
		},
	})
}

// finishRestart checks the two options together, as systemd's
// service_verify does: one without the other is ignored (with a
// warning), and a RestartMaxDelaySec= below RestartSec= lowers
// RestartSec= to it.
func (b *serviceBuild) finishRestart() {
	s, r := b.s, b.restart
	switch {
	case r.steps != nil && s.RestartSteps > 0 && r.maxDelay == nil:
		b.warnf(*r.steps, "no RestartMaxDelaySec=: ignored, as in systemd")
	case r.maxDelay != nil && s.RestartSteps == 0:
		b.warnf(*r.maxDelay, "no RestartSteps=: ignored, as in systemd")
	}
	if r.maxDelay != nil && s.RestartMaxDelay < s.RestartSec {
		b.warnf(*r.maxDelay, "%v is below RestartSec=%v: RestartSec= is lowered to it, as in systemd",
			s.RestartMaxDelay, s.RestartSec)
		s.RestartSec = s.RestartMaxDelay
	}
}
