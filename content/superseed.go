package content

import "math/rand/v2"

// Super-seeding, as BitTorrent's BEP 16: a seed that serves several
// downloaders at once does not show each of them its whole bitfield, only
// superSeedAhead pieces at a time, the pieces it has sent least (never sent
// first), and shows one more with each piece it sends. Without it, all
// downloaders start with the same view (every piece only at the seed, all
// equally rare), ask the seed for the same pieces one after another, and the
// seed uploads well over one copy before the swarm holds one (1.3–1.7 copies
// seen in TestLabSwarmNearBound); with it, the seed's uplink puts a new piece
// into the swarm with nearly every send, and the downloaders trade the rest.
//
// It uses only frames the protocol has (the info bitfield and haves), so a
// downloader does not know it is super-seeded. A downloader may still ask
// for a piece it was not shown; it is served as any request. Super-seeding
// ends, and every downloader is shown every piece, once each piece has been
// sent at least once: from then on the swarm holds a copy.
const (
	superSeedAhead = 6
	// superSeedMaxPieces bounds the content a seed super-seeds (4 GiB): its
	// counters take 4 bytes a piece, and ending shows each downloader every
	// piece, one have frame each.
	superSeedMaxPieces = 1 << 14
)

// superSeed is the state of a super-seeding swarm, guarded by swarm.mu.
type superSeed struct {
	sent   []uint16 // times each piece was sent (saturating)
	shown  []uint16 // sessions each piece was shown to or sent to (saturating)
	unsent int      // pieces never sent
	active int      // sessions open
}

func newSuperSeed(n int) *superSeed {
	if n > superSeedMaxPieces || n < 2*superSeedAhead {
		return nil
	}
	return &superSeed{sent: make([]uint16, n), shown: make([]uint16, n), unsent: n}
}

// superView is a super-seeded session's view, guarded by swarm.mu.
type superView struct {
	shown   bitfield            // pieces shown to the downloader
	nshown  int                 // pieces in shown
	pending map[uint32]struct{} // shown and neither sent nor cancelled: at most superSeedAhead
}

// introBitfield returns the bitfield to send us in its info frame: the
// swarm's, or when us is super-seeded the first pieces it is shown.
func (sw *swarm) introBitfield(us *upSession) bitfield {
	sw.mu.Lock()
	ss := sw.super
	if ss != nil {
		ss.active++
		us.superCounted = true
	}
	// A lone downloader is served as from any seed: its whole pipeline,
	// and no pieces shown that it gets elsewhere.
	if ss == nil || ss.active < 2 {
		sw.mu.Unlock()
		return sw.bitfield()
	}
	defer sw.mu.Unlock()
	us.view = &superView{shown: newBitfield(len(ss.sent)), pending: map[uint32]struct{}{}}
	sw.reveal(us, superSeedAhead, false)
	return append(bitfield(nil), us.view.shown...)
}

// superJoin is called when us joins sw.sessions, with sw.mu held: a session
// shown a part whose super-seeding ended meanwhile is shown the rest.
func (sw *swarm) superJoin(us *upSession) {
	if us.view != nil && sw.super == nil {
		sw.showAll(us)
	}
}

// superLeave forgets a session of the swarm. A downloader left alone is
// shown everything: it is served as a lone downloader would be (the one
// that left may have been a finished download's stream, still closing when
// the next one began). Called with sw.mu held.
func (sw *swarm) superLeave(us *upSession) {
	if sw.super != nil && us.superCounted {
		sw.super.active--
		if sw.super.active == 1 {
			for o := range sw.sessions {
				if o != us {
					sw.showAll(o)
				}
			}
		}
	}
	us.superCounted = false
}

// reveal shows us up to k more pieces, never sent ones first and among them
// the least shown, starting the scan at random so that ties go to different
// pieces for different downloaders; with haves set, as have frames. One scan
// of the pieces whatever k. Called with sw.mu held.
func (sw *swarm) reveal(us *upSession, k int, haves bool) {
	ss, v := sw.super, us.view
	if ss == nil || v == nil {
		return
	}
	n := len(ss.sent)
	type cand struct {
		i   int
		key int
	}
	best := make([]cand, 0, k)
	start := rand.IntN(n)
	for j := range n {
		i := (start + j) % n
		if v.shown.has(i) {
			continue
		}
		key := int(ss.shown[i])
		if ss.sent[i] > 0 {
			key += 1 << 16
		}
		if len(best) < k {
			best = append(best, cand{i, key})
			continue
		}
		worst := 0
		for b := range best {
			if best[b].key > best[worst].key {
				worst = b
			}
		}
		if key < best[worst].key {
			best[worst] = cand{i, key}
		}
	}
	var out []uint32
	for _, c := range best {
		v.shown.set(c.i)
		v.nshown++
		v.pending[uint32(c.i)] = struct{}{}
		ss.shown[c.i] = satInc(ss.shown[c.i])
		out = append(out, uint32(c.i))
	}
	if haves && len(out) > 0 {
		us.queueHaves(out)
	}
}

// superSent counts piece i sent to us, shows us the next piece, and ends
// super-seeding once every piece was sent.
func (sw *swarm) superSent(us *upSession, i int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	ss := sw.super
	if ss == nil {
		return
	}
	if ss.sent[i] == 0 {
		ss.unsent--
	}
	ss.sent[i] = satInc(ss.sent[i])
	if v := us.view; v == nil || !v.shown.has(i) {
		ss.shown[i] = satInc(ss.shown[i])
	} else if _, ok := v.pending[uint32(i)]; ok {
		delete(v.pending, uint32(i))
		sw.reveal(us, 1, true)
	}
	if ss.unsent == 0 {
		sw.endSuper()
	}
}

// superCancel handles a downloader's cancel of piece i: a piece it was
// shown and got elsewhere makes room for the next.
func (sw *swarm) superCancel(us *upSession, i int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if v := us.view; sw.super != nil && v != nil {
		if _, ok := v.pending[uint32(i)]; ok {
			delete(v.pending, uint32(i))
			sw.reveal(us, 1, true)
		}
	}
}

// superUninterested handles a downloader that lost interest: it holds every
// piece it was shown (it got them elsewhere), so it is shown a new batch.
func (sw *swarm) superUninterested(us *upSession) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if v := us.view; sw.super != nil && v != nil {
		clear(v.pending)
		sw.reveal(us, superSeedAhead, true)
	}
}

// endSuper shows every super-seeded session the pieces it was not shown.
// Called with sw.mu held.
func (sw *swarm) endSuper() {
	sw.super = nil
	sw.superOn.Store(false)
	for us := range sw.sessions {
		sw.showAll(us)
	}
}

// showAll shows us every piece it was not shown. Called with sw.mu held.
func (sw *swarm) showAll(us *upSession) {
	v := us.view
	if v == nil {
		return
	}
	var out []uint32
	for i := range len(v.shown) * 8 {
		if i < sw.t.pieces() && !v.shown.has(i) {
			out = append(out, uint32(i))
		}
	}
	us.view = nil
	us.queueHaves(out)
}

// queueHaves queues have frames for us's writer.
func (us *upSession) queueHaves(is []uint32) {
	us.mu.Lock()
	us.haves = append(us.haves, is...)
	us.mu.Unlock()
	us.poke()
}

func satInc(v uint16) uint16 {
	if v == ^uint16(0) {
		return v
	}
	return v + 1
}
