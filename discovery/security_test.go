package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/juxta-p2p/juxta/peer"
)

// Every receiving path must reject each of the bad advertisements below, count
// the drop under the right reason, and still accept a good advertisement that
// arrives in the same message. The paths: a LAN neighbour's answer, a
// super-peer's answer, a DHT provider's answer, a super-peer's publish, and a
// super-peer's forwarded answer.

const secType = "fileshare.file"

// secKeys are the identities a bad advertisement is built from: self sends it
// (and, on the publish path, is the stream's peer); other is a bystander.
type secKeys struct {
	self    crypto.PrivKey
	selfID  peer.ID
	other   crypto.PrivKey
	otherID peer.ID
}

func secNewKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := keyID(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func secKeysFor(t *testing.T, self crypto.PrivKey) secKeys {
	t.Helper()
	selfID, err := keyID(self)
	if err != nil {
		t.Fatal(err)
	}
	other, otherID := secNewKey(t)
	return secKeys{self: self, selfID: selfID, other: other, otherID: otherID}
}

// secAd is a well-formed advertisement named id whose "name" is value, as pub
// publishes it now.
func secAd(id, value string, pub peer.ID) Advertisement {
	return Advertisement{
		Type: secType, ID: id, Attrs: map[string]string{"name": value},
		Body:     []byte("body of " + id),
		Lifetime: time.Hour, Expiration: 15 * time.Minute,
		Publisher: pub, Seq: 1, Issued: time.Now(),
	}
}

func secSeal(t *testing.T, ad Advertisement, key crypto.PrivKey) []byte {
	t.Helper()
	raw, err := seal(ad, key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// secCase is one advertisement a receiver must drop, and the reason it counts.
type secCase struct {
	name   string
	reason string
	// answerOnly: only answers are checked against a query (scope, match).
	answerOnly bool
	// publishOnly: only a publish is checked against the stream's peer.
	publishOnly bool
	// make builds the envelope, with a "name" of value, and returns the key
	// it would be cached under were it accepted.
	make func(t *testing.T, k secKeys, value string) ([]byte, Key)
}

var secCases = []secCase{
	{
		name: "flipped-bit", reason: DropBadSignature,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			ad := secAd("bad-"+value, value, k.selfID)
			raw := secSeal(t, ad, k.self)
			payload, err := (&adRecord{ad: ad}).MarshalRecord()
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(raw, payload)
			if i < 0 {
				t.Fatal("payload not found in envelope")
			}
			raw[i+len(payload)/2] ^= 0x01 // one bit inside the signed payload
			return raw, ad.Key()
		},
	},
	{
		name: "wrong-signer", reason: DropWrongPublisher,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			// Signed by self, claiming to be other's.
			ad := secAd("bad-"+value, value, k.otherID)
			return secSeal(t, ad, k.self), ad.Key()
		},
	},
	{
		name: "expired", reason: DropExpired,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			ad := secAd("bad-"+value, value, k.selfID)
			ad.Issued = time.Now().Add(-2 * time.Hour)
			ad.Lifetime = time.Hour
			return secSeal(t, ad, k.self), ad.Key()
		},
	},
	{
		name: "future", reason: DropFuture,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			ad := secAd("bad-"+value, value, k.selfID)
			ad.Issued = time.Now().Add(time.Hour)
			return secSeal(t, ad, k.self), ad.Key()
		},
	},
	{
		name: "oversized", reason: DropOversized,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			// seal refuses to build it: sign and encode by hand.
			ad := secAd("bad-"+value, value, k.selfID)
			ad.Body = bytes.Repeat([]byte{'x'}, MaxAdSize)
			env, err := record.Seal(&adRecord{ad: ad}, k.self)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) <= MaxAdSize {
				t.Fatalf("envelope of %d bytes is not oversized", len(raw))
			}
			return raw, ad.Key()
		},
	},
	{
		name: "other-scope", reason: DropScope, answerOnly: true,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			// Valid and matching, but of a group the query is not about.
			ad := secAd("bad-"+value, value, k.selfID)
			ad.Scope = "some-other-group"
			return secSeal(t, ad, k.self), ad.Key()
		},
	},
	{
		name: "not-matching", reason: DropScope, answerOnly: true,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			// Valid, but not what was asked for.
			ad := secAd("bad-"+value, "unrelated-"+value, k.selfID)
			return secSeal(t, ad, k.self), ad.Key()
		},
	},
	{
		name: "relayed-publish", reason: DropWrongPublisher, publishOnly: true,
		make: func(t *testing.T, k secKeys, value string) ([]byte, Key) {
			// Valid and signed by its publisher, but pushed by someone else.
			ad := secAd("bad-"+value, value, k.otherID)
			return secSeal(t, ad, k.other), ad.Key()
		},
	},
}

func secAnswerCases() []secCase {
	var out []secCase
	for _, c := range secCases {
		if !c.publishOnly {
			out = append(out, c)
		}
	}
	return out
}

func secPublishCases() []secCase {
	var out []secCase
	for _, c := range secCases {
		if !c.answerOnly {
			out = append(out, c)
		}
	}
	return out
}

// secDrops returns the counters that changed between two Stats.Dropped.
func secDrops(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func secWantDrop(t *testing.T, who string, before, after map[string]uint64, reason string) {
	t.Helper()
	if got, want := secDrops(before, after), map[string]uint64{reason: 1}; !maps.Equal(got, want) {
		t.Errorf("%s dropped %v, want %v", who, got, want)
	}
}

// hostile is a peer without discovery whose own handler answers every query
// with whatever answer holds.
type hostile struct {
	p       *peer.Peer
	key     crypto.PrivKey
	answer  atomic.Pointer[[][]byte]
	queries atomic.Int64
}

func newHostile(t *testing.T, cfg peer.Config) *hostile {
	t.Helper()
	p, err := peer.New(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h := &hostile{p: p, key: p.Libp2p().Key}
	p.Libp2p().Host.SetStreamHandler(ProtocolID, h.handle)
	return h
}

func (h *hostile) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(StreamTimeout))
	cn := newConn(s, func() {})
	var req request
	if err := cn.recv(&req); err != nil {
		s.Reset()
		return
	}
	resp := response{Done: true}
	if req.Op == opQuery {
		h.queries.Add(1)
		if a := h.answer.Load(); a != nil {
			resp.Ads = *a
		}
	}
	if err := cn.send(resp); err != nil {
		s.Reset()
	}
}

// secAnswerPath is one receiving path for answers: the hostile peer h answers,
// victim is the peer that receives its answer (whose counters and cache are
// checked), setup prepares each case (e.g. announces its value in the DHT), and
// find runs the search.
type secAnswerPath struct {
	h      *hostile
	victim *core
	setup  func(t *testing.T, value string) // may be nil
	find   func(t *testing.T, q Query) []Result
	// finder, when set, must not see any drop: the path is filtered upstream.
	finder *core
}

// secRunAnswerPath runs every answer case against one path: the hostile peer
// answers with the bad advertisement and then a good one.
func secRunAnswerPath(t *testing.T, path secAnswerPath) {
	for _, c := range secAnswerCases() {
		t.Run(c.name, func(t *testing.T) {
			keys := secKeysFor(t, path.h.key)
			value := "target-" + c.name
			bad, badKey := c.make(t, keys, value)
			goodAd := secAd("good-"+value, value, keys.selfID)
			good := secSeal(t, goodAd, keys.self)
			ads := [][]byte{bad, good}
			path.h.answer.Store(&ads)
			if path.setup != nil {
				path.setup(t, value)
			}

			before := path.victim.Stats().Dropped
			var finderBefore map[string]uint64
			if path.finder != nil {
				finderBefore = path.finder.Stats().Dropped
			}
			asked := path.h.queries.Load()
			res := path.find(t, Query{Type: secType, Attr: "name", Value: value})
			if path.h.queries.Load() == asked {
				t.Fatal("the hostile peer was never asked")
			}

			// The good advertisement is accepted: the path works.
			if len(res) != 1 || res[0].Key() != goodAd.Key() {
				t.Fatalf("found %d results %+v, want only %s", len(res), res, goodAd.ID)
			}
			cacher := path.victim // a forwarding super-peer caches nothing
			if path.finder != nil {
				cacher = path.finder
			}
			if _, ok := cacher.store.get(goodAd.Key()); !ok {
				t.Errorf("good advertisement not cached")
			}
			// The bad one is neither returned nor cached.
			if _, ok := path.victim.store.get(badKey); ok {
				t.Errorf("%s: bad advertisement cached", c.name)
			}
			secWantDrop(t, "receiver", before, path.victim.Stats().Dropped, c.reason)
			if path.finder != nil {
				if d := secDrops(finderBefore, path.finder.Stats().Dropped); len(d) != 0 {
					t.Errorf("a bad advertisement reached the asker, which dropped %v", d)
				}
				if _, ok := path.finder.store.get(badKey); ok {
					t.Errorf("%s: bad advertisement cached by the asker", c.name)
				}
			}
		})
	}
}

func secFind(n *node, src Source) func(*testing.T, Query) []Result {
	return func(t *testing.T, q Query) []Result {
		q.Sources = src
		return collect(t, n.d, q)
	}
}

// The table itself: Verify gives each bad advertisement its reason.
func TestSecurityVerifyReasons(t *testing.T) {
	self, _ := secNewKey(t)
	keys := secKeysFor(t, self)
	for _, c := range secCases {
		t.Run(c.name, func(t *testing.T) {
			raw, _ := c.make(t, keys, "v")
			ad, err := Verify(raw, time.Now())
			if c.reason == DropScope || c.publishOnly {
				// Valid on its own; dropped only in context.
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified: %+v", ad)
			}
			if !errors.Is(err, ErrRejected) {
				t.Errorf("error %v does not wrap ErrRejected", err)
			}
			if got := dropReason(err); got != c.reason {
				t.Errorf("reason %q, want %q (err %v)", got, c.reason, err)
			}
		})
	}
}

// A LAN neighbour answers a query with bad advertisements.
func TestSecurityRejectsLANAnswer(t *testing.T) {
	h := newHostile(t, peer.TestConfig())
	victim := edge(t, Config{NoPeerAdvertisement: true})
	if _, err := victim.p.Connect(testCtx(t), h.p.Addr()); err != nil {
		t.Fatal(err)
	}
	secRunAnswerPath(t, secAnswerPath{h: h, victim: victim.d.core, find: secFind(victim, SourceLAN)})
}

// A super-peer the victim relies on answers with bad advertisements.
func TestSecurityRejectsSuperPeerAnswer(t *testing.T) {
	h := newHostile(t, peer.TestSuperPeerConfig())
	cfg := peer.TestConfig()
	cfg.SuperPeers = []string{h.p.Invite()}
	victim := newNode(t, cfg, Config{NoPeerAdvertisement: true})
	if err := victim.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	secRunAnswerPath(t, secAnswerPath{h: h, victim: victim.d.core, find: secFind(victim, SourceSuperPeers)})
}

// A super-peer forwards a query to another super-peer, which answers with bad
// advertisements: the forwarding super-peer drops them, so the asker never sees
// them.
func TestSecurityRejectsForwardedAnswer(t *testing.T) {
	h := newHostile(t, peer.TestSuperPeerConfig())
	cfg := peer.TestSuperPeerConfig()
	cfg.SuperPeers = []string{h.p.Invite()}
	sp := newNode(t, cfg, Config{NoPeerAdvertisement: true})
	if err := sp.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	asker := edge(t, Config{NoPeerAdvertisement: true}, sp)
	secRunAnswerPath(t, secAnswerPath{h: h, victim: sp.d.core, finder: asker.d.core, find: secFind(asker, SourceSuperPeers)})
}

// The victim finds a hostile provider in the DHT's provider records and fetches
// from it.
func TestSecurityRejectsDHTFetch(t *testing.T) {
	s1 := superPeer(t)
	s2 := superPeer(t, s1)
	cfg := peer.TestConfig()
	cfg.SuperPeers = []string{s1.p.Invite()}
	h := newHostile(t, cfg)
	if err := h.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	victim := edge(t, Config{NoPeerAdvertisement: true}, s2)
	provide := func(t *testing.T, value string) {
		ctx := testCtx(t)
		if err := h.p.Libp2p().Routing.Provide(ctx, dhtKey("", secType, "name", value), true); err != nil {
			t.Fatalf("provide: %v", err)
		}
		// ADD_PROVIDER is one-way: wait until both DHT servers hold the record.
		// The polling runs on the test's ctx, not a short one that would end
		// the wait long before its patience on a loaded machine.
		key := dhtKey("", secType, "name", value).Hash()
		eventually(t, "provider records", func() bool {
			for _, s := range []*node{s1, s2} {
				provs, err := s.p.Libp2p().Routing.ProviderStore().GetProviders(ctx, key)
				if err != nil || len(provs) == 0 {
					return false
				}
			}
			return true
		})
	}
	find := func(t *testing.T, q Query) []Result {
		q.Sources = SourceDHT
		if !q.exact() {
			t.Fatalf("query %+v is not exact", q)
		}
		return collect(t, victim.d, q)
	}
	secRunAnswerPath(t, secAnswerPath{h: h, victim: victim.d.core, setup: provide, find: find})
}

// secPublish sends one raw publish request from h to the peer to.
func secPublish(ctx context.Context, h host.Host, to peer.ID, ads [][]byte) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, lpeer.ID(to), ProtocolID)
	if err != nil {
		return response{}, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	cn := newConn(s, func() {})
	if err := cn.send(request{Op: opPublish, Ads: ads}); err != nil {
		s.Reset()
		return response{}, err
	}
	_ = s.CloseWrite()
	var resp response
	if err := cn.recv(&resp); err != nil {
		s.Reset()
		return response{}, err
	}
	if !resp.Done {
		return resp, fmt.Errorf("publish answer not done: %+v", resp)
	}
	return resp, nil
}

// A peer publishes bad advertisements to a super-peer.
func TestSecurityRejectsSuperPeerPublish(t *testing.T) {
	sp := superPeer(t)
	client := newHostile(t, peer.TestConfig())
	if _, err := client.p.Connect(testCtx(t), sp.p.Addr()); err != nil {
		t.Fatal(err)
	}
	for _, c := range secPublishCases() {
		t.Run(c.name, func(t *testing.T) {
			keys := secKeysFor(t, client.key)
			value := "target-" + c.name
			bad, badKey := c.make(t, keys, value)
			goodAd := secAd("good-"+value, value, keys.selfID)
			good := secSeal(t, goodAd, keys.self)

			before := sp.d.Stats().Dropped
			resp, err := secPublish(testCtx(t), client.p.Libp2p().Host, sp.p.ID(), [][]byte{bad, good})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Accepted != 1 || resp.Code != codeInvalid {
				t.Errorf("answer %+v, want 1 accepted and code %d", resp, codeInvalid)
			}
			if _, ok := sp.d.store.get(badKey); ok {
				t.Errorf("bad advertisement indexed")
			}
			if _, ok := sp.d.store.get(goodAd.Key()); !ok {
				t.Errorf("good advertisement not indexed")
			}
			got, err := sp.d.Local(Query{Type: secType, Attr: "name", Value: value})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Key() != goodAd.Key() {
				t.Errorf("index holds %+v, want only %s", got, goodAd.ID)
			}
			secWantDrop(t, "super-peer", before, sp.d.Stats().Dropped, c.reason)
		})
	}
}
