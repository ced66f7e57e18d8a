package supervisord

import "github.com/sockd/sockd/api"

// status is the unit as the API shows it; State and SubState come from
// the phase alone.
func (u *unit) status() api.UnitStatus {
	st := api.ServiceStatus{
		State:       u.phase.state(),
		SubState:    u.phase.subState(),
		Pids:        []int{},
		Generation:  u.gen,
		Since:       u.since,
		Restarts:    u.restarts,
		LastExit:    u.lastExit,
		Result:      u.result,
		Instances:   len(u.slots),
		LastRestart: u.lastRst,
		NextStart:   u.nextAttempt(),
	}
	for _, p := range u.slots {
		if p != nil {
			st.Pids = append(st.Pids, p.Pid())
			if st.MainPID == 0 {
				st.MainPID = p.mainPid
			}
			if p.status != "" {
				st.Status = p.status
			}
		}
	}
	st.ControlGroup = u.cgroupName()
	if u.hold != nil {
		st.HeldBy = u.hold.pid
	}
	if u.phase == phaseRestarting && u.job != nil {
		for i := range u.slots {
			st.InstancePhases = append(st.InstancePhases, u.job.slotPhase(i))
		}
	}
	if u.job != nil && u.job.newProc != nil {
		st.Pids = append(st.Pids, u.job.newProc.Pid())
	}
	for _, p := range u.draining {
		st.Pids = append(st.Pids, p.Pid())
	}
	return api.UnitStatus{Name: u.name, Service: st, Sockets: u.sockSt}
}
