// Package im is the messenger's engine, apart from any user interface:
// identity, contacts with ICQ-style authorization, presence, 1:1 chat over
// reliable message pipes with receipts, an on-disk outbox, the super-peer
// mailbox for contacts who are never online together, group rooms, file
// transfer and searchable history.
//
// A file goes to a contact through the content service (package content):
// the sender shares it in place (hashed once with BLAKE3) and offers it over
// the file pipe; the receiver pulls it in 256 KiB pieces, each verified on
// arrival, so a damaged piece is fetched again rather than the whole file,
// and a transfer interrupted by a dropped connection or a restart of either
// side goes on from the pieces already held (see Transfer).
package im

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Config configures a messenger.
type Config struct {
	// Dir keeps the identity, the contacts and the history. Required.
	Dir string
	// Name is the display name; kept in Dir after the first start.
	Name string
	// SuperPeers are invites of super-peers, for NAT traversal and the mailbox.
	SuperPeers []string
	// Loopback listens on 127.0.0.1 only (tests, two terminals on one machine).
	Loopback bool
	// ListenIP listens on this IP only (default: all interfaces).
	ListenIP string
	// NoMDNS turns LAN discovery off.
	NoMDNS bool
	// Port is a fixed port to listen on (0: any).
	Port int
	// SuperPeer runs this messenger as a super-peer with a mailbox.
	SuperPeer bool
	// AutoAway is the idle time after which an online user shows away.
	// Default 5 minutes; negative turns it off.
	AutoAway time.Duration
	// Heartbeat is how often presence is sent to connected contacts; a contact
	// silent for three heartbeats is shown offline. Default 10 s.
	Heartbeat time.Duration
	// Mailbox bounds the mailbox a super-peer keeps; zero fields take the
	// defaults (SECURITY.md).
	Mailbox MailboxLimits
	Logger  *slog.Logger

	// now, when set, is the clock the groups service judges saved rooms
	// by (groups.Config.Now): a test hook, set before Open.
	now func() time.Time
	// corrupt, when set, damages the pieces this messenger's content
	// service serves (content.WithFaults): a test hook, set before Open.
	corrupt func(piece int, data []byte)
}

// pipe IDs of the messenger.
const (
	chatPipe = "juxta-im"
	filePipe = "juxta-im-file"
)

// Messenger is one user's running messenger.
type Messenger struct {
	cfg    Config
	p      *peer.Peer
	d      *discovery.Service
	ps     *pipes.Service
	gs     *groups.Service
	cs     *content.Service // file transfer; nil in super-peer mode
	st     *store
	mbox   *MailboxServer // super-peer mode
	log    *slog.Logger
	boxPub *[32]byte
	boxKey *[32]byte
	bus    *event.Bus[Event]

	// Events emitted before anyone subscribed (messages fetched from the
	// mailbox at start, a room that could not be rejoined) wait here for the
	// first subscriber, up to maxEarlyEvents.
	emitMu     sync.Mutex
	early      []Event // guarded by emitMu
	subscribed bool    // guarded by emitMu

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu          sync.Mutex
	conns       map[peer.ID]*pipes.MsgConn // guarded by mu; current chat conn per contact
	lastHeard   map[peer.ID]time.Time      // guarded by mu
	presence    map[peer.ID][2]string      // guarded by mu; state, text
	state       string                     // guarded by mu; own presence
	text        string                     // guarded by mu
	autoAway    bool                       // guarded by mu; away was set by idling
	active      time.Time                  // guarded by mu; last user activity
	rooms       map[string]*room           // guarded by mu
	openChat    peer.ID                    // guarded by mu; chat shown in the UI
	transfers   map[string]*Transfer       // guarded by mu
	receiving   map[string]*receiveSlot    // guarded by mu; by sender tag + transfer ID
	invitations map[string]roomInvitation  // guarded by mu; by room name
}

// Open starts a messenger.
func Open(ctx context.Context, cfg Config) (_ *Messenger, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("messenger: a directory is required")
	}
	if cfg.AutoAway == 0 {
		cfg.AutoAway = 5 * time.Minute
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	m := &Messenger{
		cfg: cfg, log: cfg.Logger, bus: event.New[Event](), kick: make(chan struct{}, 1),
		conns: map[peer.ID]*pipes.MsgConn{}, lastHeard: map[peer.ID]time.Time{}, presence: map[peer.ID][2]string{},
		state: string(groups.Online), active: time.Now(), rooms: map[string]*room{}, transfers: map[string]*Transfer{},
		receiving: map[string]*receiveSlot{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	var closers []func() error
	defer func() {
		if err != nil {
			m.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			m.bus.Close()
		}
	}()
	if err := m.openProfile(cfg.Dir); err != nil {
		return nil, err
	}
	closers = append(closers, m.st.close)
	if cfg.Name == "" {
		cfg.Name = string(m.st.meta("name"))
	} else if err := m.st.setMeta("name", []byte(cfg.Name)); err != nil {
		return nil, err
	}
	m.cfg = cfg
	if err := m.loadBoxKey(); err != nil {
		return nil, err
	}

	pcfg, err := peerConfig(cfg)
	if err != nil {
		return nil, err
	}
	if m.p, err = peer.New(ctx, pcfg); err != nil {
		return nil, err
	}
	closers = append(closers, m.p.Close)
	if m.d, err = discovery.New(ctx, m.p, discovery.Config{}); err != nil {
		return nil, err
	}
	closers = append(closers, m.d.Close)
	if m.ps, err = pipes.New(ctx, m.p, m.d); err != nil {
		return nil, err
	}
	closers = append(closers, m.ps.Close)
	if m.gs, err = groups.New(ctx, m.p, m.d, m.ps, groups.Config{Now: cfg.now}); err != nil {
		return nil, err
	}
	closers = append(closers, m.gs.Close)
	if cfg.SuperPeer {
		if m.mbox, err = NewMailboxServer(m.p.Libp2p().Host, filepath.Join(cfg.Dir, "superpeer"), cfg.Mailbox); err != nil {
			return nil, err
		}
		return m, nil
	}
	l, err := m.ps.ListenMessages(ctx, chatPipe, pipes.MessageConfig{Reliable: true, MaxMessage: 64 << 10})
	if err != nil {
		return nil, err
	}
	closers = append(closers, l.Close)
	if m.cs, err = m.openContent(ctx); err != nil {
		return nil, err
	}
	closers = append(closers, m.cs.Close)
	fl, err := m.ps.Listen(ctx, filePipe)
	if err != nil {
		return nil, err
	}
	closers = append(closers, fl.Close)
	m.wg.Add(4)
	go m.acceptLoop(l)
	go m.acceptFiles(fl)
	go m.connectLoop()
	go m.watchPeers()
	m.rejoinRooms(ctx)
	m.resumeSending(m.ctx)
	return m, nil
}

// peerConfig is the peer's configuration for a messenger with cfg.
func peerConfig(cfg Config) (peer.Config, error) {
	pcfg := peer.Config{Dir: filepath.Join(cfg.Dir, "peer"), Name: cfg.Name, SuperPeers: cfg.SuperPeers, NoMDNS: cfg.NoMDNS, Port: cfg.Port, Logger: cfg.Logger}
	if cfg.Loopback && cfg.ListenIP == "" {
		cfg.ListenIP = "127.0.0.1"
	}
	if cfg.ListenIP != "" {
		ip := net.ParseIP(cfg.ListenIP)
		if ip == nil {
			return peer.Config{}, fmt.Errorf("messenger: listen address %q is not an IP address", cfg.ListenIP)
		}
		proto := "ip4"
		if ip.To4() == nil {
			proto = "ip6"
		}
		pcfg.ListenAddrs = []string{fmt.Sprintf("/%s/%s/tcp/%d", proto, ip, cfg.Port), fmt.Sprintf("/%s/%s/udp/%d/quic-v1", proto, ip, cfg.Port)}
	}
	if cfg.SuperPeer {
		pcfg.Role = peer.RoleSuperPeer
		pcfg.Reachability = peer.ReachabilityPublic
	}
	return pcfg, nil
}

func (m *Messenger) loadBoxKey() error {
	if k := m.st.meta("boxkey"); len(k) == 64 {
		m.boxPub, m.boxKey = new([32]byte), new([32]byte)
		copy(m.boxPub[:], k[:32])
		copy(m.boxKey[:], k[32:])
		return nil
	}
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	m.boxPub, m.boxKey = pub, priv
	return m.st.setMeta("boxkey", append(pub[:], priv[:]...))
}

// Close stops the messenger: contacts see it go offline.
func (m *Messenger) Close() error {
	m.saveRoomStates()
	m.broadcastPresence(string(groups.Offline), "")
	m.cancel()
	m.mu.Lock()
	var conns []*pipes.MsgConn
	for _, c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	var errs []error
	if m.mbox != nil {
		errs = append(errs, m.mbox.Close())
	}
	errs = append(errs, m.gs.Close(), m.ps.Close())
	if m.cs != nil {
		errs = append(errs, m.cs.Close())
	}
	m.wg.Wait()
	errs = append(errs, m.d.Close(), m.p.Close(), m.st.close())
	m.bus.Close()
	return errors.Join(errs...)
}

// ID is this user's peer ID.
func (m *Messenger) ID() peer.ID { return m.p.ID() }

// Name is this user's display name.
func (m *Messenger) Name() string { return m.p.Name() }

// Invite is this user's invite: what a friend pastes to add them.
func (m *Messenger) Invite() string { return m.p.Invite() }

// PathTo says how this user is connected to id: direct, relayed or not.
func (m *Messenger) PathTo(id peer.ID) peer.Path { return m.p.PathTo(id) }

// Peer is the underlying juxta peer.
func (m *Messenger) Peer() *peer.Peer { return m.p }

// Mailbox is the super-peer's mailbox (super-peer mode only).
func (m *Messenger) Mailbox() *MailboxServer { return m.mbox }

// maxEarlyEvents bounds the events kept for the first subscriber.
const maxEarlyEvents = 1024

// Subscribe delivers the messenger's events under juxta's event contract. The
// first subscriber gets first the events emitted before it subscribed (up to
// maxEarlyEvents), so that nothing that happened at start goes unseen.
func (m *Messenger) Subscribe(ctx context.Context) *event.Subscription[Event] {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	early := m.early
	m.early, m.subscribed = nil, true
	return m.bus.SubscribeReplay(ctx, 1024, early)
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Contacts returns the buddy list with live presence, accepted first.
func (m *Messenger) Contacts() []Contact {
	cs := m.st.contacts()
	m.mu.Lock()
	for i := range cs {
		if p, ok := m.presence[cs[i].ID]; ok {
			cs[i].Presence, cs[i].StatusText = p[0], p[1]
		} else {
			cs[i].Presence = string(groups.Offline)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(cs, func(a, b Contact) int {
		if (a.State == Accepted) != (b.State == Accepted) {
			if a.State == Accepted {
				return -1
			}
			return 1
		}
		if a.Label() < b.Label() {
			return -1
		}
		if a.Label() > b.Label() {
			return 1
		}
		return 0
	})
	return cs
}

// Contact finds a contact by petname, name, or peer ID (or a unique prefix).
func (m *Messenger) Contact(ref string) (Contact, error) {
	var hits []Contact
	for _, c := range m.Contacts() {
		if c.Petname == ref || c.Name == ref || c.ID.String() == ref {
			return c, nil
		}
		if len(ref) >= 6 && (len(c.ID.String()) >= len(ref) && c.ID.String()[len(c.ID.String())-len(ref):] == ref) {
			hits = append(hits, c)
		}
	}
	if len(hits) == 1 {
		return hits[0], nil
	}
	return Contact{}, fmt.Errorf("%w: %q", errNoContact, ref)
}

// AddContact asks the peer behind invite to become a contact. Nothing else
// happens until they accept.
func (m *Messenger) AddContact(ctx context.Context, invite, petname string) (Contact, error) {
	inv, err := peer.ParseInvite(invite)
	if err != nil {
		return Contact{}, err
	}
	if inv.Peer.ID == m.p.ID() {
		return Contact{}, errors.New("messenger: that is your own invite")
	}
	c, known := m.st.contact(inv.Peer.ID)
	if !known {
		c = Contact{ID: inv.Peer.ID, State: Requested}
	}
	c.Invite, c.Petname = invite, cmpOr(petname, c.Petname)
	if err := m.st.putContact(c); err != nil {
		return Contact{}, err
	}
	m.emit(ContactChanged{Contact: c})
	m.wake()
	return c, nil
}

// Accept accepts a pending contact request.
func (m *Messenger) Accept(ctx context.Context, id peer.ID) error {
	c, ok := m.st.contact(id)
	if !ok {
		return errNoContact
	}
	if c.State == Accepted {
		return nil
	}
	c.State = Accepted
	if err := m.st.putContact(c); err != nil {
		return err
	}
	m.emit(ContactChanged{Contact: c})
	if conn := m.conn(id); conn != nil {
		m.sendHello(ctx, conn, id)
	}
	m.wake()
	return nil
}

// Rename gives a contact a petname.
func (m *Messenger) Rename(id peer.ID, petname string) error {
	c, ok := m.st.contact(id)
	if !ok {
		return errNoContact
	}
	c.Petname = petname
	if err := m.st.putContact(c); err != nil {
		return err
	}
	m.emit(ContactChanged{Contact: c})
	return nil
}

// Remove deletes a contact; their messages are refused from then on.
func (m *Messenger) Remove(id peer.ID) error {
	if err := m.st.deleteContact(id); err != nil {
		return err
	}
	if c := m.conn(id); c != nil {
		c.Close()
	}
	m.mu.Lock()
	delete(m.presence, id)
	delete(m.conns, id)
	m.mu.Unlock()
	m.emit(ContactRemoved{ID: id})
	return nil
}

// Send writes a message to contact id: it is on disk (status sending) before
// Send returns, and moves to sent, delivered and read as the network allows.
// The contact must have accepted.
func (m *Messenger) Send(ctx context.Context, id peer.ID, text string) (Message, error) {
	c, ok := m.st.contact(id)
	if !ok {
		return Message{}, errNoContact
	}
	if c.State != Accepted {
		return Message{}, fmt.Errorf("messenger: %s has not accepted you yet", c.Label())
	}
	if len(text) == 0 || len(text) > 16<<10 {
		return Message{}, errors.New("messenger: a message has 1 to 16384 bytes")
	}
	seq, err := m.st.nextSeq()
	if err != nil {
		return Message{}, err
	}
	msg := Message{ID: newID(), Peer: id, Out: true, Text: text, Time: time.Now(), Seq: seq, Status: Sending}
	if _, err := m.st.putMessage(&msg); err != nil {
		return Message{}, fmt.Errorf("messenger: write ahead: %w", err)
	}
	m.emit(MessageAdded{Message: msg})
	m.deliver(ctx, id, []Message{msg})
	got, _ := m.st.message(msg.ID)
	return got, nil
}

// History returns the last limit messages with contact id, oldest first.
func (m *Messenger) History(id peer.ID, limit int) []Message { return m.st.history(string(id), limit) }

// Search finds messages containing text.
func (m *Messenger) Search(text string) []Message { return m.st.search(text) }

// OpenChat tells the messenger the user is looking at the chat with id: its
// received messages are marked read and the sender is told.
func (m *Messenger) OpenChat(ctx context.Context, id peer.ID) {
	m.mu.Lock()
	m.openChat = id
	m.mu.Unlock()
	if id != "" {
		m.markRead(ctx, id)
	}
}

// CloseChat tells the messenger no chat is shown: new messages stay unread.
func (m *Messenger) CloseChat() {
	m.mu.Lock()
	m.openChat = ""
	m.mu.Unlock()
}

func (m *Messenger) markRead(ctx context.Context, id peer.ID) {
	var ids []string
	for _, msg := range m.st.history(string(id), 0) {
		if !msg.Out && msg.Room == "" && msg.Status == Received {
			msg.Status = Read
			m.st.setIncomingStatus(msg.ID, Read)
			ids = append(ids, msg.ID)
		}
	}
	if len(ids) > 0 {
		if c := m.conn(id); c != nil {
			m.sendFrame(ctx, c, frame{T: "read", IDs: ids})
		}
	}
}

// SetPresence sets this user's state and text and tells the contacts.
// Invisible shows offline to contacts while chat keeps working.
func (m *Messenger) SetPresence(state groups.State, text string) error {
	switch state {
	case groups.Online, groups.Away, groups.Busy, groups.DoNotDisturb, groups.Invisible:
	default:
		return fmt.Errorf("messenger: unknown state %q: use online, away, busy, dnd or invisible", state)
	}
	m.mu.Lock()
	m.state, m.text, m.autoAway = string(state), text, false
	m.mu.Unlock()
	for _, r := range m.roomList() {
		r.g.SetPresence(state, text)
	}
	m.broadcastPresence(string(state), text)
	m.emit(PresenceChanged{State: string(state), Text: text})
	return nil
}

// Presence returns this user's state and text.
func (m *Messenger) Presence() (string, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.text
}

// Touch records user activity, ending auto-away.
func (m *Messenger) Touch() {
	m.mu.Lock()
	m.active = time.Now()
	back := m.autoAway
	m.autoAway = false
	if back {
		m.state = string(groups.Online)
	}
	m.mu.Unlock()
	if back {
		m.broadcastPresence(string(groups.Online), m.textNow())
		m.emit(PresenceChanged{State: string(groups.Online)})
	}
}

func (m *Messenger) textNow() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.text
}

func (m *Messenger) emit(ev Event) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	if !m.subscribed {
		if len(m.early) < maxEarlyEvents {
			m.early = append(m.early, ev)
		}
		return
	}
	m.bus.Publish(ev)
}

func (m *Messenger) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
