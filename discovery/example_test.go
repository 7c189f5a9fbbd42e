package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

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

// A sharer publishes its files in one batch and searches them by keywords:
// case, Unicode normalization and a prefix of the last word do not matter.
func ExampleService_PublishBatch() {
	ctx := context.Background()
	p, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true, NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	var files []discovery.Advertisement
	for i, name := range []string{"Blue Monday.mp3", "Blue Moon (live).ogg", "Monday Morning.flac", "소리바다 노래.mp3"} {
		files = append(files, discovery.Advertisement{
			Type: "fileshare.file", ID: fmt.Sprint("sha-", i), Attrs: map[string]string{"name": name},
		})
	}
	if _, err := d.PublishBatch(ctx, files); err != nil {
		log.Fatal(err)
	}
	for _, kw := range []string{"blue mo", "MONDAY", "노래"} {
		rs, err := d.LocalResults(discovery.Query{Type: "fileshare.file", Keywords: kw})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s:", kw)
		for _, r := range rs {
			fmt.Printf(" %q", r.Attrs["name"])
		}
		fmt.Println()
	}
	// Output:
	// blue mo: "Blue Moon (live).ogg" "Blue Monday.mp3"
	// MONDAY: "Blue Monday.mp3" "Monday Morning.flac"
	// 노래: "소리바다 노래.mp3"
}

// An application keeps an advertisement it was handed (say, a group's, in
// its saved state) and checks it again after three days away: Verify, for
// what arrives over the network, refuses it as expired; VerifyKept, for what
// the application kept, still takes it as its publisher's, and refuses it
// once tampered with.
func ExampleVerifyKept() {
	ctx := context.Background()
	p, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true, NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	ad, err := d.Publish(ctx, discovery.Advertisement{Type: "example.room", ID: "den"})
	if err != nil {
		log.Fatal(err)
	}
	kept, _ := d.Raw(ad.Key())

	later := time.Now().Add(3 * 24 * time.Hour)
	_, err = discovery.Verify(kept, later)
	fmt.Println("Verify:", errors.Is(err, discovery.ErrExpired))
	got, err := discovery.VerifyKept(kept, later)
	fmt.Println("VerifyKept:", got.ID, got.Publisher == p.ID(), err)
	kept[len(kept)-1] ^= 1
	_, err = discovery.VerifyKept(kept, later)
	fmt.Println("tampered:", errors.Is(err, discovery.ErrRejected))
	// Output:
	// Verify: true
	// VerifyKept: den true <nil>
	// tampered: true
}
