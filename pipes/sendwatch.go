package pipes

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// sendWatch bounds MsgConn writes by the ctx of the Send making them. A
// ctx's end sets a write deadline in the past on the stream being written,
// which ends the write. Registering with context.AfterFunc costs an
// allocation and a lock of the ctx's parent, a large share of a small
// message's cost, so the registration is kept from one Send to the next
// while their ctx ends together (the same Done channel), as a sender
// looping with one ctx does, and replaced when a Send brings another.
type sendWatch struct {
	mu    sync.Mutex
	done  <-chan struct{} // Done of the registered ctx
	stop  func() bool     // undoes the registration
	cur   <-chan struct{} // Done of the Send writing now; nil between writes
	str   network.Stream  // the stream that Send writes
	fired bool            // the deadline was set during this write
	// closed is set when the connection ends (forget), whether or not
	// Close is called: nothing registers after it, so a ctx that outlives
	// a dropped connection does not keep it.
	closed bool
}

// begin registers ctx (unless its Done is registered already) and marks a
// write of str under ctx as started. It fails with ctx's error when ctx has
// ended, and with net.ErrClosed once the connection has ended: the write
// must not start. Called with wmu held.
func (w *sendWatch) begin(ctx context.Context, str network.Stream) error {
	done := ctx.Done()
	if done == nil {
		return nil // never ends: nothing to watch
	}
	var old func() bool
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return net.ErrClosed
	}
	if done != w.done {
		old = w.stop
		w.done = done
		w.stop = context.AfterFunc(ctx, func() { w.ended(done) })
	}
	w.cur, w.str, w.fired = done, str, false
	err := ctx.Err()
	if err != nil {
		w.cur, w.str = nil, nil
	}
	w.mu.Unlock()
	if old != nil {
		old() // its callback, if running, finds cur changed and does nothing
	}
	return err
}

// end marks the write as over; if ctx ended during it, the deadline it set
// is cleared, so that it does not fail the next write. Called with wmu held.
func (w *sendWatch) end(str network.Stream) {
	w.mu.Lock()
	fired := w.fired
	w.cur, w.str, w.fired = nil, nil, false
	w.mu.Unlock()
	if fired {
		_ = str.SetWriteDeadline(time.Time{})
	}
}

// ended runs when a registered ctx ends: it ends the write in progress
// under that ctx, if there is one.
func (w *sendWatch) ended(done <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == done && w.str != nil {
		_ = w.str.SetWriteDeadline(time.Now())
		w.fired = true
	}
}

// close drops the registration for good, so that a ctx that outlives the
// connection does not keep it.
func (w *sendWatch) close() {
	w.mu.Lock()
	stop := w.stop
	w.stop, w.done, w.closed = nil, nil, true
	w.mu.Unlock()
	if stop != nil {
		stop()
	}
}
