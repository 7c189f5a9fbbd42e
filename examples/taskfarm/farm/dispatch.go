package farm

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// InstanceID names one instance of a unit handed to one provider.
type InstanceID struct {
	Job     [8]byte `cbor:"1,keyasint"`
	Unit    uint32  `cbor:"2,keyasint"`
	Attempt uint16  `cbor:"3,keyasint"`
}

func (i InstanceID) jobKey() jobKey { return jobKey(i.Job) }

func (i InstanceID) String() string { return fmt.Sprintf("%x/%d#%d", i.Job, i.Unit, i.Attempt) }

// Assignment is an instance as a provider receives it.
type Assignment struct {
	ID       InstanceID `cbor:"1,keyasint"`
	Task     Task       `cbor:"2,keyasint"`
	Input    []byte     `cbor:"3,keyasint,omitempty"`
	Deadline int64      `cbor:"4,keyasint"` // unix ms
}

// Report is a provider's outcome of one instance.
type Report struct {
	Inst    InstanceID    `cbor:"1,keyasint"`
	Output  []byte        `cbor:"2,keyasint,omitempty"`
	Err     string        `cbor:"3,keyasint,omitempty"`
	Elapsed time.Duration `cbor:"4,keyasint,omitempty"`
}

// provider is the scheduler's record of one provider.
type provider struct {
	id     string
	rec    provRec
	active map[instID]*unit // guarded by Scheduler.mu
	load   float64          // seconds of one slot's work outstanding
	sess   *Session         // the live session, nil when disconnected
	since  time.Time        // disconnected since
	gone   bool             // presence said offline; nothing waits for it
}

func (p *provider) init() { p.active = map[instID]*unit{} }

func (p *provider) save() op { return op{bProvs, []byte(p.id), mustEnc(p.rec)} }

// secPerRef is how many seconds p takes per reference second: measured,
// or from its benchmark until it has reported.
func (p *provider) secPerRef() float64 {
	if p.rec.SecPerRef > 0 {
		return p.rec.SecPerRef
	}
	return RefScore / p.rec.Profile.Score
}

func (p *provider) observe(sample float64) {
	if sample <= 0 || sample > 1e6 {
		return
	}
	if p.rec.SecPerRef == 0 {
		p.rec.SecPerRef = sample
		return
	}
	p.rec.SecPerRef = 0.8*p.rec.SecPerRef + 0.2*sample
}

func (p *provider) valid() {
	p.rec.Valid++
	p.rec.Streak++
}

func (p *provider) outvoted() {
	p.rec.Invalid++
	p.rec.Streak = 0
	p.rec.Distrusted = true
}

// rank orders providers for work: speed times reliability; distrusted ones last.
func (p *provider) rank() float64 {
	ok := float64(p.rec.Valid + 1)
	r := ok / (ok + float64(p.rec.Invalid+p.rec.Errors+p.rec.Lost))
	if p.rec.Distrusted {
		r *= 0.25
	}
	return r / p.secPerRef()
}

func (s *Scheduler) provider(id string) *provider {
	p := s.provs[id]
	if p == nil {
		p = &provider{id: id, since: time.Now()}
		p.init()
		s.provs[id] = p
	}
	return p
}

// Session is one provider's connection to the scheduler. Deliver is called
// with grants once they are committed; it must not block for long.
type Session struct {
	s       *Scheduler
	p       *provider
	deliver func([]Assignment)
	want    int    // guarded by s.mu: how many more instances it asked for
	slots   int    // guarded by s.mu
	closed  bool   // guarded by s.mu
	onEnd   func() // guarded by s.mu; ends the connection when presence says offline
}

// OnEnd sets what ends the session's connection when the scheduler drops it
// (presence saw the provider go offline).
func (sess *Session) OnEnd(f func()) {
	sess.s.mu.Lock()
	defer sess.s.mu.Unlock()
	sess.onEnd = f
}

// Connect registers provider id with its host profile. holding lists the
// instances it still has (running or finished, not yet acknowledged): any
// other instance the scheduler had given it is re-issued at once. A new
// session replaces an older one of the same provider.
func (s *Scheduler) Connect(id string, prof Profile, holding []InstanceID, deliver func([]Assignment)) (*Session, error) {
	prof.sanitize()
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	p := s.provider(id)
	var end func()
	if p.sess != nil { // the older connection ends; the provider holds one
		p.sess.closed, end = true, p.sess.onEnd
	}
	p.rec.Profile = prof
	sess := &Session{s: s, p: p, deliver: deliver, slots: prof.Slots}
	p.sess, p.gone = sess, false
	held := map[instID]bool{}
	for _, h := range holding {
		held[instID{h.jobKey(), h.Unit, h.Attempt}] = true
	}
	ops := []op{p.save()}
	for iid := range p.active {
		if !held[iid] {
			ops = append(ops, s.lose(iid, "the provider restarted without it", now)...)
		}
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	if end != nil {
		end()
	}
	if err := s.commitNotify(s.ctx, ch); err != nil {
		return nil, err
	}
	s.kickDispatch()
	return sess, nil
}

// maxOutstanding bounds what one provider holds: twice its slots, so a slot
// never waits for a round trip, and no more.
func (sess *Session) maxOutstanding() int { return 2 * sess.slots }

// Want asks for up to n more instances; they arrive through deliver.
func (sess *Session) Want(n int) {
	s := sess.s
	s.mu.Lock()
	if !sess.closed {
		sess.want = min(max(0, n), sess.maxOutstanding())
	}
	s.mu.Unlock()
	s.kickDispatch()
}

// Started marks instances as running (soft state: not persisted).
func (sess *Session) Started(ids []InstanceID) {
	s := sess.s
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range ids {
		id := instID{i.jobKey(), i.Unit, i.Attempt}
		if u := s.active[id]; u != nil && sess.p.active[id] == u {
			u.running[id.attempt] = true
			s.settle(u, now)
		}
	}
}

// Report applies results and returns once they are committed; then the
// provider may forget them.
func (sess *Session) Report(ctx context.Context, rs []Report) error {
	s := sess.s
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var ops []op
	for _, r := range rs {
		if len(r.Output) > MaxOutput {
			r.Output, r.Err = nil, fmt.Sprintf("output of %d bytes exceeds %d", len(r.Output), MaxOutput)
		}
		ops = append(ops, s.report(sess.p, r, now)...)
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	err := s.commitNotify(ctx, ch)
	s.kickDispatch()
	return err
}

// Close ends the session. The provider keeps its instances for Grace, in
// case it comes back.
func (sess *Session) Close() {
	s := sess.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closed {
		return
	}
	sess.closed = true
	if sess.p.sess == sess {
		sess.p.sess = nil
		sess.p.since = time.Now()
	}
}

// Offline re-issues everything provider id holds now (presence saw it go),
// and drops its session if one still looks alive.
func (s *Scheduler) Offline(id string) {
	now := time.Now()
	s.mu.Lock()
	p := s.provs[id]
	var ops []op
	var end func()
	if p != nil {
		if sess := p.sess; sess != nil {
			sess.closed, p.sess, p.since, end = true, nil, now, sess.onEnd
		}
		p.gone = true
		for iid := range p.active {
			ops = append(ops, s.lose(iid, "the provider went offline", now)...)
		}
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	if end != nil {
		end()
	}
	if err := s.commitNotify(s.ctx, ch); err != nil {
		s.cfg.Logger.Warn("commit", "err", err)
	}
}

func (s *Scheduler) dispatchLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		s.dispatch()
	}
}

// dispatch hands queued units to the providers that want them, best ranked
// first, commits the grants in one transaction and only then delivers them.
func (s *Scheduler) dispatch() {
	now := time.Now()
	s.mu.Lock()
	var sessions []*Session
	for _, p := range s.provs {
		if p.sess != nil && p.sess.want > 0 && len(p.active) < p.sess.maxOutstanding() {
			sessions = append(sessions, p.sess)
		}
	}
	slices.SortFunc(sessions, func(a, b *Session) int { return cmp.Compare(b.p.rank(), a.p.rank()) })
	grants := map[*Session][]instID{}
	var ops []op
	for _, sess := range sessions {
		n := min(sess.want, sess.maxOutstanding()-len(sess.p.active))
		for _, u := range s.pick(sess.p, n, now) {
			id, o := s.issue(u, sess.p, now)
			ops = append(ops, o...)
			grants[sess] = append(grants[sess], id)
			sess.want--
		}
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	if ch == nil {
		return
	}
	if err := s.wait(s.ctx, ch); err != nil {
		s.cfg.Logger.Warn("commit grants", "err", err)
		return // the instances time out and are re-issued
	}
	s.deliver(grants)
}

func (s *Scheduler) deliver(grants map[*Session][]instID) {
	err := s.db.View(func(tx *bolt.Tx) error {
		inputs := tx.Bucket(bInputs)
		for sess, ids := range grants {
			as := make([]Assignment, 0, len(ids))
			s.mu.Lock()
			for _, id := range ids {
				u := s.active[id]
				if u == nil {
					continue
				}
				in := u.inst(id.attempt)
				as = append(as, Assignment{ID: InstanceID{id.job, id.idx, id.attempt}, Task: u.job.rec.Spec.Task, Deadline: in.Deadline})
			}
			closed := sess.closed
			s.mu.Unlock()
			if closed {
				continue // the provider reconnects and reports what it holds
			}
			for i := range as {
				as[i].Input = slices.Clone(inputs.Get(unitKey(as[i].ID.Job, as[i].ID.Unit)))
			}
			sess.deliver(as)
		}
		return nil
	})
	if err != nil {
		s.cfg.Logger.Warn("deliver", "err", err)
	}
}

// pick takes up to n units p may run from the queue: from the classes whose
// requirements p meets, the best by priority and age, never one p already
// holds an instance of, and never more than p can finish by the deadlines
// at its measured speed.
func (s *Scheduler) pick(p *provider, n int, now time.Time) []*unit {
	var out []*unit
	for len(out) < n {
		var best *unit
		var skipped []*unit
		for _, q := range s.classes {
			if q.Len() == 0 || q.req.Unmet(p.rec.Profile) != "" {
				continue
			}
			var cand *unit
			for tries := 0; q.Len() > 0 && tries < 64; tries++ {
				u := q.units[0]
				if s.holds(p, u) || !s.fits(p, u) {
					skipped = append(skipped, heapPop(q))
					continue
				}
				cand = u
				break
			}
			if cand != nil && (best == nil || better(cand, best)) {
				best = cand
			}
		}
		for _, u := range skipped {
			s.enqueue(u, u.queued)
		}
		if best == nil {
			break
		}
		s.dequeue(best)
		out = append(out, best)
		p.load += s.cost(best, p) // counted again in issue; undone below
	}
	for _, u := range out {
		p.load -= s.cost(u, p)
	}
	return out
}

func better(a, b *unit) bool {
	if a.rec.Priority != b.rec.Priority {
		return a.rec.Priority > b.rec.Priority
	}
	return a.rec.Seq < b.rec.Seq
}

func (s *Scheduler) holds(p *provider, u *unit) bool {
	for _, in := range u.rec.Inst {
		if in.Prov == p.id && (in.State == iActive || in.State == iReported || in.State == iOutvoted) {
			return true
		}
	}
	return false
}

// fits reports whether p, with what it already holds spread over its slots,
// would finish u before u's deadline (with a 10% margin).
func (s *Scheduler) fits(p *provider, u *unit) bool {
	if u.rec.Estimate == 0 {
		return true
	}
	slots := float64(max(1, p.rec.Profile.Slots))
	finish := (p.load + s.cost(u, p)) / slots
	return finish <= 0.9*time.Duration(u.rec.Deadline).Seconds()
}

func heapPop(q *classQ) *unit { return heap.Pop(q).(*unit) }
