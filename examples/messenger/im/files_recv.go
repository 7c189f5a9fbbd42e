package im

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/content/safename"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// MaxReceivesPerContact bounds the files one contact's offers fetch at once;
// more offers are refused (not for good) until some end.
const MaxReceivesPerContact = 4

// receiveSlot is one offer being fetched, by sender and transfer.
type receiveSlot struct {
	from   peer.ID
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive ends
}

func (m *Messenger) acceptFiles(l *pipes.Listener) {
	defer m.wg.Done()
	sweepPartials(m.Downloads())
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer c.Close()
			stop := context.AfterFunc(m.ctx, func() { c.Close() })
			defer stop()
			if err := m.receive(c.(*pipes.Conn)); err != nil {
				m.log.Debug("file receive", "err", err)
			}
		}()
	}
}

// receive takes one offer: it checks it, fetches the file from the sender
// with the content service into a partial file (resuming one an earlier
// offer left), and places it in Downloads. The sender ends the offer by
// closing the pipe; the partial file then waits for the next offer.
func (m *Messenger) receive(c *pipes.Conn) error {
	from := c.RemotePeer()
	w := msgio.NewVarintWriter(c)
	reply := func(r fileReply) error {
		b, _ := enc.Marshal(r)
		_ = c.SetWriteDeadline(time.Now().Add(replyTimeout))
		return w.WriteMsg(b)
	}
	contact, ok := m.st.contact(from)
	if !ok || contact.State != Accepted {
		return reply(fileReply{Err: "not a contact"})
	}
	r := msgio.NewVarintReaderSize(c, 4096)
	var h fileHeader
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := readMsg(r, &h); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Time{})
	if err := validHeader(h); err != nil {
		return reply(fileReply{Err: "bad file header: " + err.Error(), Final: true})
	}
	if m.received(from, h.ID) {
		return reply(fileReply{Done: true}) // our Done was lost on the way
	}
	key := senderTag(from) + h.ID
	ctx, cancel, release, err := m.takeSlot(from, key)
	if err != nil {
		return reply(fileReply{Err: err.Error()})
	}
	defer release()
	// The sender ends the offer by closing the pipe (it sends nothing more):
	// the fetch stops with it.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<10))
		cancel()
	}()
	defer func() { c.Close(); <-gone }()

	dir := m.Downloads()
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // as the content service records it
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return reply(fileReply{Err: "receiver cannot store files"})
	}
	part := partialName(dir, key)
	held := partialHeld(part)
	if err := admitPartial(dir, key, h.Size, held); err != nil {
		return reply(fileReply{Err: err.Error(), Final: errors.Is(err, errNoSpace)})
	}
	name := safename.SafeName(h.Name)
	t := m.transfer(Transfer{ID: h.ID, Peer: from}.Key(), func() *Transfer {
		return &Transfer{ID: h.ID, Peer: from, Name: name, Size: h.Size, State: "receiving", Content: content.ID(h.Content).String()}
	})
	// Taken: the first reply says about how much is here already.
	held = min(max(held, 0), h.Size)
	m.progress(t, func(t *Transfer) { t.State, t.Done, t.Err = "receiving", held, "" })
	if err := reply(fileReply{Offset: held}); err != nil {
		return err
	}
	rep := m.fetchOffer(ctx, reply, t, h, strings.TrimSuffix(part, ".part"), from)
	if rep.Done {
		rep = m.place(t, strings.TrimSuffix(part, ".part"), dir, name, contact)
	}
	if m.ctx.Err() != nil {
		return nil
	}
	return reply(rep)
}

// received reports whether transfer id from sender is already here.
func (m *Messenger) received(from peer.ID, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.transfers[Transfer{ID: id, Peer: from}.Key()]
	return ok && t.State == "done"
}

// takeSlot registers the receive of key: an earlier offer of the same
// transfer still running (its pipe broke unnoticed) is stopped first, and a
// contact fetches at most MaxReceivesPerContact files at once. cancel ends
// ctx; release, called once when the receive ends, frees the slot.
func (m *Messenger) takeSlot(from peer.ID, key string) (ctx context.Context, cancel context.CancelFunc, release func(), err error) {
	for {
		m.mu.Lock()
		old := m.receiving[key]
		if old == nil {
			n := 0
			for _, s := range m.receiving {
				if s.from == from {
					n++
				}
			}
			if n >= MaxReceivesPerContact {
				m.mu.Unlock()
				return nil, nil, nil, fmt.Errorf("too many transfers at once (%d)", n)
			}
			ctx, cancel := context.WithCancel(m.ctx)
			s := &receiveSlot{from: from, cancel: cancel, done: make(chan struct{})}
			m.receiving[key] = s
			m.mu.Unlock()
			return ctx, cancel, func() {
				cancel()
				m.mu.Lock()
				delete(m.receiving, key)
				m.mu.Unlock()
				close(s.done)
			}, nil
		}
		m.mu.Unlock()
		old.cancel()
		select {
		case <-old.done:
		case <-m.ctx.Done():
			return nil, nil, nil, errors.New("receiver is stopping")
		}
	}
}

// fetchOffer fetches the offered content into dst (dst.part while
// incomplete) from the sender only, reporting progress to the UI and the
// sender. The reply says how it ended: Done when dst is whole.
func (m *Messenger) fetchOffer(ctx context.Context, reply func(fileReply) error, t *Transfer, h fileHeader, dst string, from peer.ID) fileReply {
	id := content.ID(h.Content)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := m.cs.Subscribe(ctx, 64)
	defer sub.Cancel()
	type result struct {
		info content.Info
		err  error
	}
	res := make(chan result, 1)
	go func() {
		info, err := m.cs.Fetch(ctx, id, dst, content.WithProviders(peer.Addr{ID: from}), content.OnlyProviders())
		res <- result{info, err}
	}()
	var lie error
	events := sub.C
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			p, ok := ev.(content.Progress)
			if !ok || p.Op != content.OpFetch || p.ID != id {
				continue
			}
			if p.Total > 0 && p.Total != h.Size && lie == nil {
				// The tree gives the real size: a contact who offered less
				// to pass the disk check gets nothing written past it.
				lie = fmt.Errorf("the file has %d bytes, the offer said %d", p.Total, h.Size)
				cancel()
				continue
			}
			if lie == nil && !p.Done {
				m.progress(t, func(t *Transfer) { t.Done = p.Bytes })
				if reply(fileReply{Offset: p.Bytes}) != nil {
					cancel()
				}
			}
		case r := <-res:
			if r.err == nil && r.info.Size != h.Size {
				lie = fmt.Errorf("the file has %d bytes, the offer said %d", r.info.Size, h.Size)
				m.forget(id, dst)
				os.Remove(dst)
			}
			return m.fetchEnded(ctx, t, dst, r.err, lie)
		}
	}
}

// fetchEnded turns how a fetch ended into the sender's reply and the
// transfer's state. Partial files stay only when the sender may resume.
func (m *Messenger) fetchEnded(ctx context.Context, t *Transfer, dst string, err, lie error) fileReply {
	final := func(msg string) fileReply {
		os.Remove(dst + ".part")
		os.Remove(dst + ".part.state")
		m.progress(t, func(t *Transfer) { t.State, t.Err = "failed", msg })
		return fileReply{Err: msg, Final: true}
	}
	switch {
	case lie != nil:
		return final(lie.Error())
	case err == nil:
		return fileReply{Done: true}
	case m.ctx.Err() != nil:
		return fileReply{}
	case ctx.Err() != nil:
		// Said, not silent: the sender resumes when it can (also after a
		// restart); the partial file is kept PartialTTL.
		m.progress(t, func(t *Transfer) { t.State, t.Err = "paused", "waiting for the sender to resume" })
		return fileReply{Err: "offer ended"}
	case errors.Is(err, content.ErrNotFound), errors.Is(err, content.ErrStale), errors.Is(err, content.ErrDenied),
		errors.Is(err, content.ErrTooLarge), errors.Is(err, content.ErrBadData):
		// The sender does not have the file, will not serve it to us, or
		// sent bad pieces until it was banned: asking again cannot help.
		return final("the sender could not deliver the file: " + err.Error())
	case errors.Is(err, syscall.ENOSPC):
		return final("receiver's disk refused the file: " + err.Error())
	}
	m.progress(t, func(t *Transfer) { t.State, t.Err = "paused", err.Error() })
	return fileReply{Err: err.Error()}
}

// place moves the whole, verified file at src into dir as name.
func (m *Messenger) place(t *Transfer, src, dir, name string, contact Contact) fileReply {
	id, _ := content.ParseID(t.Content)
	m.forget(id, src)
	dst, err := safename.Place(src, dir, name)
	if err != nil {
		os.Remove(src)
		m.progress(t, func(t *Transfer) { t.State, t.Err = "failed", "cannot store the file: "+err.Error() })
		return fileReply{Err: "receiver cannot store files", Final: true}
	}
	m.progress(t, func(t *Transfer) { t.State, t.Done, t.Path, t.Err = "done", t.Size, dst, "" })
	m.emit(Notice{Text: fmt.Sprintf("received %s from %s (%d bytes, every piece verified)", name, contact.Label(), t.Size)})
	return fileReply{Done: true}
}

// forget makes the content service forget id if it records it at path (a
// fetch it completed there; the file stays): a received file is not served
// onward. Content this peer shares from elsewhere stays shared.
func (m *Messenger) forget(id content.ID, path string) {
	if info, err := m.cs.Stat(id); err != nil || info.Path != path {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	_ = m.cs.Remove(ctx, id)
}
