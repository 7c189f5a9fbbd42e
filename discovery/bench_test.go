package discovery

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkAsk is one exact query answered by a connected peer that holds
// the advertisement (what an exact DHT query does once it has found the
// provider), beside a raw libp2p stream round trip of the same shape (100 B
// out, 1 KiB back) on the same connection:
//
//	go test -run XXX -bench Ask ./discovery/
func BenchmarkAsk(b *testing.B) {
	ctx := context.Background()
	pub := edge(b, Config{NoPeerAdvertisement: true, NoDHT: true})
	seeker := edge(b, Config{NoPeerAdvertisement: true, NoDHT: true, QueryRate: 1e9})
	pub.d.cfg.QueryRate = 1e9
	ad := fileAd("iso", "debian-13.iso")
	ad.Attrs["sha256"] = "9f86d081884c7d659a2feaa0c55ad015"
	if _, err := pub.d.Publish(ctx, ad); err != nil {
		b.Fatal(err)
	}
	if _, err := seeker.p.Connect(ctx, pub.p.Addr()); err != nil {
		b.Fatal(err)
	}
	q := Query{Type: "fileshare.file", Attr: "sha256", Value: ad.Attrs["sha256"], Limit: DefaultLimit, Scope: seeker.d.scope}
	if err := q.normalize(); err != nil {
		b.Fatal(err)
	}
	b.Run("juxta", func(b *testing.B) {
		for b.Loop() {
			n := 0
			err := seeker.d.fetch(ctx, pub.p.ID(), q.request(newQID(), false), &q, func(Result) bool { n++; return true })
			if err != nil || n != 1 {
				b.Fatalf("%d answers: %v", n, err)
			}
		}
	})
	const proto = "/juxta-bench/rr/1"
	reply := make([]byte, 1024)
	pub.p.Libp2p().Host.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		io.Copy(io.Discard, io.LimitReader(s, 64<<10))
		s.Write(reply)
	})
	req := make([]byte, 100)
	b.Run("raw", func(b *testing.B) {
		h := seeker.p.Libp2p().Host
		for b.Loop() {
			s, err := h.NewStream(ctx, lpeer.ID(pub.p.ID()), proto)
			if err != nil {
				b.Fatal(err)
			}
			s.SetDeadline(time.Now().Add(10 * time.Second))
			s.Write(req)
			s.CloseWrite()
			var buf [1024]byte
			if _, err := io.ReadFull(s, buf[:]); err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
}
