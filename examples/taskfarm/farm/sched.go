package farm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchedulerConfig configures a Scheduler. The zero value with Dir set works.
type SchedulerConfig struct {
	// Dir holds scheduler.db. Required.
	Dir string
	// TrustAfter is the run of valid results after which a provider that was
	// never outvoted is trusted and may run units of Adaptive jobs alone.
	// Default 10; negative turns adaptive replication off.
	TrustAfter int
	// SpotCheck is the share of a trusted provider's units that are
	// replicated anyway. Default 0.1.
	SpotCheck float64
	// Grace is how long a disconnected provider keeps its units before they
	// are re-issued, so a provider that reconnects (or a scheduler that
	// restarts) loses nothing. Presence marking it offline re-issues at once.
	// Default 10 s.
	Grace time.Duration
	// Tick is how often deadlines are checked. Default 200 ms.
	Tick   time.Duration
	Logger *slog.Logger
}

func (c *SchedulerConfig) defaults() {
	if c.TrustAfter == 0 {
		c.TrustAfter = 10
	}
	if c.SpotCheck <= 0 {
		c.SpotCheck = 0.1
	}
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

type jobKey [8]byte

func (k jobKey) String() string { return hex.EncodeToString(k[:]) }

func parseJobKey(s string) (jobKey, error) {
	var k jobKey
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%w: %q", ErrUnknownJob, s)
	}
	copy(k[:], b)
	return k, nil
}

type job struct {
	key     jobKey
	rec     jobRec
	done    uint32 // units in a terminal state
	nextSeq uint64 // last result sequence number used
}

type instID struct {
	job     jobKey
	idx     uint32
	attempt uint16
}

type unit struct {
	job     *job
	idx     uint32
	rec     unitRec
	outs    map[uint16][]byte // reported outputs awaiting the quorum
	running map[uint16]bool   // soft: instances a provider said it started
	queued  time.Time         // when it last entered the queue
	qi      int               // index in its class heap; -1 when not queued
}

// Scheduler is the farm's server role (seed 004's Server): it keeps jobs and
// units in bbolt, matches units to providers, tracks each unit's state
// machine, validates results by quorum and hands them to clients. It is the
// engine behind the network node (Node); tests and programs may drive it
// directly.
type Scheduler struct {
	cfg SchedulerConfig
	db  *bolt.DB
	com *committer
	rng *mrand.Rand

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu      sync.Mutex
	jobs    map[jobKey]*job                // guarded by mu
	units   map[[12]byte]*unit             // guarded by mu; every unit of every job
	classes map[Requirements]*classQ       // guarded by mu
	provs   map[string]*provider           // guarded by mu
	counts  map[State]int                  // guarded by mu
	seq     uint64                         // guarded by mu; FIFO counter
	changed chan struct{}                  // guarded by mu; closed when results are committed
	closed  bool                           // guarded by mu
	active  map[instID]*unit               // guarded by mu; every active instance
	issued  uint64                         // guarded by mu; instances handed out
	ended   uint64                         // guarded by mu; units ended (validated or failed)
	byOwner map[string]map[jobKey]struct{} // guarded by mu
}

// OpenScheduler opens (or creates) the scheduler state in cfg.Dir and
// recovers what a previous run left: every unit is where its last committed
// transition put it, and instances out on providers stay theirs until the
// provider reports, misses the deadline, or stays away longer than Grace.
func OpenScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Dir == "" {
		return nil, errors.New("farm: the scheduler needs a directory")
	}
	cfg.defaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	db, err := openDB(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg: cfg, db: db, kick: make(chan struct{}, 1), rng: mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		jobs: map[jobKey]*job{}, units: map[[12]byte]*unit{}, classes: map[Requirements]*classQ{},
		provs: map[string]*provider{}, counts: map[State]int{}, changed: make(chan struct{}),
		active: map[instID]*unit{}, byOwner: map[string]map[jobKey]struct{}{},
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.com = newCommitter(db)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.dispatchLoop()
	go s.tickLoop()
	return s, nil
}

// Close stops the scheduler; what was committed stays. Safe twice.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("farm: scheduler: %w", ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.com.close()
	return s.db.Close()
}

func (s *Scheduler) load() error {
	now := time.Now()
	return s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bJobs).ForEach(func(k, v []byte) error {
			j := &job{}
			if len(k) != 8 || dec.Unmarshal(v, &j.rec) != nil {
				return fmt.Errorf("farm: corrupt job record %x", k)
			}
			copy(j.key[:], k)
			s.jobs[j.key] = j
			s.ownJob(j)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bProvs).ForEach(func(k, v []byte) error {
			p := &provider{id: string(k)}
			if dec.Unmarshal(v, &p.rec) != nil {
				return nil // a provider's history is not worth refusing to start over
			}
			p.init()
			s.provs[p.id] = p
			return nil
		})
		if err != nil {
			return err
		}
		outs := tx.Bucket(bOuts)
		err = tx.Bucket(bUnits).ForEach(func(k, v []byte) error {
			var jk jobKey
			copy(jk[:], k)
			j := s.jobs[jk]
			u := &unit{job: j, idx: beUint32(k[8:]), qi: -1, outs: map[uint16][]byte{}, running: map[uint16]bool{}}
			if j == nil || len(k) != 12 || dec.Unmarshal(v, &u.rec) != nil {
				return fmt.Errorf("farm: corrupt unit record %x", k)
			}
			s.units[[12]byte(k)] = u
			s.seq = max(s.seq, u.rec.Seq)
			s.counts[u.rec.State]++
			if u.rec.State.Terminal() {
				j.done++
				return nil
			}
			for i := range u.rec.Inst {
				in := &u.rec.Inst[i]
				switch in.State {
				case iActive:
					p := s.provider(in.Prov)
					p.active[instID{jk, u.idx, in.Attempt}] = u
					s.active[instID{jk, u.idx, in.Attempt}] = u
					p.since = now // disconnected since the restart: Grace starts now
				case iReported:
					if b := outs.Get(outKey(jk, u.idx, in.Attempt)); b != nil {
						u.outs[in.Attempt] = slices.Clone(b)
					}
				}
			}
			if s.needMore(u) > 0 {
				s.enqueue(u, now)
			}
			return nil
		})
		if err != nil {
			return err
		}
		c := tx.Bucket(bResults).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) == 16 {
				if j := s.jobs[jobKey(k[:8])]; j != nil {
					j.nextSeq = max(j.nextSeq, beUint64(k[8:]))
				}
			}
		}
		return nil
	})
}

func (s *Scheduler) ownJob(j *job) {
	m := s.byOwner[j.rec.Owner]
	if m == nil {
		m = map[jobKey]struct{}{}
		s.byOwner[j.rec.Owner] = m
	}
	m[j.key] = struct{}{}
}

// Submit creates a job for owner (a member's peer ID) with its first units;
// more may follow with AddUnits. It returns once the job is committed.
func (s *Scheduler) Submit(ctx context.Context, owner string, spec JobSpec, units []UnitSpec) (string, error) {
	if err := spec.Task.normalize(); err != nil {
		return "", err
	}
	if len(spec.Name) > MaxName {
		return "", fmt.Errorf("%w: job name longer than %d bytes", ErrTooLarge, MaxName)
	}
	var jk jobKey
	rand.Read(jk[:])
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	live := 0
	for k := range s.byOwner[owner] {
		if j := s.jobs[k]; j != nil && !j.complete() {
			live++
		}
	}
	if live >= MaxJobsPerClient {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %d unfinished jobs (at most %d per client)", ErrRefused, live, MaxJobsPerClient)
	}
	j := &job{key: jk, rec: jobRec{Spec: spec, Owner: owner, Created: time.Now().UnixMilli()}}
	s.jobs[jk] = j
	s.ownJob(j)
	ch := s.addLocked([]op{{bJobs, jk[:], mustEnc(j.rec)}})
	s.mu.Unlock()
	if err := s.wait(ctx, ch); err != nil {
		return "", err
	}
	if len(units) > 0 {
		if err := s.AddUnits(ctx, owner, jk.String(), units); err != nil {
			return "", err
		}
	}
	return jk.String(), nil
}

// AddUnits adds units to a job of owner's, numbered on from the job's
// current count, and returns once they are committed.
func (s *Scheduler) AddUnits(ctx context.Context, owner, jobID string, units []UnitSpec) error {
	jk, err := parseJobKey(jobID)
	if err != nil {
		return err
	}
	if len(units) > MaxUnitsPerFrame {
		return fmt.Errorf("%w: %d units in one call (at most %d)", ErrTooLarge, len(units), MaxUnitsPerFrame)
	}
	for i := range units {
		if err := units[i].normalize(); err != nil {
			return fmt.Errorf("unit %d: %w", i, err)
		}
	}
	s.mu.Lock()
	j := s.jobs[jk]
	switch {
	case j == nil || j.rec.Owner != owner:
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownJob, jobID)
	case j.rec.Cancelled:
		s.mu.Unlock()
		return fmt.Errorf("%w: job %s is cancelled", ErrRefused, jobID)
	case uint64(j.rec.Units)+uint64(len(units)) > MaxUnitsPerJob:
		s.mu.Unlock()
		return fmt.Errorf("%w: more than %d units in one job", ErrTooLarge, MaxUnitsPerJob)
	}
	now := time.Now()
	ops := make([]op, 0, 2*len(units)+1)
	for _, us := range units {
		s.seq++
		u := &unit{job: j, idx: j.rec.Units, qi: -1, outs: map[uint16][]byte{}, running: map[uint16]bool{}}
		u.rec = unitRec{State: Queued, Seq: s.seq, Priority: us.Priority, Req: us.Req, Deadline: int64(us.Deadline),
			Estimate: us.Estimate, Quorum: us.Quorum, MaxAttempts: us.MaxAttempts, Need: us.Quorum}
		j.rec.Units++
		k := unitKey(jk, u.idx)
		s.units[[12]byte(k)] = u
		s.counts[Queued]++
		ops = append(ops, op{bInputs, k, append([]byte{}, us.Input...)}, op{bUnits, k, mustEnc(u.rec)})
		s.enqueue(u, now)
	}
	ch := s.addLocked(append(ops, op{bJobs, jk[:], mustEnc(j.rec)}))
	s.mu.Unlock()
	if err := s.wait(ctx, ch); err != nil {
		return err
	}
	s.kickDispatch()
	return nil
}

// Cancel fails every unit of owner's job that has not ended.
func (s *Scheduler) Cancel(ctx context.Context, owner, jobID string) error {
	jk, err := parseJobKey(jobID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	j := s.jobs[jk]
	if j == nil || j.rec.Owner != owner {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownJob, jobID)
	}
	j.rec.Cancelled = true
	ops := []op{{bJobs, jk[:], mustEnc(j.rec)}}
	for i := uint32(0); i < j.rec.Units; i++ {
		u := s.units[[12]byte(unitKey(jk, i))]
		if u != nil && !u.rec.State.Terminal() {
			ops = append(ops, s.fail(u, "cancelled by the client")...)
		}
	}
	ch := s.addLocked(ops)
	s.mu.Unlock()
	return s.commitNotify(ctx, ch)
}

func (s *Scheduler) wait(ctx context.Context, ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// addLocked queues ops for the next transaction. It must be called under
// s.mu, in the order of the changes, so that later writes win and result
// sequence numbers commit in order. nil when there is nothing to write.
func (s *Scheduler) addLocked(ops []op) <-chan error {
	if len(ops) == 0 {
		return nil
	}
	return s.com.add(ops)
}

// commitNotify waits for a commit queued by addLocked and then wakes result
// watchers.
func (s *Scheduler) commitNotify(ctx context.Context, ch <-chan error) error {
	if ch == nil {
		return nil
	}
	err := s.wait(ctx, ch)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return err
}

// Changed returns a channel closed when results are next committed.
func (s *Scheduler) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Results returns up to max committed results of owner's job after sequence
// number after, in order, and whether the job has ended (every unit
// submitted so far is validated or failed).
func (s *Scheduler) Results(owner, jobID string, after uint64, max int) ([]Result, bool, error) {
	jk, err := parseJobKey(jobID)
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	j := s.jobs[jk]
	if j == nil || j.rec.Owner != owner {
		s.mu.Unlock()
		return nil, false, fmt.Errorf("%w: %s", ErrUnknownJob, jobID)
	}
	total := j.rec.Units
	s.mu.Unlock()
	var out []Result
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bResults).Cursor()
		for k, v := c.Seek(resultKey(jk, after+1)); k != nil && len(out) < max; k, v = c.Next() {
			if jobKey(k[:8]) != jk {
				break
			}
			var r Result
			if err := dec.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("farm: corrupt result %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	last := after
	if len(out) > 0 {
		last = out[len(out)-1].Seq
	}
	return out, total > 0 && last >= uint64(total), err
}

func (j *job) complete() bool { return j.rec.Cancelled || (j.rec.Units > 0 && j.done >= j.rec.Units) }

func (s *Scheduler) kickDispatch() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func beUint32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func beUint64(b []byte) uint64 { return uint64(beUint32(b))<<32 | uint64(beUint32(b[4:])) }
