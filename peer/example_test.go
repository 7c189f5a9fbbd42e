package peer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/juxta-p2p/juxta/peer"
)

// Two peers on one machine: one hands the other its invite, the other connects
// by it, and the first sees it arrive.
func Example() {
	ctx := context.Background()
	alice, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	events := alice.Subscribe(ctx, 0)

	bob, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	to, err := peer.ParseAddr(alice.Invite())
	if err != nil {
		log.Fatal(err)
	}
	path, err := bob.Connect(ctx, to)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob reached alice:", to.ID == alice.ID(), path)
	for ev := range events.C {
		if c, ok := ev.(peer.PeerConnected); ok {
			fmt.Println("alice sees bob:", c.Peer == bob.ID(), c.Path)
			break
		}
	}
	// Output:
	// bob reached alice: true direct
	// alice sees bob: true direct
}

// ParseID reads the text form a peer ID prints as.
func ExampleParseID() {
	id, err := peer.ParseID("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	fmt.Println(id, err)
	_, err = peer.ParseID("12D3KooW")
	fmt.Println(err != nil)
	// Output:
	// 12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA <nil>
	// true
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
