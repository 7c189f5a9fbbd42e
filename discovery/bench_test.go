package discovery

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkAsk is one exact query answered by a connected peer that holds
// the advertisement (what an exact DHT query does once it has found the
// provider), beside a raw libp2p stream round trip of the same shape (100 B
// out, 1 KiB back) on the same connection; "find" is the same query through
// Find (the peer asked as a LAN neighbour), so that Find's own cost shows:
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
			err := seeker.d.fetch(ctx, pub.p.ID(), q.request(newQID(), false), &q, func(Result, bool) bool { n++; return true })
			if err != nil || n != 1 {
				b.Fatalf("%d answers: %v", n, err)
			}
		}
	})
	b.Run("find", func(b *testing.B) {
		fq := Query{Type: "fileshare.file", Attr: "sha256", Value: ad.Attrs["sha256"], Sources: SourceLAN}
		for b.Loop() {
			n := 0
			for _, err := range seeker.d.Find(ctx, fq) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != 1 {
				b.Fatalf("%d answers", n)
			}
		}
	})
	serveRoundTrip(pub.p.Libp2p().Host)
	b.Run("raw", func(b *testing.B) {
		h := seeker.p.Libp2p().Host
		for b.Loop() {
			rawRoundTrip(ctx, b, h, lpeer.ID(pub.p.ID()))
		}
	})
}

// BenchmarkExactDHT is an exact query found through the DHT (3 super-peers,
// the publisher and the seeker on different ones) beside what it should cost
// at most: kad-dht's own lookup of the same key, drained, then one raw stream
// round trip to the provider (100 B out, 1 KiB back), on the same hosts:
//
//	go test -run XXX -bench ExactDHT ./discovery/
func BenchmarkExactDHT(b *testing.B) {
	ctx := context.Background()
	s1 := superPeer(b)
	s2 := superPeer(b, s1)
	superPeer(b, s1, s2)
	pub := edge(b, Config{NoPeerAdvertisement: true, QueryRate: 1e9}, s1)
	seeker := edge(b, Config{NoPeerAdvertisement: true}, s2)
	ad := fileAd("iso", "debian-13.iso")
	ad.Attrs["sha256"] = "9f86d081884c7d659a2feaa0c55ad015"
	if _, err := pub.d.Publish(ctx, ad); err != nil {
		b.Fatal(err)
	}
	q := Query{Type: "fileshare.file", Attr: "sha256", Value: ad.Attrs["sha256"], Sources: SourceDHT}
	find := func() int {
		n := 0
		for _, err := range seeker.d.Find(ctx, q) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		return n
	}
	for wait := time.Now().Add(30 * time.Second); find() == 0; { // the provider record is put in the background
		if time.Now().After(wait) {
			b.Fatal("the provider record never turned up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Run("find", func(b *testing.B) {
		for b.Loop() {
			if n := find(); n != 1 {
				b.Fatalf("%d answers", n)
			}
		}
	})
	serveRoundTrip(pub.p.Libp2p().Host)
	key := dhtKey(seeker.d.scope, q.Type, q.Attr, q.Value)
	h, d := seeker.p.Libp2p().Host, seeker.p.Libp2p().Routing
	b.Run("lookup+rt", func(b *testing.B) {
		for b.Loop() {
			var prov lpeer.ID
			for ai := range d.FindProvidersAsync(ctx, key, DefaultLimit) {
				prov = ai.ID
			}
			if prov != lpeer.ID(pub.p.ID()) {
				b.Fatalf("provider %s", prov)
			}
			rawRoundTrip(ctx, b, h, prov)
		}
	})
}

// rrProto is the raw round trip of the benchmarks: 100 B out, 1 KiB back.
const rrProto = "/juxta-bench/rr/1"

// serveRoundTrip answers rrProto on h: it reads the request to its end, then
// writes 1 KiB.
func serveRoundTrip(h host.Host) {
	reply := make([]byte, 1024)
	h.SetStreamHandler(rrProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(io.Discard, io.LimitReader(s, 64<<10))
		s.Write(reply)
	})
}

// rawRoundTrip makes one rrProto round trip from h to id on a new stream.
func rawRoundTrip(ctx context.Context, b *testing.B, h host.Host, id lpeer.ID) {
	s, err := h.NewStream(ctx, id, rrProto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	var req [100]byte
	s.Write(req[:])
	s.CloseWrite()
	var buf [1024]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		b.Fatal(err)
	}
}
