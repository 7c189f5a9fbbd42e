package groups

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// State is a member's presence, as in ICQ.
type State string

const (
	Online       State = "online"
	Away         State = "away"
	Busy         State = "busy"
	DoNotDisturb State = "dnd"
	// Invisible: shown offline to others, while its pipes keep working.
	Invisible State = "invisible"
	Offline   State = "offline"
)

func validState(s State) bool {
	switch s {
	case Online, Away, Busy, DoNotDisturb, Invisible, Offline:
		return true
	}
	return false
}

// Member is one entry of a group's member list.
type Member struct {
	ID       peer.ID
	Name     string
	State    State
	Text     string // status text
	LastSeen time.Time
}

// MemberEvent is a change in the member list: a member appeared, changed state
// or text, or went offline (left, or silent for longer than OfflineAfter).
type MemberEvent struct {
	Member   Member
	Previous State // "" when the member is new
}

// presenceTopic is the propagate pipe, in the group's scope, that carries
// presence. In password and invite groups it is encrypted like any other.
const presenceTopic = "juxta.presence"

// presenceMsg is one announcement. Seq orders one sender's announcements:
// GossipSub does not keep a sender's messages in order, so a receiver applies
// only an announcement newer than the last it applied from that sender.
// Otherwise a heartbeat that left before "offline" but arrived after it would
// show an invisible member online again.
type presenceMsg struct {
	State string `cbor:"1,keyasint"`
	Text  string `cbor:"2,keyasint,omitempty"`
	Name  string `cbor:"3,keyasint,omitempty"`
	Seq   uint64 `cbor:"4,keyasint"`
}

type presence struct {
	g      *Group
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	bus    *event.Bus[MemberEvent]
	kick   chan struct{} // publish now
	joined chan struct{} // closed once the presence topic is joined

	mu      sync.Mutex
	self    Member
	members map[peer.ID]*Member // others
	seqs    map[peer.ID]uint64  // the last Seq applied from each other member
	// forgotten keeps the last Seq of members no longer listed, so that an
	// old signed announcement replayed after they were forgotten cannot list
	// them again. Bounded: an open group's members are unbounded identities.
	forgotten *lru.Cache[peer.ID, uint64]
	seq       uint64       // this peer's last Seq sent
	left      bool         // the goodbye is sent: announce nothing more
	topic     *pipes.Topic // nil until joined
	once      sync.Once
}

func newPresence(g *Group) *presence {
	pr := &presence{
		g:       g,
		bus:     event.New[MemberEvent](),
		kick:    make(chan struct{}, 1),
		joined:  make(chan struct{}),
		members: map[peer.ID]*Member{},
		seqs:    map[peer.ID]uint64{},
		// Starting from the clock keeps a restarted peer's announcements
		// newer than those of its previous run.
		seq:  uint64(time.Now().UnixNano()),
		self: Member{ID: g.s.p.ID(), Name: g.s.p.Name(), State: Online, LastSeen: time.Now()},
	}
	// The cache's size is positive, so New cannot fail.
	pr.forgotten, _ = lru.New[peer.ID, uint64](g.s.cfg.MaxMembers)
	pr.ctx, pr.cancel = context.WithCancel(g.s.ctx)
	pr.wg.Add(1)
	go pr.run()
	if g.info.Policy == PolicyPassword {
		pr.wg.Add(1)
		go g.watchRotations(pr.ctx, &pr.wg)
	}
	return pr
}

// run joins the presence topic, then heartbeats, listens and sweeps.
func (pr *presence) run() {
	defer pr.wg.Done()
	var topic *pipes.Topic
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		t, err := pr.g.pipes.Join(pr.ctx, presenceTopic)
		if err == nil {
			topic = t
			break
		}
		pr.g.s.log.Debug("joining presence failed", "group", pr.g.info.ID, "err", err)
		select {
		case <-pr.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	pr.mu.Lock()
	pr.topic = topic
	pr.mu.Unlock()
	close(pr.joined)
	pr.wg.Add(1)
	go pr.listen(topic)
	cfg := pr.g.s.cfg
	beat := time.NewTicker(cfg.Heartbeat)
	defer beat.Stop()
	sweep := time.NewTicker(min(cfg.OfflineAfter/4, time.Second))
	defer sweep.Stop()
	// Fast start: the first announcements go out before GossipSub has a mesh
	// for a fresh topic, so repeat them soon rather than at the heartbeat.
	var fast <-chan time.Time
	fastWait := 250 * time.Millisecond
	if fastWait < cfg.Heartbeat {
		fast = time.After(fastWait)
	}
	pr.publish()
	for {
		select {
		case <-pr.ctx.Done():
			return
		case <-fast:
			pr.publish()
			if fastWait *= 2; fastWait < cfg.Heartbeat {
				fast = time.After(fastWait)
			} else {
				fast = nil
			}
		case <-beat.C:
			pr.publish()
		case <-pr.kick:
			pr.publish()
		case now := <-sweep.C:
			pr.sweep(now)
		}
	}
}

// publish announces this peer's state; an invisible peer announces nothing
// (it announced offline once when it became invisible), nor does one that has
// said goodbye.
func (pr *presence) publish() {
	pr.mu.Lock()
	if pr.topic == nil || pr.left || pr.self.State == Invisible {
		pr.mu.Unlock()
		return
	}
	topic, m := pr.topic, pr.messageLocked(pr.self.State, pr.self.Text)
	pr.mu.Unlock()
	pr.send(topic, m)
}

// messageLocked builds the next announcement. The state and its Seq are taken
// together under pr.mu, so a later state always carries a larger Seq.
func (pr *presence) messageLocked(st State, text string) presenceMsg {
	pr.seq++
	return presenceMsg{State: string(st), Text: text, Name: pr.self.Name, Seq: pr.seq}
}

func (pr *presence) send(topic *pipes.Topic, m presenceMsg) {
	b, err := encMode.Marshal(m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(pr.ctx, 5*time.Second)
	defer cancel()
	if err := topic.Publish(ctx, b); err != nil {
		pr.g.s.log.Debug("presence publish failed", "group", pr.g.info.ID, "err", err)
	}
}

func (pr *presence) listen(topic *pipes.Topic) {
	defer pr.wg.Done()
	for {
		m, err := topic.Next(pr.ctx)
		if err != nil {
			return
		}
		if m.From == pr.g.s.p.ID() {
			continue
		}
		pr.receive(m.From, m.Data, time.Now())
	}
}

// receive applies one announcement from another member, if it is valid and
// newer than the last applied from that member.
func (pr *presence) receive(from peer.ID, data []byte, now time.Time) {
	var pm presenceMsg
	if decMode.Unmarshal(data, &pm) != nil || !validState(State(pm.State)) || State(pm.State) == Invisible {
		return
	}
	pr.update(from, State(pm.State), pm.Text, pm.Name, pm.Seq, now)
}

func (pr *presence) update(id peer.ID, st State, text, name string, seq uint64, now time.Time) {
	if len(text) > 256 {
		text = text[:256]
	}
	if len(name) > 64 {
		name = name[:64]
	}
	pr.mu.Lock()
	last, ok := pr.seqs[id]
	if !ok {
		last, _ = pr.forgotten.Peek(id)
	}
	if seq <= last {
		// Older than what we have (delivered out of order, or replayed,
		// possibly after the member was forgotten).
		pr.mu.Unlock()
		return
	}
	m, known := pr.members[id]
	if !known && len(pr.members) >= pr.g.s.cfg.MaxMembers && !pr.evictLocked() {
		pr.mu.Unlock()
		return // full of members heard from lately: drop the newcomer
	}
	pr.seqs[id] = seq
	pr.forgotten.Remove(id)
	if !known {
		m = &Member{ID: id}
		pr.members[id] = m
	}
	prev := m.State
	changed := !known || m.State != st || m.Text != text || m.Name != name
	m.State, m.Text, m.Name, m.LastSeen = st, text, name, now
	snap := *m
	pr.mu.Unlock()
	if changed {
		if !known {
			prev = ""
			// A newcomer: announce ourselves now, not at the next heartbeat.
			select {
			case pr.kick <- struct{}{}:
			default:
			}
		}
		pr.bus.Publish(MemberEvent{Member: snap, Previous: prev})
	}
}

// DefaultMaxMembers bounds the member list of a group, which anyone can join
// in an open group (the net group above all) with as many identities as they
// like; Config.MaxMembers changes it.
const DefaultMaxMembers = 4096

// evictLocked forgets the member offline the longest, if any is offline.
func (pr *presence) evictLocked() bool {
	var victim *Member
	for _, m := range pr.members {
		if m.State == Offline && (victim == nil || m.LastSeen.Before(victim.LastSeen)) {
			victim = m
		}
	}
	if victim == nil {
		return false
	}
	pr.forgetLocked(victim.ID)
	return true
}

// forgetLocked drops a member from the list, remembering its last Seq.
func (pr *presence) forgetLocked(id peer.ID) {
	pr.forgotten.Add(id, pr.seqs[id])
	delete(pr.members, id)
	delete(pr.seqs, id)
}

// memberCount is how many members are listed, offline ones included.
func (g *Group) memberCount() int {
	g.presence.mu.Lock()
	defer g.presence.mu.Unlock()
	return len(g.presence.members)
}

// sweep shows members offline once they have been silent too long, and
// forgets them ForgetAfter later.
func (pr *presence) sweep(now time.Time) {
	limit := pr.g.s.cfg.OfflineAfter
	var events []MemberEvent
	pr.mu.Lock()
	for id, m := range pr.members {
		if m.State == Offline && now.Sub(m.LastSeen) > limit+pr.g.s.cfg.ForgetAfter {
			pr.forgetLocked(id)
			continue
		}
		if m.State != Offline && now.Sub(m.LastSeen) > limit {
			events = append(events, MemberEvent{Member: Member{ID: m.ID, Name: m.Name, State: Offline, LastSeen: m.LastSeen}, Previous: m.State})
			m.State, m.Text = Offline, ""
		}
	}
	pr.mu.Unlock()
	for _, ev := range events {
		pr.bus.Publish(ev)
	}
}

func (pr *presence) set(st State, text string) {
	pr.mu.Lock()
	was := pr.self.State
	pr.self.State, pr.self.Text = st, text
	topic := pr.topic
	if st == Invisible && was != Invisible && topic != nil && !pr.left {
		m := pr.messageLocked(Offline, "")
		pr.mu.Unlock()
		pr.send(topic, m)
		return
	}
	pr.mu.Unlock()
	select {
	case pr.kick <- struct{}{}:
	default:
	}
}

// announceOffline says goodbye: after it, this peer announces nothing, so no
// later heartbeat (with a larger Seq) can show it online again.
func (pr *presence) announceOffline(ctx context.Context) {
	pr.mu.Lock()
	if pr.left || pr.topic == nil {
		pr.left = true
		pr.mu.Unlock()
		return
	}
	pr.left = true
	topic, m := pr.topic, pr.messageLocked(Offline, "")
	pr.mu.Unlock()
	pr.send(topic, m)
}

func (pr *presence) stop() {
	pr.once.Do(func() {
		pr.cancel()
		pr.wg.Wait()
		pr.mu.Lock()
		topic := pr.topic
		pr.mu.Unlock()
		if topic != nil {
			topic.Close()
		}
		pr.bus.Close()
	})
}

// SetPresence sets this peer's state and status text in the group and announces
// it at once. Invisible shows this peer offline to others; its pipes keep
// working.
func (g *Group) SetPresence(st State, text string) error {
	if !validState(st) {
		return fmt.Errorf("groups: unknown presence state %q (one of online, away, busy, dnd, invisible, offline)", st)
	}
	g.presence.set(st, text)
	return nil
}

// Members returns the member list: this peer first, then the others by name.
func (g *Group) Members() []Member {
	pr := g.presence
	pr.mu.Lock()
	out := []Member{pr.self}
	var others []Member
	for _, m := range pr.members {
		others = append(others, *m)
	}
	pr.mu.Unlock()
	slices.SortFunc(others, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return append(out, others...)
}

// SubscribeMembers delivers member list changes under juxta's one event
// contract (package event): drain C; a full buffer drops and counts;
// C closes when ctx ends or the group is left.
func (g *Group) SubscribeMembers(ctx context.Context, buffer int) *event.Subscription[MemberEvent] {
	return g.presence.bus.Subscribe(ctx, buffer)
}

// AwaitPresence waits until this peer has joined the group's presence
// channel, so that its state reaches the other members. It returns ctx's
// error, wrapped, when ctx ends first, and an error wrapping net.ErrClosed
// when the group is left or the service closed.
func (g *Group) AwaitPresence(ctx context.Context) error {
	select {
	case <-g.presence.joined:
		return nil
	default:
	}
	select {
	case <-g.presence.joined:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("groups: await presence: %w", ctx.Err())
	case <-g.presence.ctx.Done():
		select {
		case <-g.presence.joined:
			return nil
		default:
		}
		return fmt.Errorf("groups: await presence: %w", net.ErrClosed)
	}
}
