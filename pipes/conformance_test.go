package pipes

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/juxta-p2p/juxta/peer"
)

// Both transports, separately: the dial ranker would otherwise pick QUIC.
func TestStreamPipeConformancePerTransport(t *testing.T) {
	for _, addr := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		t.Run(addr, func(t *testing.T) {
			cfg := peer.TestConfig()
			cfg.ListenAddrs = []string{addr}
			a, b := newNode(t, cfg), newNode(t, cfg)
			ctx := testCtx(t)
			l, err := a.s.Listen(ctx, "x", Public())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.p.Connect(ctx, a.p.Addr()); err != nil {
				t.Fatal(err)
			}
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				accepted := make(chan net.Conn, 1)
				go func() { c, _ := l.Accept(); accepted <- c }()
				d, err := b.s.Dial(ctx, "x")
				if err != nil {
					return nil, nil, nil, err
				}
				c := <-accepted
				if c == nil {
					return nil, nil, nil, errors.New("accept failed")
				}
				return d, c, func() { d.Close(); c.Close() }, nil
			})
		})
	}
}
