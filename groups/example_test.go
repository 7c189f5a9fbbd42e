package groups_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

func start(ctx context.Context, name string, sp *peer.Peer) (*peer.Peer, *groups.Service, func()) {
	cfg := peer.TestConfig()
	if sp == nil {
		cfg = peer.TestSuperPeerConfig()
	} else {
		cfg.SuperPeers = []string{sp.Invite()}
	}
	cfg.Name = name
	p, err := peer.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	d, _ := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true})
	ps, _ := pipes.New(ctx, p, d)
	g, _ := groups.New(ctx, p, d, ps, groups.Config{})
	if sp != nil {
		p.Ready(ctx)
	}
	return p, g, func() { g.Close(); ps.Close(); d.Close(); p.Close() }
}

// A password group: the right password joins and sees the creator's presence;
// a wrong one is refused before anything is sent.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sp, _, stop := start(ctx, "super-peer", nil)
	defer stop()
	alice, ag, stopA := start(ctx, "alice", sp)
	defer stopA()
	_, bg, stopB := start(ctx, "bob", sp)
	defer stopB()

	club, err := ag.Create(ctx, groups.Spec{Name: "chess club", Policy: groups.PolicyPassword, Password: "e2e4 e7e5"})
	if err != nil {
		log.Fatal(err)
	}
	club.SetPresence(groups.Busy, "thinking")

	found, _ := bg.Find(ctx, "chess*")
	_, err = bg.Join(ctx, groups.Password(found[0], "1. f3?"))
	fmt.Println(errors.Is(err, groups.ErrWrongPassword))
	mine, err := bg.Join(ctx, groups.Password(found[0], "e2e4 e7e5"))
	if err != nil {
		log.Fatal(err)
	}
	for {
		for _, m := range mine.Members() {
			if m.ID == alice.ID() && m.State == groups.Busy {
				fmt.Println(m.Name, m.State, m.Text)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Output:
	// true
	// alice busy thinking
}
