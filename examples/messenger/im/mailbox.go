package im

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/peer"
)

// The mailbox is a super-peer service for contacts who are never online at the
// same time: a sender deposits messages sealed end to end for the recipient
// (NaCl box: X25519, XSalsa20-Poly1305), the recipient fetches them when it
// comes online, and acknowledges them, which deletes them. The super-peer sees
// who writes to whom and how much, never what.
const mailboxProtocol = "/juxta-messenger/mailbox/1"

// Mailbox bounds (SECURITY.md). MailboxLimits holds the ones an operator sets.
const (
	MailboxMaxItem  = 64 << 10 // one sealed item
	MailboxMaxItems = 1000     // per recipient
	MailboxMaxBytes = 4 << 20  // per recipient
	MailboxTTL      = 7 * 24 * time.Hour
	MailboxMaxTotal = 1 << 30  // live bytes of the whole store
	MailboxMaxOwn   = 16 << 20 // live bytes one depositor keeps, over all recipients

	// mailboxMaxRequest bounds a request frame; a client splits deposits.
	mailboxMaxRequest = 1 << 20
	// mailboxMaxResponse bounds a response frame; a fetch answers at most
	// mailboxFetchBytes of items and says when more wait.
	mailboxMaxResponse = 2 << 20
	mailboxFetchBytes  = 1 << 20
	// mailboxBufferBudget bounds the request buffers of all streams in flight
	// together; mailboxStreamsPerPeer bounds one peer's streams in flight.
	mailboxBufferBudget   = 32 << 20
	mailboxStreamsPerPeer = 4
	mailboxSmallRequest   = 80 << 10
	mailboxRequestTimeout = 10 * time.Second // to deliver the request
	mailboxStreamTimeout  = 15 * time.Second // for the whole exchange
	// A depositor's allowance: requests plus items per second, and burst.
	mailboxRate      = 50
	mailboxBurst     = 100
	mailboxLimiters  = 4096 // depositors whose allowance is remembered
	mailboxSweepTick = 10 * time.Minute
)

// MailboxLimits bound a mailbox server. Zero fields take the defaults.
type MailboxLimits struct {
	MaxTotal     int64 // live bytes of the store; default MailboxMaxTotal
	MaxOwn       int64 // live bytes per depositor, over all recipients; default MailboxMaxOwn
	MaxBytes     int   // live bytes per recipient; default MailboxMaxBytes
	MaxItems     int   // items per recipient; default MailboxMaxItems
	TTL          time.Duration
	BufferBudget int64 // request bytes in flight, all streams; default 32 MiB
}

func (l *MailboxLimits) defaults() {
	if l.MaxTotal <= 0 {
		l.MaxTotal = MailboxMaxTotal
	}
	if l.MaxOwn <= 0 {
		l.MaxOwn = MailboxMaxOwn
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = MailboxMaxBytes
	}
	if l.MaxItems <= 0 {
		l.MaxItems = MailboxMaxItems
	}
	if l.TTL <= 0 {
		l.TTL = MailboxTTL
	}
	if l.BufferBudget <= 0 {
		l.BufferBudget = mailboxBufferBudget
	}
}

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
	Time    int64  `cbor:"5,keyasint,omitempty"` // arrival at the server, unix ms
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
	More   bool     `cbor:"4,keyasint,omitempty"` // fetch: more items wait
}

// MailboxServer keeps sealed messages for offline recipients, bounded per
// recipient, per depositor and in total by live bytes, expiring after TTL.
type MailboxServer struct {
	host   host.Host
	db     *bolt.DB
	path   string
	temp   bool
	lim    MailboxLimits
	budget *semaphore.Weighted // request buffer bytes in flight
	limits *lru.Cache[peer.ID, *rate.Limiter]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards the fields below; taken before a write transaction
	total     int64      // live bytes stored
	own       map[string]int64
	inflight  map[peer.ID]int
	lastSweep time.Time
}

// NewMailboxServer serves the mailbox on h, storing in dir/mailbox.db (a
// temporary file when dir is empty), within lim.
func NewMailboxServer(h host.Host, dir string, lim MailboxLimits) (*MailboxServer, error) {
	lim.defaults()
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
	limits, _ := lru.New[peer.ID, *rate.Limiter](mailboxLimiters)
	s := &MailboxServer{
		host: h, db: db, path: path, temp: temp, lim: lim, limits: limits,
		budget: semaphore.NewWeighted(lim.BufferBudget),
		own:    map[string]int64{}, inflight: map[peer.ID]int{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sweep()
	if err := s.recount(); err != nil {
		db.Close()
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	s.wg.Add(1)
	go s.janitor()
	h.SetStreamHandler(mailboxProtocol, s.handle)
	return s, nil
}

// Path is the store's file, for inspection.
func (s *MailboxServer) Path() string { return s.path }

// Close stops serving and closes the store.
func (s *MailboxServer) Close() error {
	s.host.RemoveStreamHandler(mailboxProtocol)
	s.cancel()
	s.wg.Wait()
	err := s.db.Close()
	if s.temp {
		os.RemoveAll(filepath.Dir(s.path))
	}
	return err
}

// Usage reports the live bytes stored in all, and those deposited by from.
func (s *MailboxServer) Usage(from peer.ID) (total, own int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.own[string(from)]
}

func (s *MailboxServer) limiter(id peer.ID) *rate.Limiter {
	l, ok := s.limits.Get(id)
	if !ok {
		l = rate.NewLimiter(mailboxRate, mailboxBurst)
		s.limits.Add(id, l)
	}
	return l
}

// enter admits one more stream of from, within mailboxStreamsPerPeer.
func (s *MailboxServer) enter(from peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[from] >= mailboxStreamsPerPeer {
		return false
	}
	s.inflight[from]++
	return true
}

func (s *MailboxServer) leave(from peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[from]--; s.inflight[from] <= 0 {
		delete(s.inflight, from)
	}
}

func (s *MailboxServer) handle(str network.Stream) {
	defer str.Close()
	from := peer.ID(str.Conn().RemotePeer())
	if !s.enter(from) {
		str.Reset()
		return
	}
	defer s.leave(from)
	_ = str.SetDeadline(time.Now().Add(mailboxStreamTimeout))
	_ = str.SetReadDeadline(time.Now().Add(mailboxRequestTimeout))
	var req mbReq
	if err := s.readRequest(str, &req); err != nil {
		str.Reset()
		return
	}
	var resp mbResp
	var err error
	if !s.limiter(from).Allow() {
		err = errRateLimited
	} else {
		switch req.Op {
		case mbDeposit:
			resp.Stored, err = s.deposit(from, req)
		case mbFetch:
			resp.Items, resp.More, err = s.fetch(from)
		case mbAck:
			err = s.ack(from, req.IDs)
		default:
			err = errors.New("unknown operation")
		}
	}
	if err != nil {
		resp.Err = err.Error()
	}
	if writeFrame(str, resp) != nil {
		str.Reset()
	}
}

// readRequest reads one request frame. Its buffer is taken from the budget
// of all streams before it is allocated, so streams that announce large
// frames and send them slowly hold at most the budget between them.
func (s *MailboxServer) readRequest(str network.Stream, req *mbReq) error {
	n, err := binary.ReadUvarint(byteReader{str})
	if err != nil {
		return err
	}
	if n > mailboxMaxRequest {
		return msgio.ErrMsgTooLarge
	}
	// Small requests (every fetch and ack, most deposits) are bounded by
	// mailboxStreamsPerPeer alone, so that large ones cannot starve them;
	// a large one is refused at once when the budget is spent.
	if n > mailboxSmallRequest {
		if !s.budget.TryAcquire(int64(n)) {
			return errBusy
		}
		defer s.budget.Release(int64(n))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(str, b); err != nil {
		return err
	}
	return dec.Unmarshal(b, req)
}

var errRateLimited = errors.New("rate limited")

var errBusy = errors.New("mailbox: too many large requests in flight")

type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
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
	ctx, cancel := context.WithTimeout(ctx, mailboxStreamTimeout)
	defer cancel()
	str, err := h.NewStream(network.WithAllowLimitedConn(ctx, "mailbox"), lpeer.ID(sp), mailboxProtocol)
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
	if err := readFrame(str, &resp, mailboxMaxResponse); err != nil {
		str.Reset()
		return mbResp{}, err
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("mailbox on %s: %s", sp.ShortString(), resp.Err)
	}
	return resp, nil
}

// validRecipient checks a deposit's recipient.
func validRecipient(to []byte) (peer.ID, error) {
	id, err := peer.IDFromBytes(to)
	if err != nil {
		return "", fmt.Errorf("bad recipient: %w", err)
	}
	return id, nil
}
