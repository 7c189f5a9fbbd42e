package im

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/content/safename"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Transfer is one file transfer between contacts, over a stream pipe. It
// resumes after a dropped connection from where the receiver's partial file
// ends, and the receiver checks the whole file's SHA-256 before keeping it.
type Transfer struct {
	ID     string
	Peer   peer.ID
	Name   string
	Size   int64
	Done   int64
	Out    bool
	State  string // sending, receiving, retrying, done, failed
	Err    string
	SHA256 string
	Path   string // where the received file was saved
}

// MaxFileSize bounds a transfer.
const MaxFileSize = 16 << 30

type fileHeader struct {
	ID     string `cbor:"1,keyasint"`
	Name   string `cbor:"2,keyasint"`
	Size   int64  `cbor:"3,keyasint"`
	SHA256 []byte `cbor:"4,keyasint"`
}

type fileReply struct {
	Offset int64  `cbor:"1,keyasint,omitempty"`
	Done   bool   `cbor:"2,keyasint,omitempty"`
	Err    string `cbor:"3,keyasint,omitempty"`
	Final  bool   `cbor:"4,keyasint,omitempty"` // the refusal stands: do not retry
}

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

// SendFile sends the file at path to contact id in the background; follow it
// with TransferProgress events or Transfers. It retries, resuming, until the
// file is through or ctx ends.
func (m *Messenger) SendFile(ctx context.Context, id peer.ID, path string) (Transfer, error) {
	c, ok := m.st.contact(id)
	if !ok {
		return Transfer{}, fmt.Errorf("messenger: %s is not a contact", id.ShortString())
	}
	if c.State != Accepted {
		return Transfer{}, fmt.Errorf("messenger: %s is not an accepted contact yet", c.Label())
	}
	f, err := os.Open(path)
	if err != nil {
		return Transfer{}, fmt.Errorf("messenger: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return Transfer{}, fmt.Errorf("messenger: %s is not a regular file", path)
	}
	if fi.Size() > MaxFileSize {
		return Transfer{}, fmt.Errorf("messenger: %s is larger than %d bytes", path, int64(MaxFileSize))
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Transfer{}, fmt.Errorf("messenger: read %s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	t := &Transfer{ID: newID(), Peer: id, Name: filepath.Base(path), Size: fi.Size(), Out: true, State: "sending", SHA256: hex.EncodeToString(h.Sum(nil)), Path: path}
	// Kept until the file is through (or refused for good), so that a
	// restart resumes it where the receiver's partial file ends.
	if err := m.st.putSending(sendingFile{ID: t.ID, Peer: id, Path: path, Size: t.Size, SHA256: h.Sum(nil)}); err != nil {
		return Transfer{}, fmt.Errorf("messenger: %w", err)
	}
	return m.startSending(ctx, t, h.Sum(nil)), nil
}

// startSending runs t's send loop in the background; the saved record goes
// when the loop ends for any reason but the messenger stopping.
func (m *Messenger) startSending(ctx context.Context, t *Transfer, sum []byte) Transfer {
	m.mu.Lock()
	m.transfers[t.ID] = t
	snap := *t
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(m.ctx, cancel)
		defer stop()
		defer cancel()
		m.sendLoop(ctx, t, sum)
		if m.ctx.Err() == nil {
			m.st.deleteSending(t.ID)
		}
	}()
	return snap
}

func (m *Messenger) sendLoop(ctx context.Context, t *Transfer, sum []byte) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := m.sendOnce(ctx, t, sum)
		if err == nil {
			m.progress(t, func(t *Transfer) { t.State, t.Done = "done", t.Size })
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

func (m *Messenger) sendOnce(ctx context.Context, t *Transfer, sum []byte) error {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := m.ps.Dial(dctx, filePipe, pipes.ToPeer(t.Peer))
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hdr, _ := enc.Marshal(fileHeader{ID: t.ID, Name: t.Name, Size: t.Size, SHA256: sum})
	if err := msgio.NewVarintWriter(conn).WriteMsg(hdr); err != nil {
		return err
	}
	r := msgio.NewVarintReaderSize(conn, 4096)
	var reply fileReply
	if err := readMsg(r, &reply); err != nil {
		return err
	}
	if reply.Err != "" {
		return replyErr(reply)
	}
	if reply.Done {
		return nil
	}
	f, err := os.Open(t.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(reply.Offset, io.SeekStart); err != nil {
		return err
	}
	m.progress(t, func(t *Transfer) { t.State, t.Done, t.Err = "sending", reply.Offset, "" })
	buf := make([]byte, 256<<10)
	done := reply.Offset
	last := time.Now()
	for done < t.Size {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return werr
			}
			done += int64(n)
			if time.Since(last) > 200*time.Millisecond {
				last = time.Now()
				d := done
				m.progress(t, func(t *Transfer) { t.Done = d })
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := conn.CloseWrite(); err != nil {
		return err
	}
	if err := readMsg(r, &reply); err != nil {
		return err
	}
	if reply.Err != "" {
		return replyErr(reply)
	}
	if !reply.Done {
		return errors.New("receiver did not confirm the file")
	}
	return nil
}

func readMsg(r msgio.ReadCloser, v any) error {
	b, err := r.ReadMsg()
	if err != nil {
		return err
	}
	defer r.ReleaseMsg(b)
	return dec.Unmarshal(b, v)
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

// receive takes one transfer attempt: it appends to the partial file and, when
// the file is whole, checks its hash before moving it into Downloads.
func (m *Messenger) receive(c *pipes.Conn) error {
	from := c.RemotePeer()
	w := msgio.NewVarintWriter(c)
	reply := func(r fileReply) error {
		b, _ := enc.Marshal(r)
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
	name := safename.SafeName(h.Name)
	dir := m.Downloads()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return reply(fileReply{Err: "receiver cannot store files"})
	}
	// The partial file is named by sender and transfer, so that one contact
	// cannot append to another's.
	part := partialName(dir, senderTag(from)+h.ID)
	var have int64
	if fi, err := os.Stat(part); err == nil {
		have = fi.Size()
	}
	if err := admitPartial(dir, senderTag(from)+h.ID, h.Size, have); err != nil {
		return reply(fileReply{Err: err.Error(), Final: errors.Is(err, errNoSpace)})
	}
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return reply(fileReply{Err: "receiver cannot store files"})
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	offset := min(fi.Size(), h.Size)
	t := m.transfer(h.ID, func() *Transfer {
		return &Transfer{ID: h.ID, Peer: from, Name: name, Size: h.Size, State: "receiving", SHA256: hex.EncodeToString(h.SHA256)}
	})
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	if err := reply(fileReply{Offset: offset}); err != nil {
		return err
	}
	m.progress(t, func(t *Transfer) { t.State, t.Done = "receiving", offset })
	buf := make([]byte, 256<<10)
	done := offset
	last := time.Now()
	for done < h.Size {
		n, err := c.Read(buf[:min(int64(len(buf)), h.Size-done)])
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				f.Close()
				os.Remove(part)
				return reply(fileReply{Err: "receiver's disk refused the file: " + werr.Error(), Final: true})
			}
			done += int64(n)
			if time.Since(last) > 200*time.Millisecond {
				last = time.Now()
				d := done
				m.progress(t, func(t *Transfer) { t.Done = d })
			}
		}
		if err != nil && done < h.Size {
			f.Sync()
			// Said, not silent: the sender resumes from here when it can
			// (also after a restart); the partial file is kept PartialTTL.
			m.progress(t, func(t *Transfer) {
				t.Done, t.State, t.Err = done, "paused", "waiting for the sender to resume"
			})
			return err
		}
	}
	rep, err := m.placeReceived(f, part, dir, name, t, h.Size, contact)
	if err != nil {
		return err
	}
	return reply(rep)
}

// placeReceived checks the whole partial file's hash and moves it into dir
// as name; the reply says how that went, the error that the stream failed.
func (m *Messenger) placeReceived(f *os.File, part, dir, name string, t *Transfer, size int64, contact Contact) (fileReply, error) {
	if err := f.Sync(); err != nil {
		return fileReply{Err: "receiver's disk refused the file: " + err.Error()}, nil
	}
	sum, err := fileSHA256(part)
	if err != nil {
		return fileReply{}, err
	}
	if hex.EncodeToString(sum) != t.SHA256 {
		os.Remove(part)
		m.progress(t, func(t *Transfer) { t.State, t.Err = "failed", "hash mismatch; starting over" })
		return fileReply{Err: "hash mismatch"}, nil
	}
	f.Close()
	dst, err := safename.Place(part, dir, name)
	if err != nil {
		os.Remove(part)
		return fileReply{Err: "receiver cannot store files", Final: true}, nil
	}
	m.progress(t, func(t *Transfer) { t.State, t.Done, t.Path = "done", size, dst })
	m.emit(Notice{Text: fmt.Sprintf("received %s from %s (%d bytes, sha256 ok)", name, contact.Label(), size)})
	return fileReply{Done: true}, nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (m *Messenger) transfer(id string, mk func() *Transfer) *Transfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.transfers[id]
	if !ok {
		t = mk()
		m.transfers[id] = t
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
