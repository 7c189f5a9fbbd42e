package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ci "github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// countConn counts the writes that reach the socket; it fails them once
// fail is set, and once stuck is set holds them until it is closed or its
// write deadline passes, as a socket to a peer that stopped reading does.
type countConn struct {
	net.Conn
	writes  atomic.Int64
	fail    atomic.Bool
	stuck   atomic.Bool
	entered chan struct{} // a write got stuck
	closed  chan struct{}
	once    sync.Once

	dmu      sync.Mutex
	deadline time.Time
	moved    chan struct{} // the deadline changed
}

func (c *countConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.deadline = t
	close(c.moved)
	c.moved = make(chan struct{})
	c.dmu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *countConn) Write(b []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("socket write failed")
	}
	if c.stuck.Load() {
		select {
		case c.entered <- struct{}{}:
		default:
		}
		for {
			c.dmu.Lock()
			d, moved := c.deadline, c.moved
			c.dmu.Unlock()
			var expire <-chan time.Time
			if !d.IsZero() {
				expire = time.After(time.Until(d))
			}
			select {
			case <-c.closed:
				return 0, net.ErrClosed
			case <-expire:
				return 0, os.ErrDeadlineExceeded
			case <-moved:
			}
		}
	}
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func (c *countConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tlsPair connects a client secured by client to a server secured by stock
// go-libp2p TLS over loopback TCP; the client's socket is counted.
func tlsPair(t *testing.T, client sec.SecureTransport) (sec.SecureConn, sec.SecureConn, *countConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, _, err := ci.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := libp2ptls.New(libp2ptls.ID, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	serverID, _ := lpeer.IDFromPrivateKey(key)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   sec.SecureConn
		err error
	}
	done := make(chan res, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			done <- res{nil, err}
			return
		}
		c, err := server.SecureInbound(ctx, raw, "")
		done <- res{c, err}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := &countConn{Conn: raw, entered: make(chan struct{}, 1), closed: make(chan struct{}), moved: make(chan struct{})}
	c, err := client.SecureOutbound(ctx, cc, serverID)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c, r.c, cc
}

func newTestTLS(t *testing.T, batched bool) sec.SecureTransport {
	t.Helper()
	key, _, err := ci.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	if batched {
		tr, err := newBatchTLS(libp2ptls.ID, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tr, err := libp2ptls.New(libp2ptls.ID, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestBatchTLSOneWritePerFrame: a 64 KiB write (a yamux frame) reaches the
// socket in one system call, where stock TLS makes one per record, and a
// stock TLS server reads it intact.
func TestBatchTLSOneWritePerFrame(t *testing.T) {
	msg := bytes.Repeat([]byte("juxta frame "), 64<<10/12)
	for _, c := range []struct {
		name    string
		batched bool
	}{{"stock", false}, {"batched", true}} {
		t.Run(c.name, func(t *testing.T) {
			client, server, cc := tlsPair(t, newTestTLS(t, c.batched))
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(msg))
				io.ReadFull(server, b)
				got <- b
			}()
			before := cc.writes.Load()
			if n, err := client.Write(msg); err != nil || n != len(msg) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if b := <-got; !bytes.Equal(b, msg) {
				t.Fatal("the server read other bytes")
			}
			writes := cc.writes.Load() - before
			t.Logf("%s: %d bytes in %d socket writes", c.name, len(msg), writes)
			if c.batched && writes != 1 {
				t.Fatalf("batched: %d socket writes, want 1", writes)
			}
			if !c.batched && writes < 4 {
				t.Fatalf("stock: %d socket writes; the test no longer shows what batching saves", writes)
			}
		})
	}
}

// TestBatchTLSConcurrentWritesInOrder: writers at once, large ones that
// are gathered and small ones that are not, still put the records on the
// socket in the order TLS sealed them, or the server could not open them.
func TestBatchTLSConcurrentWritesInOrder(t *testing.T) {
	client, server, _ := tlsPair(t, newTestTLS(t, true))
	const writers, each = 4, 50
	size := func(w int) int { return []int{20 << 10, 1 << 10, 70 << 10, 16 << 10}[w] }
	total := 0
	for w := range writers {
		total += each * size(w)
	}
	read := make(chan error, 1)
	go func() {
		n, err := io.CopyN(io.Discard, server, int64(total))
		if err == nil && n != int64(total) {
			err = io.ErrUnexpectedEOF
		}
		read <- err
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bytes.Repeat([]byte{byte(w)}, size(w))
			for range each {
				if _, err := client.Write(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() { // the reader would wait for bytes never sent
		client.Close()
		server.Close()
	}
	if err := <-read; err != nil {
		t.Fatalf("server read: %v", err)
	}
}

// TestBatchTLSWriteFails: a socket write that fails fails the secure
// write, which reports nothing sent, and every write after it, small or
// large, as crypto/tls does: the stream of records has a hole in it.
func TestBatchTLSWriteFails(t *testing.T) {
	client, _, cc := tlsPair(t, newTestTLS(t, true))
	cc.fail.Store(true)
	if n, err := client.Write(make([]byte, 64<<10)); err == nil || n != 0 {
		t.Fatalf("Write on a failing socket = %d, %v; want 0 and an error", n, err)
	}
	cc.fail.Store(false)
	for _, size := range []int{64 << 10, 100} {
		if _, err := client.Write(make([]byte, size)); err == nil {
			t.Fatalf("a %d-byte Write after a failed one succeeded", size)
		}
	}
}

// TestBatchTLSCloseBreaksStuckWrite: Close during a write stuck behind a
// peer that does not read breaks the write at once, as with stock TLS,
// instead of queueing its close_notify alert behind it.
func TestBatchTLSCloseBreaksStuckWrite(t *testing.T) {
	client, _, cc := tlsPair(t, newTestTLS(t, true))
	cc.stuck.Store(true)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(make([]byte, 64<<10))
		wrote <- err
	}()
	<-cc.entered
	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		cc.Close() // let the test end
		t.Fatal("Close waited behind a stuck write")
	}
	// Broken by the close, not by the deadline close_notify would set.
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the stuck write returned %v, want net.ErrClosed", err)
	}
}
