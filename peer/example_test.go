package peer_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/peer"
)

// Two peers on one machine: one hands the other its invite, the other connects
// by it and they exchange bytes on a stream.
func Example() {
	ctx := context.Background()
	alice, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	alice.Host().SetStreamHandler("/example/greet/1", func(s network.Stream) {
		defer s.Close()
		fmt.Fprint(s, "hello from alice")
	})

	bob, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	id, path, err := bob.ConnectInvite(ctx, alice.Invite())
	if err != nil {
		log.Fatal(err)
	}
	s, err := bob.Host().NewStream(ctx, id, "/example/greet/1")
	if err != nil {
		log.Fatal(err)
	}
	msg, _ := io.ReadAll(s)
	fmt.Println(path, string(msg))
	// Output: direct hello from alice
}

// ParseInvite tells exactly what is wrong with a damaged invite.
func ExampleParseInvite() {
	_, err := peer.ParseInvite("juxta1notbase32!")
	fmt.Println(err)
	_, err = peer.ParseInvite("https://example.com/")
	fmt.Println(err)
	// Output:
	// peer: invite has characters outside base32: illegal base32 data at input byte 9
	// peer: not a juxta invite: it should start with "juxta"
}
