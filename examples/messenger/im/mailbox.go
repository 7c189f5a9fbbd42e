package im

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/peer"
)

// The mailbox is a super-peer service for contacts who are never online at the
// same time: a sender deposits messages sealed end to end for the recipient
// (NaCl box: X25519, XSalsa20-Poly1305), the recipient fetches them when it
// comes online, and acknowledges them, which deletes them. The super-peer sees
// who writes to whom and how much, never what.
const mailboxProtocol = "/juxta-messenger/mailbox/1"

// Mailbox bounds.
const (
	MailboxMaxItem      = 64 << 10 // one sealed item
	MailboxMaxItems     = 1000     // per recipient
	MailboxMaxBytes     = 4 << 20  // per recipient
	MailboxTTL          = 7 * 24 * time.Hour
	MailboxMaxTotal     = 1 << 30 // the whole store
	mailboxMaxFrame     = 8 << 20
	mailboxDepositRate  = 50 // items per second per depositor
	mailboxStreamTimout = 15 * time.Second
)

const (
	mbDeposit uint8 = 1
	mbFetch   uint8 = 2
	mbAck     uint8 = 3
)

type mbItem struct {
	ID      string `cbor:"1,keyasint"`
	From    []byte `cbor:"2,keyasint,omitempty"` // set by the server from the stream
	Blob    []byte `cbor:"3,keyasint"`
	Expires int64  `cbor:"4,keyasint,omitempty"`
}

type mbReq struct {
	Op    uint8    `cbor:"1,keyasint"`
	To    []byte   `cbor:"2,keyasint,omitempty"`
	Items []mbItem `cbor:"3,keyasint,omitempty"`
	IDs   []string `cbor:"4,keyasint,omitempty"`
}

type mbResp struct {
	Items  []mbItem `cbor:"1,keyasint,omitempty"`
	Stored int      `cbor:"2,keyasint,omitempty"`
	Err    string   `cbor:"3,keyasint,omitempty"`
}

// MailboxServer keeps sealed messages for offline recipients, bounded per
// recipient, expiring after MailboxTTL.
type MailboxServer struct {
	host host.Host
	db   *bolt.DB
	path string
	temp bool

	mu     sync.Mutex
	limits map[peer.ID]*rate.Limiter
}

// NewMailboxServer serves the mailbox on h, storing in dir/mailbox.db (a
// temporary file when dir is empty).
func NewMailboxServer(h host.Host, dir string) (*MailboxServer, error) {
	temp := dir == ""
	if temp {
		var err error
		if dir, err = os.MkdirTemp("", "juxta-mailbox-*"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	path := filepath.Join(dir, "mailbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("mailbox: open %s: %w", path, err)
	}
	s := &MailboxServer{host: h, db: db, path: path, temp: temp, limits: map[peer.ID]*rate.Limiter{}}
	h.SetStreamHandler(mailboxProtocol, s.handle)
	return s, nil
}

// Path is the store's file, for inspection.
func (s *MailboxServer) Path() string { return s.path }

// Close stops serving and closes the store.
func (s *MailboxServer) Close() error {
	s.host.RemoveStreamHandler(mailboxProtocol)
	err := s.db.Close()
	if s.temp {
		os.RemoveAll(filepath.Dir(s.path))
	}
	return err
}

func (s *MailboxServer) limiter(id peer.ID) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limits[id]
	if !ok {
		l = rate.NewLimiter(mailboxDepositRate, 2*mailboxDepositRate)
		s.limits[id] = l
	}
	return l
}

func (s *MailboxServer) handle(str network.Stream) {
	defer str.Close()
	_ = str.SetDeadline(time.Now().Add(mailboxStreamTimout))
	from := str.Conn().RemotePeer()
	var req mbReq
	if err := readFrame(str, &req, mailboxMaxFrame); err != nil {
		str.Reset()
		return
	}
	var resp mbResp
	var err error
	switch req.Op {
	case mbDeposit:
		resp.Stored, err = s.deposit(from, req)
	case mbFetch:
		resp.Items, err = s.fetch(from)
	case mbAck:
		err = s.ack(from, req.IDs)
	default:
		err = errors.New("unknown operation")
	}
	if err != nil {
		resp.Err = err.Error()
	}
	if writeFrame(str, resp) != nil {
		str.Reset()
	}
}

func (s *MailboxServer) deposit(from peer.ID, req mbReq) (int, error) {
	to, err := lpeer.IDFromBytes(req.To)
	if err != nil {
		return 0, fmt.Errorf("bad recipient: %w", err)
	}
	if fi, err := os.Stat(s.path); err == nil && fi.Size() > MailboxMaxTotal {
		return 0, errors.New("the super-peer's mailbox store is full")
	}
	lim := s.limiter(from)
	stored := 0
	var firstErr error
	refuse := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	now := time.Now()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(req.To)
		if err != nil {
			return err
		}
		s.expire(b, now)
		count, size := b.Stats().KeyN, 0
		_ = b.ForEach(func(_, v []byte) error { size += len(v); return nil })
		// Each item on its own: one bad item does not cost the others.
		for _, it := range req.Items {
			switch {
			case len(it.Blob) > MailboxMaxItem || len(it.ID) == 0 || len(it.ID) > 64:
				refuse(fmt.Errorf("item %q too large or unnamed", it.ID))
				continue
			case count >= MailboxMaxItems || size+len(it.Blob) > MailboxMaxBytes:
				refuse(fmt.Errorf("mailbox of %s is full", to.ShortString()))
				continue
			case !lim.Allow():
				refuse(errors.New("rate limited"))
				continue
			}
			seq, _ := b.NextSequence()
			key := binary.BigEndian.AppendUint64(nil, seq)
			key = append(key, it.ID...)
			v, err := enc.Marshal(mbItem{ID: it.ID, From: []byte(from), Blob: it.Blob, Expires: now.Add(MailboxTTL).UnixMilli()})
			if err != nil {
				return err
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
			count++
			size += len(v)
			stored++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return stored, firstErr
}

func (s *MailboxServer) expire(b *bolt.Bucket, now time.Time) {
	var dead [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		var it mbItem
		if dec.Unmarshal(v, &it) != nil || now.UnixMilli() > it.Expires {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range dead {
		_ = b.Delete(k)
	}
}

func (s *MailboxServer) fetch(to peer.ID) ([]mbItem, error) {
	var out []mbItem
	size := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(to))
		if b == nil {
			return nil
		}
		s.expire(b, time.Now())
		return b.ForEach(func(_, v []byte) error {
			var it mbItem
			if dec.Unmarshal(v, &it) == nil && size+len(v) < mailboxMaxFrame/2 {
				out = append(out, it)
				size += len(v)
			}
			return nil
		})
	})
	return out, err
}

func (s *MailboxServer) ack(to peer.ID, ids []string) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(to))
		if b == nil {
			return nil
		}
		var dead [][]byte
		_ = b.ForEach(func(k, _ []byte) error {
			if len(k) > 8 && want[string(k[8:])] {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Count reports how many items wait for recipient.
func (s *MailboxServer) Count(recipient peer.ID) int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(recipient)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

func writeFrame(str network.Stream, v any) error {
	b, err := enc.Marshal(v)
	if err != nil {
		return err
	}
	return msgio.NewVarintWriter(str).WriteMsg(b)
}

func readFrame(str network.Stream, v any, max int) error {
	r := msgio.NewVarintReaderSize(str, max)
	b, err := r.ReadMsg()
	if err != nil {
		return err
	}
	defer r.ReleaseMsg(b)
	return dec.Unmarshal(b, v)
}

// mailboxCall runs one request against a super-peer's mailbox.
func mailboxCall(ctx context.Context, h host.Host, sp peer.ID, req mbReq) (mbResp, error) {
	ctx, cancel := context.WithTimeout(ctx, mailboxStreamTimout)
	defer cancel()
	str, err := h.NewStream(network.WithAllowLimitedConn(ctx, "mailbox"), sp, mailboxProtocol)
	if err != nil {
		return mbResp{}, err
	}
	defer str.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(d)
	}
	if err := writeFrame(str, req); err != nil {
		str.Reset()
		return mbResp{}, err
	}
	var resp mbResp
	if err := readFrame(str, &resp, mailboxMaxFrame); err != nil {
		str.Reset()
		return mbResp{}, err
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("mailbox on %s: %s", sp.ShortString(), resp.Err)
	}
	return resp, nil
}
