package farm

import (
	"fmt"
	"time"
)

func (s *Scheduler) tickLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.tick(now)
		}
	}
}

// tick re-issues instances whose deadline passed or whose provider stayed
// away longer than Grace, and explains why stuck units wait.
func (s *Scheduler) tick(now time.Time) {
	s.mu.Lock()
	var ops []op
	ms := now.UnixMilli()
	for id, u := range s.active {
		in := u.inst(id.attempt)
		p := s.provs[in.Prov]
		switch {
		case ms > in.Deadline:
			ops = append(ops, s.lose(id, "deadline missed", now)...)
		case p != nil && p.sess == nil && now.Sub(p.since) > s.cfg.Grace:
			ops = append(ops, s.lose(id, "the provider stayed away", now)...)
		}
	}
	for _, q := range s.classes {
		q.reason = ""
		if q.Len() > 0 && now.Sub(q.units[0].queued) > 2*s.cfg.Tick {
			q.reason = s.why(q, q.units[0])
		}
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	if err := s.commitNotify(s.ctx, ch); err != nil {
		s.cfg.Logger.Warn("commit", "err", err)
	}
}

// why explains what keeps u, the head of q, from being handed out.
func (s *Scheduler) why(q *classQ, u *unit) string {
	online, meet, fit := 0, 0, 0
	unmet := ""
	for _, p := range s.provs {
		if p.sess == nil {
			continue
		}
		online++
		if m := q.req.Unmet(p.rec.Profile); m != "" {
			unmet = m
			continue
		}
		meet++
		if u.rec.Estimate == 0 || s.cost(u, p)/float64(max(1, p.rec.Profile.Slots)) <= 0.9*time.Duration(u.rec.Deadline).Seconds() {
			fit++
		}
	}
	switch {
	case online == 0:
		return "no provider is online"
	case meet == 0:
		return fmt.Sprintf("no online provider meets its requirements (%d online; e.g. %s)", online, unmet)
	case fit == 0:
		return fmt.Sprintf("no provider can finish it before its %v deadline at its measured speed", time.Duration(u.rec.Deadline))
	case meet < u.rec.Need:
		return fmt.Sprintf("its quorum needs %d distinct providers; %d eligible are online", u.rec.Need, meet)
	}
	return "waiting for a free slot"
}

// UnitInfo is the scheduler's view of one unit.
type UnitInfo struct {
	State     State
	Reason    string // why a queued unit waits, or why it failed
	Instances int    // handed out so far
	Need      int    // matching results it needs
}

// Unit returns the state of one unit of owner's job.
func (s *Scheduler) Unit(owner, jobID string, idx uint32) (UnitInfo, error) {
	jk, err := parseJobKey(jobID)
	if err != nil {
		return UnitInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[jk]
	u := s.units[[12]byte(unitKey(jk, idx))]
	if j == nil || j.rec.Owner != owner || u == nil {
		return UnitInfo{}, fmt.Errorf("%w: %s/%d", ErrUnknownJob, jobID, idx)
	}
	info := UnitInfo{State: u.rec.State, Instances: len(u.rec.Inst), Need: u.rec.Need}
	switch {
	case u.rec.State == Queued:
		if q := s.classes[u.rec.Req]; q != nil && q.reason != "" {
			info.Reason = q.reason
		} else {
			info.Reason = "waiting for a free slot"
		}
	case u.rec.State == Failed:
		info.Reason = u.rec.Err
	}
	return info, nil
}

// ProviderInfo describes one provider for status displays.
type ProviderInfo struct {
	ID         string
	Profile    Profile
	Online     bool
	Active     int
	Valid      uint64
	Invalid    uint64
	Errors     uint64
	Lost       uint64
	Trusted    bool
	Distrusted bool
	// Rate is the measured speed relative to the reference host (>1 faster).
	Rate float64
}

// Stats is a snapshot of the whole farm.
type Stats struct {
	Units     map[State]int
	Providers []ProviderInfo
	Issued    uint64 // instances handed out since start
	Ended     uint64 // units ended since start
	Commits   uint64 // transactions written since start
	Writes    uint64 // records written since start
}

// Stats returns a snapshot of unit counts and providers.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	st := Stats{Units: map[State]int{}, Issued: s.issued, Ended: s.ended}
	for k, v := range s.counts {
		if v != 0 {
			st.Units[k] = v
		}
	}
	for _, p := range s.provs {
		st.Providers = append(st.Providers, ProviderInfo{
			ID: p.id, Profile: p.rec.Profile, Online: p.sess != nil, Active: len(p.active),
			Valid: p.rec.Valid, Invalid: p.rec.Invalid, Errors: p.rec.Errors, Lost: p.rec.Lost,
			Trusted: s.trusted(p), Distrusted: p.rec.Distrusted, Rate: 1 / p.secPerRef(),
		})
	}
	s.mu.Unlock()
	s.com.mu.Lock()
	st.Commits, st.Writes = s.com.commits, s.com.batched
	s.com.mu.Unlock()
	return st
}
