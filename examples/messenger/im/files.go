package im

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Transfer is one file transfer between contacts. The sender shares the file
// with its content service (package content) and offers it over a stream
// pipe; the receiver pulls it piece by piece (256 KiB), verifying each piece
// against the file's BLAKE3 tree as it arrives, so a damaged piece is fetched
// again, not the whole file. It resumes after a dropped connection or a
// restart of either side from the pieces the receiver already holds.
type Transfer struct {
	ID    string
	Peer  peer.ID
	Name  string
	Size  int64
	Done  int64 // bytes the receiver holds, verified
	Out   bool
	State string // sending, receiving, retrying, paused, done, failed
	Err   string
	// Content is the file's content ID (its BLAKE3 hash, as a CID): every
	// piece, and so the whole file, is verified against it. It replaces
	// the SHA-256 over the whole file that earlier versions checked at the
	// end, which made a mismatch restart the transfer from byte 0.
	Content string
	Path    string // the file sent, or where the received file was saved
}

// Key tells transfers apart. The ID alone does not: the sender chooses it,
// so a contact can offer a file under the ID of one this peer sends it (or
// of one another contact sends), and a list keyed by ID would show its
// offer in place of that transfer.
func (t Transfer) Key() string {
	dir := "in"
	if t.Out {
		dir = "out"
	}
	return dir + "/" + t.Peer.String() + "/" + t.ID
}

// MaxFileSize bounds a transfer.
const MaxFileSize = 16 << 30

// The file pipe carries one offer per stream: the sender writes a header,
// the receiver answers with replies: progress (Offset: verified bytes held),
// then Done or Err. The bytes themselves go over the content protocol, which
// the receiver opens to the sender.
type fileHeader struct {
	ID      string `cbor:"1,keyasint"`
	Name    string `cbor:"2,keyasint"`
	Size    int64  `cbor:"3,keyasint"`
	Content []byte `cbor:"5,keyasint"` // content.ID
}

type fileReply struct {
	Offset int64  `cbor:"1,keyasint,omitempty"`
	Done   bool   `cbor:"2,keyasint,omitempty"`
	Err    string `cbor:"3,keyasint,omitempty"`
	Final  bool   `cbor:"4,keyasint,omitempty"` // the refusal stands: do not retry
}

// replyTimeout is how long a sender waits for the receiver's next reply: a
// fetching receiver reports progress every content.ProgressInterval.
const replyTimeout = 2 * time.Minute

// finalError is a receiver's refusal that retrying cannot change.
type finalError struct{ msg string }

func (e finalError) Error() string { return "receiver refused the file: " + e.msg }

func replyErr(r fileReply) error {
	if r.Final {
		return finalError{r.Err}
	}
	return errors.New(r.Err)
}

// Downloads is where received files go.
func (m *Messenger) Downloads() string { return filepath.Join(m.cfg.Dir, "downloads") }

// openContent starts the messenger's content service: it serves accepted
// contacts only, and each only the files sent to them (contentAllowed);
// nothing is announced, since a contact fetches from the sender it knows.
func (m *Messenger) openContent(ctx context.Context) (*content.Service, error) {
	cfg := content.Config{
		Peer:       m.p,
		Dir:        filepath.Join(m.cfg.Dir, "content"),
		NoAnnounce: true,
		Logger:     m.log,
		Allow: func(id peer.ID) bool {
			c, ok := m.st.contact(id)
			return ok && c.State == Accepted
		},
		AllowContent: m.contentAllowed,
	}
	if m.cfg.corrupt != nil {
		cfg = content.WithFaults(cfg, m.cfg.corrupt)
	}
	cs, err := content.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return cs, nil
}

// contentAllowed says whether contact p may fetch id: only a file being sent
// to p.
func (m *Messenger) contentAllowed(p peer.ID, id content.ID) bool {
	for _, f := range m.st.sendings() {
		if f.Peer == p && content.ID(f.Content) == id {
			return true
		}
	}
	return false
}

// SendFile sends the file at path to contact id in the background; follow it
// with TransferProgress events or Transfers. The file is hashed first (the
// call returns after that); then it is offered until the receiver has it,
// refuses it for good, or ctx ends.
func (m *Messenger) SendFile(ctx context.Context, id peer.ID, path string) (Transfer, error) {
	c, ok := m.st.contact(id)
	if !ok {
		return Transfer{}, fmt.Errorf("messenger: %s is not a contact", id.ShortString())
	}
	if c.State != Accepted {
		return Transfer{}, fmt.Errorf("messenger: %s is not an accepted contact yet", c.Label())
	}
	if m.cs == nil {
		return Transfer{}, errors.New("messenger: a super-peer does not send files")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Transfer{}, fmt.Errorf("messenger: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Transfer{}, fmt.Errorf("messenger: %s is not a regular file", path)
	}
	if fi.Size() > MaxFileSize {
		return Transfer{}, fmt.Errorf("messenger: %s is larger than %d bytes", path, int64(MaxFileSize))
	}
	info, err := m.cs.Add(ctx, path)
	if err != nil {
		return Transfer{}, fmt.Errorf("messenger: %w", err)
	}
	t := &Transfer{ID: newID(), Peer: id, Name: filepath.Base(info.Path), Size: info.Size, Out: true, State: "sending", Content: info.ID.String(), Path: info.Path}
	// Kept until the file is through (or refused for good), so that a
	// restart offers it again and the receiver resumes from its pieces.
	if err := m.st.putSending(sendingFile{ID: t.ID, Peer: id, Path: t.Path, Size: t.Size, Content: info.ID[:]}); err != nil {
		return Transfer{}, fmt.Errorf("messenger: %w", err)
	}
	return m.startSending(ctx, t, info.ID), nil
}

// startSending runs t's send loop in the background; the saved record goes
// when the loop ends for any reason but the messenger stopping.
func (m *Messenger) startSending(ctx context.Context, t *Transfer, id content.ID) Transfer {
	m.mu.Lock()
	m.transfers[t.Key()] = t
	snap := *t
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(m.ctx, cancel)
		defer stop()
		defer cancel()
		m.sendLoop(ctx, t, id)
		if m.ctx.Err() == nil {
			m.st.deleteSending(t.ID)
			m.unshare(id)
		}
	}()
	return snap
}

// unshare stops sharing id once no transfer sends it any more.
func (m *Messenger) unshare(id content.ID) {
	for _, f := range m.st.sendings() {
		if content.ID(f.Content) == id {
			return
		}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	_ = m.cs.Remove(ctx, id)
}

func (m *Messenger) sendLoop(ctx context.Context, t *Transfer, id content.ID) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := m.sendOnce(ctx, t, id)
		if err == nil {
			m.progress(t, func(t *Transfer) { t.State, t.Done, t.Err = "done", t.Size, "" })
			return
		}
		var final finalError
		if ctx.Err() != nil || attempt >= 50 || errors.As(err, &final) {
			m.progress(t, func(t *Transfer) { t.State, t.Err = "failed", err.Error() })
			return
		}
		m.progress(t, func(t *Transfer) { t.State, t.Err = "retrying", err.Error() })
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// sendOnce offers t once and follows the receiver's replies until it has the
// file, refuses it, or the pipe fails.
func (m *Messenger) sendOnce(ctx context.Context, t *Transfer, id content.ID) error {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := m.ps.Dial(dctx, filePipe, pipes.ToPeer(t.Peer))
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hdr, _ := enc.Marshal(fileHeader{ID: t.ID, Name: t.Name, Size: t.Size, Content: id[:]})
	if err := msgio.NewVarintWriter(conn).WriteMsg(hdr); err != nil {
		return err
	}
	r := msgio.NewVarintReaderSize(conn, 4096)
	for first := true; ; first = false {
		var reply fileReply
		_ = conn.SetReadDeadline(time.Now().Add(replyTimeout))
		if err := readMsg(r, &reply); err != nil {
			return err
		}
		switch {
		case reply.Err != "":
			return replyErr(reply)
		case reply.Done:
			return nil
		}
		if first || reply.Offset > 0 {
			d := min(max(reply.Offset, 0), t.Size)
			m.progress(t, func(t *Transfer) { t.State, t.Done, t.Err = "sending", d, "" })
		}
	}
}

func readMsg(r msgio.ReadCloser, v any) error {
	b, err := r.ReadMsg()
	if err != nil {
		return err
	}
	defer r.ReleaseMsg(b)
	return dec.Unmarshal(b, v)
}

// transfer returns the transfer under key (Transfer.Key), made by mk if
// there is none.
func (m *Messenger) transfer(key string, mk func() *Transfer) *Transfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.transfers[key]
	if !ok {
		t = mk()
		m.transfers[key] = t
	}
	return t
}

func (m *Messenger) progress(t *Transfer, f func(*Transfer)) {
	m.mu.Lock()
	f(t)
	snap := *t
	m.mu.Unlock()
	m.emit(TransferProgress{Transfer: snap})
}

// Transfers lists this session's file transfers.
func (m *Messenger) Transfers() []Transfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Transfer
	for _, t := range m.transfers {
		out = append(out, *t)
	}
	return out
}
