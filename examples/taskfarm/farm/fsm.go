package farm

import (
	"bytes"
	"container/heap"
	"time"

	"lukechampine.com/blake3"
)

// The unit state machine. Every function here runs under s.mu and returns
// the writes that make its transition durable; the caller commits them before
// it acknowledges anything.

// needMore is how many more instances u must hand out to be able to reach its
// quorum: the matching results it still lacks, less those in flight.
func (s *Scheduler) needMore(u *unit) int {
	if u.rec.State.Terminal() {
		return 0
	}
	best, active := 0, 0
	counts := map[string]int{}
	for _, in := range u.rec.Inst {
		switch in.State {
		case iActive:
			active++
		case iReported:
			counts[string(in.Hash)]++
			best = max(best, counts[string(in.Hash)])
		}
	}
	return u.rec.Need - best - active
}

// settle recomputes a non-terminal unit's state from its instances and puts
// it in or out of the queue.
func (s *Scheduler) settle(u *unit, now time.Time) []op {
	if u.rec.State.Terminal() {
		return nil
	}
	if u.rec.Wasted >= u.rec.MaxAttempts {
		msg := "too many attempts without a quorum"
		if u.rec.Err != "" {
			msg += "; last error: " + u.rec.Err
		}
		return s.fail(u, msg)
	}
	st := Assigned
	reported := false
	for _, in := range u.rec.Inst {
		if in.State == iReported {
			reported = true
		}
	}
	switch {
	case s.needMore(u) > 0:
		st = Queued
		s.enqueue(u, now)
	case reported:
		st = Reported
	case len(u.running) > 0:
		st = Running
	}
	if st != Queued {
		s.dequeue(u)
	}
	s.setState(u, st)
	return []op{{bUnits, unitKey(u.job.key, u.idx), mustEnc(u.rec)}}
}

func (s *Scheduler) setState(u *unit, st State) {
	if u.rec.State == st {
		return
	}
	s.counts[u.rec.State]--
	s.counts[st]++
	u.rec.State = st
}

// issue hands a new instance of u to p.
func (s *Scheduler) issue(u *unit, p *provider, now time.Time) (instID, []op) {
	if len(u.rec.Inst) == 0 && u.rec.Need > 1 && u.job.rec.Spec.Adaptive && s.trusted(p) && s.rng.Float64() >= s.cfg.SpotCheck {
		u.rec.Need = 1 // adaptive replication: a trusted provider runs it alone
	}
	u.rec.NextAttempt++
	in := instRec{Prov: p.id, Attempt: u.rec.NextAttempt, Deadline: now.Add(time.Duration(u.rec.Deadline)).UnixMilli(), State: iActive, Issued: now.UnixMilli()}
	u.rec.Inst = append(u.rec.Inst, in)
	id := instID{u.job.key, u.idx, in.Attempt}
	p.active[id] = u
	s.active[id] = u
	p.load += s.cost(u, p)
	s.issued++
	return id, s.settle(u, now)
}

// cost is how many seconds of one slot u takes on p.
func (s *Scheduler) cost(u *unit, p *provider) float64 { return u.rec.Estimate * p.secPerRef() }

func (u *unit) inst(attempt uint16) *instRec {
	for i := range u.rec.Inst {
		if u.rec.Inst[i].Attempt == attempt {
			return &u.rec.Inst[i]
		}
	}
	return nil
}

// release takes an instance off its provider's books.
func (s *Scheduler) release(id instID, u *unit) {
	in := u.inst(id.attempt)
	if p := s.provs[in.Prov]; p != nil {
		if _, ok := p.active[id]; ok {
			delete(p.active, id)
			p.load = max(0, p.load-s.cost(u, p))
		}
	}
	delete(s.active, id)
	delete(u.running, id.attempt)
}

// lose ends an active instance without a result (deadline missed, provider
// gone) so that the unit is handed out again.
func (s *Scheduler) lose(id instID, why string, now time.Time) []op {
	u := s.active[id]
	if u == nil {
		return nil
	}
	in := u.inst(id.attempt)
	s.release(id, u)
	in.State = iLost
	in.Err = why
	u.rec.Wasted++
	u.rec.Err = why
	if u.rec.Need == 1 && u.rec.Quorum > 1 {
		u.rec.Need = u.rec.Quorum // a lost solo run gets the full quorum again
	}
	var ops []op
	if p := s.provs[in.Prov]; p != nil {
		p.rec.Lost++
		ops = append(ops, p.save())
	}
	return append(ops, s.settle(u, now)...)
}

// report applies one result of p's. It returns the writes, and whether the
// report was for an instance p holds (anything else is acknowledged and
// ignored, so a provider can always clear its backlog).
func (s *Scheduler) report(p *provider, r Report, now time.Time) []op {
	id := instID{r.Inst.jobKey(), r.Inst.Unit, r.Inst.Attempt}
	u := s.active[id]
	if u == nil || p.active[id] != u {
		return s.late(p, id, r)
	}
	in := u.inst(id.attempt)
	s.release(id, u)
	var ops []op
	if r.Err != "" {
		in.State, in.Err = iError, clip(r.Err, MaxErrorText)
		u.rec.Wasted++
		u.rec.Err = in.Err
		p.rec.Errors++
		if u.rec.Need == 1 && u.rec.Quorum > 1 {
			u.rec.Need = u.rec.Quorum
		}
		return append(append(ops, p.save()), s.settle(u, now)...)
	}
	h := blake3.Sum256(r.Output)
	in.State, in.Hash = iReported, h[:]
	u.outs[id.attempt] = r.Output
	if u.rec.Estimate > 0 && r.Elapsed > 0 {
		p.observe(r.Elapsed.Seconds() / u.rec.Estimate)
	}
	ops = append(ops, op{bOuts, outKey(id.job, id.idx, id.attempt), r.Output})
	return append(ops, s.validate(u, now)...)
}

// late handles a result for an instance that is no longer active: it still
// counts for its provider's record when the unit was validated meanwhile.
func (s *Scheduler) late(p *provider, id instID, r Report) []op {
	u := s.units[[12]byte(unitKey(id.job, id.idx))]
	if u == nil || u.rec.State != Validated || r.Err != "" {
		return nil
	}
	in := u.inst(id.attempt)
	if in == nil || in.Prov != p.id || in.State != iLost {
		return nil
	}
	h := blake3.Sum256(r.Output)
	canon := canonical(u)
	if canon == nil {
		return nil
	}
	if bytes.Equal(h[:], canon) {
		in.State, in.Hash = iReported, h[:]
		p.valid()
	} else {
		in.State, in.Hash = iOutvoted, h[:]
		p.outvoted()
	}
	return []op{p.save(), {bUnits, unitKey(id.job, id.idx), mustEnc(u.rec)}}
}

func canonical(u *unit) []byte {
	counts := map[string]int{}
	for _, in := range u.rec.Inst {
		if in.State == iReported {
			counts[string(in.Hash)]++
			if counts[string(in.Hash)] >= u.rec.Need {
				return in.Hash
			}
		}
	}
	return nil
}

// validate checks u's quorum: when enough results agree bit for bit, u is
// validated with that output, agreeing providers gain trust and the others
// are outvoted and distrusted.
func (s *Scheduler) validate(u *unit, now time.Time) []op {
	canon := canonical(u)
	if canon == nil {
		return s.settle(u, now)
	}
	var out []byte
	var ops []op
	for i := range u.rec.Inst {
		in := &u.rec.Inst[i]
		if in.State != iReported {
			continue
		}
		p := s.provider(in.Prov)
		if bytes.Equal(in.Hash, canon) {
			out = u.outs[in.Attempt]
			p.valid()
		} else {
			in.State = iOutvoted
			p.outvoted()
		}
		ops = append(ops, p.save(), op{bOuts, outKey(u.job.key, u.idx, in.Attempt), nil})
	}
	for i := range u.rec.Inst {
		in := &u.rec.Inst[i]
		if in.State == iActive { // no longer needed; a late result still counts for trust
			id := instID{u.job.key, u.idx, in.Attempt}
			s.release(id, u)
			in.State = iLost
		}
	}
	u.outs = nil
	u.rec.Err = ""
	return append(ops, s.end(u, Validated, out, "")...)
}

// fail ends u without a result.
func (s *Scheduler) fail(u *unit, why string) []op {
	for i := range u.rec.Inst {
		in := &u.rec.Inst[i]
		if in.State == iActive {
			s.release(instID{u.job.key, u.idx, in.Attempt}, u)
			in.State = iLost
		}
	}
	var ops []op
	for a := range u.outs {
		ops = append(ops, op{bOuts, outKey(u.job.key, u.idx, a), nil})
	}
	u.outs = nil
	u.rec.Err = why
	return append(ops, s.end(u, Failed, nil, why)...)
}

func (s *Scheduler) end(u *unit, st State, out []byte, why string) []op {
	s.dequeue(u)
	s.setState(u, st)
	j := u.job
	j.done++
	j.nextSeq++
	s.ended++
	r := Result{Job: j.key.String(), Unit: u.idx, Seq: j.nextSeq, Output: out, Err: why}
	return []op{
		{bUnits, unitKey(j.key, u.idx), mustEnc(u.rec)},
		{bResults, resultKey(j.key, j.nextSeq), mustEnc(r)},
	}
}

func (s *Scheduler) trusted(p *provider) bool {
	return s.cfg.TrustAfter > 0 && !p.rec.Distrusted && p.rec.Streak >= s.cfg.TrustAfter
}

// The queue: one heap per requirement class, each ordered by priority, then
// FIFO. A provider takes from the classes it satisfies.

type classQ struct {
	req    Requirements
	units  []*unit
	reason string // why the head is still waiting, when it is stuck
}

func (q *classQ) Len() int { return len(q.units) }
func (q *classQ) Less(i, j int) bool {
	a, b := q.units[i], q.units[j]
	if a.rec.Priority != b.rec.Priority {
		return a.rec.Priority > b.rec.Priority
	}
	return a.rec.Seq < b.rec.Seq
}
func (q *classQ) Swap(i, j int) {
	q.units[i], q.units[j] = q.units[j], q.units[i]
	q.units[i].qi, q.units[j].qi = i, j
}
func (q *classQ) Push(x any) { u := x.(*unit); u.qi = len(q.units); q.units = append(q.units, u) }
func (q *classQ) Pop() any {
	n := len(q.units) - 1
	u := q.units[n]
	q.units[n] = nil
	q.units = q.units[:n]
	u.qi = -1
	return u
}

func (s *Scheduler) enqueue(u *unit, now time.Time) {
	if u.qi >= 0 {
		return
	}
	q := s.classes[u.rec.Req]
	if q == nil {
		q = &classQ{req: u.rec.Req}
		s.classes[u.rec.Req] = q
	}
	u.queued = now
	heap.Push(q, u)
	s.kickDispatch()
}

func (s *Scheduler) dequeue(u *unit) {
	if u.qi < 0 {
		return
	}
	heap.Remove(s.classes[u.rec.Req], u.qi)
}
