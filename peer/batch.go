package peer

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	ci "github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// TLS over TCP, one system call per write. crypto/tls writes each record
// (at most 16 KiB) to the socket with a system call of its own, so a 64 KiB
// yamux frame took four. batchTLS is go-libp2p's TLS transport with the
// records of one write gathered and handed to the socket together. The
// bytes on the wire are the same, so any libp2p peer talks to it as to the
// stock transport.

// batchMax bounds what one write gathers: a yamux frame (64 KiB) and its
// records' overhead fit. A write of at most batchMin bytes, one full-size
// record, is not gathered: there is nothing to save, and a small message's
// round trip would pay for the copy.
const (
	batchMax = 80 << 10
	batchMin = 16 << 10
)

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchMax); return &b }}

// batchTLS wraps go-libp2p's TLS transport.
type batchTLS struct {
	*libp2ptls.Transport
}

// newBatchTLS is libp2ptls.New, batched; libp2p.Security calls it.
func newBatchTLS(id protocol.ID, key ci.PrivKey, muxers []tptu.StreamMuxer) (*batchTLS, error) {
	t, err := libp2ptls.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return &batchTLS{t}, nil
}

func (t *batchTLS) SecureInbound(ctx context.Context, insecure net.Conn, p lpeer.ID) (sec.SecureConn, error) {
	return batched(insecure, func(c net.Conn) (sec.SecureConn, error) { return t.Transport.SecureInbound(ctx, c, p) })
}

func (t *batchTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p lpeer.ID) (sec.SecureConn, error) {
	return batched(insecure, func(c net.Conn) (sec.SecureConn, error) { return t.Transport.SecureOutbound(ctx, c, p) })
}

// batched secures insecure with secure, gathering the records of large
// writes on their way to it.
func batched(insecure net.Conn, secure func(net.Conn) (sec.SecureConn, error)) (sec.SecureConn, error) {
	bc := &batchConn{Conn: insecure}
	c, err := secure(bc)
	if err != nil {
		return nil, err
	}
	return &batchSecureConn{SecureConn: c, bc: bc}, nil
}

// batchConn is the socket under TLS. While a large write of the secure
// conn runs, the records TLS writes are gathered; every write to the
// socket, gathered or not, happens under mu, so records reach it in the
// order TLS sealed them (the reader's key updates and alerts included).
type batchConn struct {
	net.Conn
	active  atomic.Int32 // large writes of the secure conn under way, for Close
	closing atomic.Bool  // Close began: nothing more is gathered
	mu      sync.Mutex
	on      int // large writes of the secure conn under way
	buf     *[]byte
	err     error // the first failed socket write; every later write fails too, as in crypto/tls
}

func (c *batchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.on == 0 || c.closing.Load() {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.writeLocked(b)
	}
	if c.buf == nil {
		c.buf = batchBufs.Get().(*[]byte)
	}
	if len(*c.buf)+len(b) > batchMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(b) > batchMax {
			return c.writeLocked(b)
		}
		c.buf = batchBufs.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, b...)
	return len(b), nil
}

func (c *batchConn) writeLocked(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *batchConn) begin() {
	c.mu.Lock()
	c.on++
	c.mu.Unlock()
}

// end closes a large write of the secure conn and sends what was gathered,
// its own records and any another writer added meanwhile, so that no write
// returns before its bytes reached the socket.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on--
	if err := c.flushLocked(); err != nil {
		return err
	}
	return c.err
}

// flushLocked writes what was gathered and returns the buffer to the pool.
func (c *batchConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		_, err = c.writeLocked(*b)
	}
	*b = (*b)[:0]
	batchBufs.Put(b)
	return err
}

// batchSecureConn is the TLS conn whose large writes are gathered.
type batchSecureConn struct {
	sec.SecureConn
	bc *batchConn
}

var (
	_ sec.SecureTransport = (*batchTLS)(nil)
	_ sec.SecureConn      = (*batchSecureConn)(nil)
)

func (c *batchSecureConn) Write(b []byte) (n int, err error) {
	if len(b) <= batchMin {
		return c.SecureConn.Write(b)
	}
	c.bc.active.Add(1)
	defer c.bc.active.Add(-1)
	c.bc.begin()
	defer func() { // before active drops, and even if Write panics
		if ferr := c.bc.end(); ferr != nil && err == nil {
			n, err = 0, ferr // gathered, never sent
		}
	}()
	return c.SecureConn.Write(b)
}

// Close closes the socket first when a large write is under way, as
// crypto/tls does for its own writes: the write may be stuck behind a peer
// that does not read, and the close_notify alert would wait behind it.
// Once Close began, records go to the socket as TLS writes them.
func (c *batchSecureConn) Close() error {
	c.bc.closing.Store(true)
	if c.bc.active.Load() > 0 {
		err := c.bc.Conn.Close()
		c.SecureConn.Close() // the socket is closed already: only TLS's state is left
		return err
	}
	return c.SecureConn.Close()
}
