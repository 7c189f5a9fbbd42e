package pipes_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"slices"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// start returns a loopback peer with discovery and pipes, and a func to stop it.
func start(ctx context.Context, cfg peer.Config) (*peer.Peer, *pipes.Service, func()) {
	p, err := peer.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true})
	if err != nil {
		log.Fatal(err)
	}
	s, err := pipes.New(ctx, p, d)
	if err != nil {
		log.Fatal(err)
	}
	return p, s, func() { s.Close(); d.Close(); p.Close() }
}

// Two peers on a LAN: one binds a stream pipe by name, the other dials the
// name. Neither knows the other's address; discovery resolves the binding.
func Example_stream() {
	ctx := context.Background()
	alice, as, stopA := start(ctx, peer.TestConfig())
	defer stopA()
	bob, bs, stopB := start(ctx, peer.TestConfig())
	defer stopB()
	if _, err := bob.Connect(ctx, alice.Addr()); err != nil { // LAN neighbours
		log.Fatal(err)
	}

	l, err := as.Listen(ctx, "greeter", pipes.Public())
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		fmt.Fprint(c, "hello, net.Conn")
		c.Close()
	}()
	c, err := bs.Dial(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	fmt.Println(string(b))
	// Output: hello, net.Conn
}

// A reliable message pipe: the sender learns when each message is delivered.
func Example_reliableMessages() {
	ctx := context.Background()
	alice, as, stopA := start(ctx, peer.TestConfig())
	defer stopA()
	bob, bs, stopB := start(ctx, peer.TestConfig())
	defer stopB()
	bob.Connect(ctx, alice.Addr())

	cfg := pipes.MessageConfig{Reliable: true}
	l, err := as.ListenMessages(ctx, "inbox", cfg, pipes.Public())
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	c, err := bs.DialMessages(ctx, "inbox", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	seq, err := c.Send(ctx, []byte("are you there?"))
	if err != nil {
		log.Fatal(err)
	}
	in, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	msg, _ := in.Recv(ctx)
	fmt.Println(string(msg))
	in.Release(msg) // optional: msg's memory serves a later message
	if err := c.WaitDelivered(ctx, seq); err == nil {
		fmt.Println("delivered", seq)
	}
	// Output:
	// are you there?
	// delivered 1
}

// A propagate pipe: every member gets every message, with its sender's ID.
func Example_propagate() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sp, _, stopS := start(ctx, peer.TestSuperPeerConfig())
	defer stopS()
	edge := peer.TestConfig()
	edge.SuperPeers = []string{sp.Invite()}
	alice, as, stopA := start(ctx, edge)
	defer stopA()
	bob, bs, stopB := start(ctx, edge)
	defer stopB()
	alice.Ready(ctx)
	bob.Ready(ctx)

	ta, err := as.Join(ctx, "news")
	if err != nil {
		log.Fatal(err)
	}
	defer ta.Close()
	tb, err := bs.Join(ctx, "news")
	if err != nil {
		log.Fatal(err)
	}
	defer tb.Close()
	// alice sends her own messages to every member she knows of.
	for !slices.Contains(ta.Peers(), bob.ID()) {
		time.Sleep(20 * time.Millisecond)
	}

	ta.Publish(ctx, []byte("extra, extra"))
	m, err := tb.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(m.Data), m.From == alice.ID())
	// Output: extra, extra true
}
