package discovery_test

import (
	"context"
	"fmt"
	"log"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// A super-peer indexes what one edge publishes; another edge finds it by a
// wildcard on an attribute.
func Example() {
	ctx := context.Background()
	start := func(cfg peer.Config) (*peer.Peer, *discovery.Service) {
		p, err := peer.New(ctx, cfg)
		if err != nil {
			log.Fatal(err)
		}
		d, err := discovery.New(ctx, p, discovery.Config{})
		if err != nil {
			log.Fatal(err)
		}
		return p, d
	}
	sp, spd := start(peer.TestSuperPeerConfig())
	defer sp.Close()
	defer spd.Close()

	edge := peer.TestConfig()
	edge.SuperPeers = []string{sp.Invite()}
	alice, aliced := start(edge)
	defer alice.Close()
	defer aliced.Close()
	bob, bobd := start(edge)
	defer bob.Close()
	defer bobd.Close()
	for _, p := range []*peer.Peer{alice, bob} {
		if err := p.Ready(ctx); err != nil {
			log.Fatal(err)
		}
	}

	_, err := aliced.Publish(ctx, discovery.Advertisement{
		Type:  "fileshare.file",
		ID:    "song-1",
		Attrs: map[string]string{"name": "Blue Monday.mp3"},
	})
	if err != nil {
		log.Fatal(err)
	}
	q := discovery.Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: discovery.SourceSuperPeers}
	for r, err := range bobd.Find(ctx, q) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Attrs["name"], r.Publisher == alice.ID(), r.Source)
	}
	// Output: Blue Monday.mp3 true super-peers
}
