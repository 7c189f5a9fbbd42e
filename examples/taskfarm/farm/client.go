package farm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

func (srv *Server) serveClient(ctx context.Context, c *pipes.MsgConn, out *outbox) {
	owner := c.RemotePeer().String()
	var wg sync.WaitGroup
	defer wg.Wait()
	stopWatch := func() {}
	defer func() { stopWatch() }()
	reply := func(seq uint64, f *frame, err error) {
		if err != nil {
			f = &frame{T: tError, Err: clip(err.Error(), MaxErrorText)}
		}
		f.Seq = seq
		out.push(f)
	}
	for {
		f, err := recvFrame(ctx, c)
		if err != nil {
			if errors.Is(err, ErrBadFrame) || errors.Is(err, ErrTooLarge) {
				out.push(&frame{T: tError, Err: err.Error()})
			}
			return
		}
		switch f.T {
		case tSubmit:
			if f.Job == nil {
				reply(f.Seq, nil, fmt.Errorf("%w: submit without a job", ErrBadFrame))
				continue
			}
			id, err := srv.submit(ctx, owner, *f.Job, f.Units)
			reply(f.Seq, &frame{T: tOK, JobID: id}, err)
		case tAdd:
			reply(f.Seq, &frame{T: tOK, JobID: f.JobID}, srv.s.AddUnits(ctx, owner, f.JobID, f.Units))
		case tCancel:
			reply(f.Seq, &frame{T: tOK, JobID: f.JobID}, srv.s.Cancel(ctx, owner, f.JobID))
		case tStatus:
			st := srv.s.Stats()
			reply(f.Seq, &frame{T: tStats, Stats: &st}, nil)
		case tUnit:
			info, err := srv.s.Unit(owner, f.JobID, uint32(f.N))
			reply(f.Seq, &frame{T: tUnit, Unit: &info}, err)
		case tWatch:
			stopWatch()
			wctx, cancel := context.WithCancel(ctx)
			stopWatch = func() { cancel(); wg.Wait() }
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.watch(wctx, out, owner, f.JobID, f.After, f.Seq)
			}()
		default:
			reply(f.Seq, nil, fmt.Errorf("%w: frame type %d is not for clients", ErrBadFrame, f.T))
			return
		}
	}
}

// submit takes a copy of a wasm job's module from the client first, so the
// job runs even when the client goes away.
func (srv *Server) submit(ctx context.Context, owner string, spec JobSpec, units []UnitSpec) (string, error) {
	if err := spec.Task.normalize(); err != nil {
		return "", err
	}
	if spec.Task.Kind == KindWasm {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := srv.blobs.Get(fctx, spec.Task.Module, min(MaxModule, max(spec.Task.Size, 1)), []string{owner})
		cancel()
		if err != nil {
			return "", fmt.Errorf("farm: the scheduler could not fetch the module: %w", err)
		}
	}
	return srv.s.Submit(ctx, owner, spec, units)
}

// watch pushes a job's committed results from after on, in frames of at
// most about half MaxFrame, until the job ends or ctx is done.
func (srv *Server) watch(ctx context.Context, out *outbox, owner, job string, after, seq uint64) {
	for {
		changed := srv.s.Changed()
		rs, done, err := srv.s.Results(owner, job, after, 256)
		if err != nil {
			out.push(&frame{T: tError, Seq: seq, Err: err.Error()})
			return
		}
		for len(rs) > 0 {
			n, size := 0, 0
			for n < len(rs) && (n == 0 || size+len(rs[n].Output) < MaxFrame/2) {
				size += len(rs[n].Output) + 64
				n++
			}
			after = rs[n-1].Seq
			out.push(&frame{T: tResults, Seq: seq, Results: rs[:n], Done: done && n == len(rs)})
			rs = rs[n:]
		}
		if done {
			if after == 0 {
				out.push(&frame{T: tResults, Seq: seq, Done: true})
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(heartbeat):
			out.push(&frame{T: tResults, Seq: seq}) // a heartbeat: the client watches for silence
		}
	}
}

// ClientConfig configures a client.
type ClientConfig struct {
	Node NodeConfig
	// Invite is the farm invite.
	Invite string
}

// Client is a farm's customer (seed 004's Client): it submits jobs, serves
// their modules, and receives the validated results as a stream.
type Client struct {
	*Node
	sched peer.ID

	mu   sync.Mutex // serialises requests on rpc
	rpc  *pipes.MsgConn
	seq  uint64
	once sync.Once
}

// JoinClient joins the farm an invite names as a client.
func JoinClient(ctx context.Context, cfg ClientConfig) (_ *Client, err error) {
	n, err := openNode(ctx, cfg.Node)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if _, err := n.join(ctx, cfg.Invite); err != nil {
		return nil, err
	}
	id, err := n.findScheduler(ctx)
	if err != nil {
		return nil, err
	}
	return &Client{Node: n, sched: id}, nil
}

// Close closes the client. Safe twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.rpc != nil {
		c.rpc.Close()
		c.rpc = nil
	}
	c.mu.Unlock()
	return c.Node.Close()
}

// call sends one request and waits for its answer, redialling once when the
// connection broke (a restarted scheduler).
func (c *Client) call(ctx context.Context, f *frame) (*frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for try := 0; try < 2; try++ {
		if c.rpc == nil {
			if c.rpc, err = c.dial(ctx, c.sched, &frame{T: tHello, Role: roleClient}); err != nil {
				return nil, err
			}
		}
		c.seq++
		f.Seq = c.seq
		var r *frame
		if err = sendFrame(ctx, c.rpc, f); err == nil {
			for {
				if r, err = recvFrame(ctx, c.rpc); err != nil || r.Seq == f.Seq {
					break
				}
			}
		}
		if err == nil {
			if r.T == tError {
				return nil, fmt.Errorf("%w: %s", ErrRefused, r.Err)
			}
			return r, nil
		}
		c.rpc.Close()
		c.rpc = nil
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// SubmitWasm offers module to the farm and submits a job running it.
func (c *Client) SubmitWasm(ctx context.Context, name string, module []byte, t Task, units []UnitSpec, adaptive bool) (string, error) {
	ref, err := c.blobs.Put(ctx, module)
	if err != nil {
		return "", err
	}
	t.Kind, t.Module, t.Size = KindWasm, ref, int64(len(module))
	return c.Submit(ctx, JobSpec{Name: name, Task: t, Adaptive: adaptive}, units)
}

// Submit submits a job and its units (in frames of MaxUnitsPerFrame or
// about MaxFrame/2 bytes) and returns the job ID.
func (c *Client) Submit(ctx context.Context, spec JobSpec, units []UnitSpec) (string, error) {
	first := true
	var job string
	for first || len(units) > 0 {
		n, size := 0, 0
		for n < len(units) && n < MaxUnitsPerFrame && size+len(units[n].Input) < MaxFrame/2 {
			size += len(units[n].Input) + 64
			n++
		}
		f := &frame{T: tAdd, JobID: job, Units: units[:n]}
		if first {
			f.T, f.Job = tSubmit, &spec
		}
		r, err := c.call(ctx, f)
		if err != nil {
			return job, err
		}
		job, first, units = r.JobID, false, units[n:]
	}
	return job, nil
}

// Cancel cancels a job: its units that have not ended fail.
func (c *Client) Cancel(ctx context.Context, job string) error {
	_, err := c.call(ctx, &frame{T: tCancel, JobID: job})
	return err
}

// Stats returns the farm's unit counts and providers.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	r, err := c.call(ctx, &frame{T: tStatus})
	if err != nil || r.Stats == nil {
		return Stats{}, errors.Join(err, errors.New("farm: no stats in the answer"))
	}
	return *r.Stats, nil
}

// Unit returns the state of one unit of a job, with why it waits.
func (c *Client) Unit(ctx context.Context, job string, idx uint32) (UnitInfo, error) {
	r, err := c.call(ctx, &frame{T: tUnit, JobID: job, N: int(idx)})
	if err != nil || r.Unit == nil {
		return UnitInfo{}, errors.Join(err, errors.New("farm: no unit in the answer"))
	}
	return *r.Unit, nil
}

// Results streams a job's results after sequence number after, each once,
// in order, as the scheduler validates them, until the job has ended. It
// reconnects when the scheduler restarts, resuming after the last result it
// yielded. Errors other than ctx ending are retried; ctx bounds the wait.
func (c *Client) Results(ctx context.Context, job string, after uint64) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		backoff := 100 * time.Millisecond
		for {
			done, err := c.stream(ctx, job, &after, yield)
			if done {
				return
			}
			if ctx.Err() != nil {
				yield(Result{}, ctx.Err())
				return
			}
			if errors.Is(err, ErrRefused) {
				yield(Result{}, err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// stream follows one connection; done means the job ended or the consumer stopped.
func (c *Client) stream(ctx context.Context, job string, after *uint64, yield func(Result, error) bool) (bool, error) {
	conn, err := c.dial(ctx, c.sched, &frame{T: tHello, Role: roleClient})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if err := sendFrame(ctx, conn, &frame{T: tWatch, JobID: job, After: *after, Seq: 1}); err != nil {
		return false, err
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, silence)
		f, err := recvFrame(rctx, conn)
		cancel()
		if err != nil {
			if ctx.Err() == nil && rctx.Err() != nil {
				c.p.Libp2p().Host.Network().ClosePeer(lpeer.ID(c.sched)) // silent: a dead connection
			}
			return false, err
		}
		switch f.T {
		case tError:
			return false, fmt.Errorf("%w: %s", ErrRefused, f.Err)
		case tResults:
			for _, r := range f.Results {
				if r.Seq <= *after {
					continue
				}
				*after = r.Seq
				if !yield(r, nil) {
					return true, nil
				}
			}
			if f.Done {
				return true, nil
			}
		}
	}
}
