package farm

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Worker is a provider's engine apart from the network: it runs assignments
// on its slots and keeps each outcome until the scheduler acknowledges it, so
// a lost connection or a restarted scheduler loses no finished work.
type Worker struct {
	exec  *Executor
	slots int
	queue chan Assignment
	wg    sync.WaitGroup

	mu      sync.Mutex
	known   map[InstanceID]bool   // guarded by mu; queued, running or unacknowledged
	running map[InstanceID]bool   // guarded by mu
	done    map[InstanceID]Report // guarded by mu; finished, not acknowledged
	started []InstanceID          // guarded by mu; not yet told
	ran     uint64                // guarded by mu
	busy    time.Duration         // guarded by mu; slot time spent running
	signal  chan struct{}         // closed and replaced when there is news
}

// NewWorker returns a worker with slots parallel runs (at least 1).
func NewWorker(exec *Executor, slots int) *Worker {
	slots = min(max(1, slots), MaxSlots)
	return &Worker{exec: exec, slots: slots, queue: make(chan Assignment, 2*slots),
		known: map[InstanceID]bool{}, running: map[InstanceID]bool{}, done: map[InstanceID]Report{}, signal: make(chan struct{})}
}

// Slots is how many units the worker runs at once.
func (w *Worker) Slots() int { return w.slots }

// Run runs the slots until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	for range w.slots {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-w.queue:
					w.run(ctx, a)
				}
			}
		}()
	}
	w.wg.Wait()
}

func (w *Worker) run(ctx context.Context, a Assignment) {
	w.mu.Lock()
	w.running[a.ID] = true
	w.started = append(w.started, a.ID)
	w.notify()
	w.mu.Unlock()
	t := time.Now()
	out, err := w.exec.Run(ctx, a.Task, a.Input)
	el := time.Since(t)
	if ctx.Err() != nil {
		return // shutting down: the scheduler re-issues it
	}
	r := Report{Inst: a.ID, Output: out, Elapsed: el}
	if err != nil {
		r.Output, r.Err = nil, clip(err.Error(), MaxErrorText)
	}
	w.mu.Lock()
	delete(w.running, a.ID)
	w.done[a.ID] = r
	w.ran++
	w.busy += el
	w.notify()
	w.mu.Unlock()
}

func (w *Worker) notify() {
	close(w.signal)
	w.signal = make(chan struct{})
}

// Add queues assignments; ones it already holds are ignored. It never
// blocks: the worker asks for no more than it has room for.
func (w *Worker) Add(as []Assignment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range as {
		if w.known[a.ID] {
			continue
		}
		select {
		case w.queue <- a:
			w.known[a.ID] = true
		default: // more than asked for: the scheduler re-issues it after Grace
		}
	}
}

// Free is how many more assignments the worker has room for.
func (w *Worker) Free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(0, 2*w.slots-len(w.known)+len(w.done))
}

// Holding lists every instance the worker has not been told to forget.
func (w *Worker) Holding() []InstanceID {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []InstanceID
	for id := range w.known {
		out = append(out, id)
	}
	return out
}

// news returns what is new since the last call: started instances and
// unacknowledged reports (all of them), and a channel closed on more news.
func (w *Worker) news() ([]InstanceID, []Report, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.started
	w.started = nil
	var rs []Report
	for _, r := range w.done {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b Report) int { return int(a.Inst.Unit) - int(b.Inst.Unit) })
	return st, rs, w.signal
}

// ack forgets acknowledged reports.
func (w *Worker) ack(rs []Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rs {
		delete(w.done, r.Inst)
		delete(w.known, r.Inst)
	}
}

// Ran is how many units the worker finished, and the slot time they took.
func (w *Worker) Ran() (uint64, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ran, w.busy
}

// link is the worker's side of a connection to a scheduler.
type link interface {
	want(n int) error
	started(ids []InstanceID) error
	report(ctx context.Context, rs []Report) error
}

// pump keeps a link fed: it tells the scheduler what started, reports what
// finished (forgetting it once acknowledged) and asks for as much work as
// there is room for. It returns when ctx ends or the link fails.
func (w *Worker) pump(ctx context.Context, l link) error {
	lastWant := -1
	for {
		st, rs, sig := w.news()
		if len(st) > 0 {
			if err := l.started(st); err != nil {
				return err
			}
		}
		if len(rs) > 0 {
			if len(rs) > 256 {
				rs = rs[:256]
			}
			if err := l.report(ctx, rs); err != nil {
				return err
			}
			w.ack(rs)
		}
		if f := w.Free(); f != lastWant || (len(rs) > 0 && f > 0) {
			if err := l.want(f); err != nil {
				return err
			}
			lastWant = f
		}
		if len(rs) == 256 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sig:
		}
	}
}

// localLink connects a worker to a scheduler in the same process.
type localLink struct{ sess *Session }

func (l localLink) want(n int) error                              { l.sess.Want(n); return nil }
func (l localLink) started(ids []InstanceID) error                { l.sess.Started(ids); return nil }
func (l localLink) report(ctx context.Context, rs []Report) error { return l.sess.Report(ctx, rs) }

// ServeLocal connects w as provider id to a scheduler in the same process
// and works until ctx ends. w.Run must be running.
func (w *Worker) ServeLocal(ctx context.Context, s *Scheduler, id string, prof Profile) error {
	prof.Slots = w.slots
	sess, err := s.Connect(id, prof, w.Holding(), w.Add)
	if err != nil {
		return err
	}
	defer sess.Close()
	return w.pump(ctx, localLink{sess})
}
