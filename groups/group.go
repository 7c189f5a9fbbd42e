package groups

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Info describes a group, as its advertisement (type juxta.group, signed by
// the creator) carries it.
type Info struct {
	ID          string
	Name        string
	Description string
	Policy      Policy
	Creator     peer.ID
	// Admins may issue and revoke credentials in invite groups; the creator
	// always may.
	Admins []peer.ID
	// Epoch counts a password group's moves to a new password (Group.Rotate):
	// 0 until the first.
	Epoch uint64

	salt     []byte // password groups
	verifier []byte // password groups
	kdf      kdfParams
	scopeBox []byte // password groups from epoch 1: the scope secret, sealed
	nonce    []byte // the ID derives from the creator and this
	raw      []byte // the signed advertisement
	seq      uint64
}

// Raw is the group's signed advertisement, to keep and parse again later with
// ParseInfo.
func (i *Info) Raw() []byte { return slices.Clone(i.raw) }

// ParseInfo verifies a group advertisement kept from Info.Raw, or handed over
// (an invitation): signed by the group's creator, its ID derived from the
// creator (so nobody else can have made it), not dated in the future. It
// need not be within its lifetime (discovery.VerifyKept): a room saved by a
// user away for more than a day is still the creator's. An older kept
// advertisement moves nothing backwards: joining a group already joined
// keeps the joined one, and a password group whose creator has since moved
// on is told so by its members' messages (Group.SubscribeRotations) and
// follows with Rotate, which takes only a newer epoch.
func ParseInfo(raw []byte) (Info, error) {
	info, err := parseKept(raw, time.Now())
	if err != nil {
		return Info{}, err
	}
	return *info, nil
}

// parseKept reads a group advertisement kept or handed over, judged at now.
func parseKept(raw []byte, now time.Time) (*Info, error) {
	ad, err := discovery.VerifyKept(raw, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGroup, err)
	}
	return infoFromAd(ad, raw)
}

func (i *Info) isAdmin(id peer.ID) bool { return id == i.Creator || slices.Contains(i.Admins, id) }

type wireInfo struct {
	Name        string    `cbor:"1,keyasint"`
	Description string    `cbor:"2,keyasint,omitempty"`
	Policy      string    `cbor:"3,keyasint"`
	Admins      [][]byte  `cbor:"4,keyasint,omitempty"`
	Salt        []byte    `cbor:"5,keyasint,omitempty"`
	Verifier    []byte    `cbor:"6,keyasint,omitempty"`
	KDF         kdfParams `cbor:"7,keyasint,omitempty"`
	Nonce       []byte    `cbor:"8,keyasint"` // the ID is derived from the creator and this
	Epoch       uint64    `cbor:"9,keyasint,omitempty"`
	ScopeBox    []byte    `cbor:"10,keyasint,omitempty"`
}

// groupID derives a group's ID from its creator and a nonce, so that nobody
// but the creator can publish an advertisement under that ID (infoFromAd
// checks it): a lookup by ID cannot be hijacked by a newer advertisement from
// someone else.
func groupID(creator peer.ID, nonce []byte) string {
	sum := sha256.Sum256(append([]byte("juxta/group/id\x00"+string(creator)+"\x00"), nonce...))
	return strings.ToLower(b32.EncodeToString(sum[:16]))
}

// wire is the advertisement body that describes i.
func (i *Info) wire() wireInfo {
	w := wireInfo{Name: i.Name, Description: i.Description, Policy: string(i.Policy), Nonce: i.nonce,
		Salt: i.salt, Verifier: i.verifier, KDF: i.kdf, Epoch: i.Epoch, ScopeBox: i.scopeBox}
	for _, a := range i.Admins {
		w.Admins = append(w.Admins, []byte(a))
	}
	return w
}

// infoFromAd reads a verified group advertisement.
func infoFromAd(ad discovery.Advertisement, raw []byte) (*Info, error) {
	if ad.Type != discovery.TypeGroup || ad.Scope != "" {
		return nil, fmt.Errorf("%w: type %q scope %q", ErrBadGroup, ad.Type, ad.Scope)
	}
	var w wireInfo
	if err := decMode.Unmarshal(ad.Body, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadGroup, err)
	}
	if len(w.Nonce) < 16 || groupID(ad.Publisher, w.Nonce) != ad.ID {
		return nil, fmt.Errorf("%w: ID %q is not derived from its creator %s", ErrBadGroup, ad.ID, ad.Publisher)
	}
	info := &Info{
		ID: ad.ID, Name: w.Name, Description: w.Description, Policy: Policy(w.Policy), Creator: ad.Publisher,
		salt: w.Salt, verifier: w.Verifier, kdf: w.KDF, raw: raw, seq: ad.Seq,
		Epoch: w.Epoch, scopeBox: w.ScopeBox, nonce: w.Nonce,
	}
	for _, b := range w.Admins {
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: admin: %v", ErrBadGroup, err)
		}
		info.Admins = append(info.Admins, id)
	}
	switch info.Policy {
	case PolicyOpen, PolicyInvite:
	case PolicyPassword:
		if len(info.salt) < 16 || len(info.verifier) != 32 || !info.kdf.sane() || (info.Epoch > 0) != (len(info.scopeBox) == scopeBoxLen) {
			return nil, fmt.Errorf("%w: password parameters", ErrBadGroup)
		}
	default:
		return nil, fmt.Errorf("%w: policy %q", ErrBadGroup, info.Policy)
	}
	return info, nil
}

// Config tunes the groups service.
type Config struct {
	// Heartbeat is how often a member announces its presence. Default 5 s.
	Heartbeat time.Duration
	// OfflineAfter is how long a silent member stays listed before it is shown
	// offline. Default 15 s.
	OfflineAfter time.Duration
	// CredentialTTL is how long invite credentials last by default. Default
	// 30 days.
	CredentialTTL time.Duration
	// MaxMembers bounds the members listed per group. Past it, the member
	// offline the longest is forgotten; when none is offline, a newcomer is
	// not listed until one is. Default 4096.
	MaxMembers int
	// ForgetAfter is how long a member stays listed once shown offline.
	// Default 3 min, longer than GossipSub's duplicate cache, so a replayed
	// announcement cannot bring a forgotten member back.
	ForgetAfter time.Duration
	// RotateGrace is how long after this member moves a password group to a
	// new password (Group.Rotate) it still accepts messages sealed under the
	// previous one, so that those in flight are not lost. Default 30 s.
	RotateGrace time.Duration
	// Now is the clock by which Restore and Join with Invited judge what they
	// are handed back or over: the expiry of credentials, and advertisements
	// dated in the future (kept advertisements are not refused for being
	// past their lifetime). Nil means time.Now. Tests set it, before New, to
	// stand for a user back after days away.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = 15 * time.Second
	}
	if c.OfflineAfter < c.Heartbeat {
		c.OfflineAfter = 3 * c.Heartbeat
	}
	if c.CredentialTTL <= 0 {
		c.CredentialTTL = 30 * 24 * time.Hour
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 3 * time.Minute
	}
	if c.RotateGrace <= 0 {
		c.RotateGrace = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service manages a peer's groups: the net group it starts in, and the groups
// it creates and joins, several at once.
type Service struct {
	p     *peer.Peer
	host  host.Host
	key   crypto.PrivKey
	disc  *discovery.Service
	pipes *pipes.Service
	cfg   Config
	log   *slog.Logger

	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	closed atomic.Bool

	mu     sync.Mutex
	groups map[string]*Group // guarded by mu; joined groups by ID
	net    *Group            // guarded by mu; created on first Net
}

// New starts the groups service on p, with its discovery and pipes.
func New(ctx context.Context, p *peer.Peer, d *discovery.Service, ps *pipes.Service, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.defaults()
	lp := p.Libp2p()
	h, key := lp.Host, lp.Key
	s := &Service{p: p, host: h, key: key, disc: d, pipes: ps, cfg: cfg, log: p.Logger().With("svc", "groups"), groups: map[string]*Group{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(authProtocol, s.handleAuth)
	h.SetStreamHandler(keyProtocol, s.handleKey)
	return s, nil
}

// Close leaves no goroutine behind: every group's presence stops (without
// announcing offline; use Group.Leave for a graceful exit). A second call
// returns net.ErrClosed.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("groups: close: %w", net.ErrClosed)
	}
	s.host.RemoveStreamHandler(authProtocol)
	s.host.RemoveStreamHandler(keyProtocol)
	s.cancel()
	s.mu.Lock()
	gs := make([]*Group, 0, len(s.groups)+1)
	for _, g := range s.groups {
		gs = append(gs, g)
	}
	if s.net != nil {
		gs = append(gs, s.net)
	}
	s.mu.Unlock()
	for _, g := range gs {
		g.stop()
	}
	return nil
}

// Spec describes a group to create.
type Spec struct {
	Name        string
	Description string
	Policy      Policy // default PolicyOpen
	// Password is required for PolicyPassword and never leaves this peer.
	Password string
	// Admins may issue and revoke credentials (PolicyInvite).
	Admins []peer.ID
}

// Group is a group this peer is a member of.
type Group struct {
	s    *Service
	info *Info // replaced under mu when a newer advertisement arrives

	disc  *discovery.Service
	pipes *pipes.Service

	rotMu sync.Mutex // held by Rotate

	mu        sync.Mutex
	pw        passwordKeys      // password groups: the current epoch's keys
	cur       *Info             // password groups: the current epoch's advertisement
	prev      passwordKeys      // password groups: the previous epoch's keys, during the grace
	prevEpoch uint64            // its epoch
	prevUntil time.Time         // end of the grace
	scope     []byte            // password groups: the discovery scope's secret, the same in every epoch
	cred      []byte            // invite groups: this peer's credential
	keys      map[uint64][]byte // invite groups: group key by epoch
	epoch     uint64            // invite groups: current epoch
	revoked   *revocations      // invite groups: latest list
	revRaw    []byte
	scopeKey  []byte                // invite groups: the secret the discovery scope derives from
	missing   uint64                // invite groups: an epoch whose key a fetch failed to get
	missingAt time.Time             // when
	proven    map[peer.ID]time.Time // members whose proof we checked, until
	creds     map[peer.ID]*credential

	presence *presence
	// Set by init, before any hook can run; closed by stop.
	rotations *event.Bus[Rotation] // password groups: newer epochs seen
	rotKick   chan struct{}        // a message of a newer epoch arrived
	ahead     uint64               // guarded by mu; the newest epoch claimed by a message that did not open
}

// ID is the group's ID, which is also its scope for discovery and pipes.
func (g *Group) ID() string { return g.info.ID }

// Info returns the group's description.
func (g *Group) Info() Info {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur != nil {
		return *g.cur
	}
	return *g.info
}

// Discovery is discovery scoped to the group: what it publishes is returned
// only to queries in the group.
func (g *Group) Discovery() *discovery.Service { return g.disc }

// Pipes are pipes scoped to the group: their streams are accepted only from
// members, and propagate pipes are validated, and in password and invite groups
// encrypted, with the group's key.
func (g *Group) Pipes() *pipes.Service { return g.pipes }

// Net returns the net group: the scope every peer starts in, open to all.
// Discovery and pipes used without a group act in it.
func (s *Service) Net() *Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.net == nil {
		s.net = &Group{s: s, info: &Info{ID: "", Name: "net", Policy: PolicyOpen}, disc: s.disc, pipes: s.pipes}
		s.net.init()
	}
	return s.net
}

// Create creates a group, publishes its advertisement in the net group so that
// others can find it, and joins it.
func (s *Service) Create(ctx context.Context, spec Spec) (*Group, error) {
	if spec.Policy == "" {
		spec.Policy = PolicyOpen
	}
	if spec.Name == "" {
		return nil, fmt.Errorf("%w: a group needs a name", ErrBadGroup)
	}
	nonce := randomBytes(16)
	id := groupID(s.p.ID(), nonce)
	w := wireInfo{Name: spec.Name, Description: spec.Description, Policy: string(spec.Policy), Nonce: nonce}
	for _, a := range spec.Admins {
		w.Admins = append(w.Admins, []byte(a))
	}
	var pw passwordKeys
	switch spec.Policy {
	case PolicyOpen, PolicyInvite:
	case PolicyPassword:
		if spec.Password == "" {
			return nil, fmt.Errorf("%w: a password group needs a password", ErrPolicy)
		}
		w.Salt, w.KDF = randomBytes(16), defaultKDF
		pw = derivePassword(spec.Password, id, w.Salt, w.KDF)
		w.Verifier = pw.verifier
	default:
		return nil, fmt.Errorf("%w: %q", ErrPolicy, spec.Policy)
	}
	info, err := s.publishInfo(ctx, id, w)
	if err != nil {
		return nil, err
	}
	g := s.newGroup(info)
	if info.Policy == PolicyPassword {
		if err := g.setPassword(info, pw); err != nil {
			return nil, err
		}
	}
	if info.Policy == PolicyInvite {
		if g.cred, err = issueCredential(s.key, id, s.p.ID(), s.cfg.CredentialTTL); err != nil {
			return nil, err
		}
		key := randomBytes(32)
		if g.revRaw, err = sealRevocations(s.key, id, 1, nil, key); err != nil {
			return nil, err
		}
		g.revoked, _ = verifyRevocations(g.revRaw, info)
		g.epoch = 1
		g.keys[1] = key
		g.scopeKey = randomBytes(32)
	}
	return s.register(g)
}

// rawAd returns the signed bytes of one of this peer's advertisements.
func (s *Service) rawAd(ad discovery.Advertisement) ([]byte, error) {
	raw, ok := s.disc.Raw(ad.Key())
	if !ok {
		return nil, fmt.Errorf("%w: own advertisement not in cache", ErrBadGroup)
	}
	return raw, nil
}

func (s *Service) newGroup(info *Info) *Group {
	return &Group{
		s: s, info: info,
		disc:   s.disc.Scoped(info.ID),
		keys:   map[uint64][]byte{},
		proven: map[peer.ID]time.Time{},
		creds:  map[peer.ID]*credential{},
	}
}

func (s *Service) register(g *Group) (*Group, error) {
	scope := g.discoveryScope()
	g.disc = s.disc.Scoped(scope)
	g.pipes = s.pipes.Scoped(g.info.ID, pipes.Hooks{
		Authorize:      g.authorize,
		Propagate:      g.propagateHooks(),
		DiscoveryScope: scope,
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under mu, and presence started under mu: Close marks the
	// service closed before it takes mu to collect the groups, so a group
	// is either refused here or collected and stopped by Close.
	if s.closed.Load() {
		return nil, fmt.Errorf("groups: join: %w", net.ErrClosed)
	}
	if old, ok := s.groups[g.info.ID]; ok {
		return old, nil
	}
	s.groups[g.info.ID] = g
	g.init()
	return g, nil
}

// Find searches the net group for group advertisements whose name matches
// pattern ('*' wildcards), and returns the verified ones.
func (s *Service) Find(ctx context.Context, pattern string) ([]Info, error) {
	q := discovery.Query{Type: discovery.TypeGroup, Attr: "name", Value: pattern}
	var out []Info
	var errs []error
	for r, err := range s.disc.Find(ctx, q) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		raw, _ := s.disc.Raw(r.Key())
		info, err := infoFromAd(r.Advertisement, raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, *info)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Lookup finds one group's advertisement by ID.
func (s *Service) Lookup(ctx context.Context, id string) (Info, error) {
	q := discovery.Query{Type: discovery.TypeGroup, Attr: "id", Value: id, Limit: 4}
	var best *Info
	for r, err := range s.disc.Find(ctx, q) {
		if err != nil || r.ID != id {
			continue
		}
		raw, _ := s.disc.Raw(r.Key())
		info, err := infoFromAd(r.Advertisement, raw)
		if err == nil && (best == nil || info.seq > best.seq) {
			best = info
		}
	}
	if best == nil {
		return Info{}, fmt.Errorf("groups: group %q not found", id)
	}
	return *best, nil
}

// Groups returns the groups this peer is in.
func (s *Service) Groups() []*Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	return out
}

// Leave announces this peer offline to the group, stops its presence and forgets
// the group.
func (g *Group) Leave(ctx context.Context) error {
	if g.presence != nil {
		g.presence.announceOffline(ctx)
	}
	g.stop()
	g.s.mu.Lock()
	if g.s.groups[g.info.ID] == g {
		delete(g.s.groups, g.info.ID)
	}
	g.s.mu.Unlock()
	return nil
}

func (g *Group) init() {
	g.rotations, g.rotKick = event.New[Rotation](), make(chan struct{}, 1)
	g.presence = newPresence(g)
}

func (g *Group) stop() {
	if g.presence != nil {
		g.presence.stop()
	}
	if g.rotations != nil {
		g.rotations.Close()
	}
}

// Invite issues a credential for member, valid for ttl (0: the configured
// default), as a string to hand over out of band. Only the creator and admins
// of an invite group may.
func (g *Group) Invite(member peer.ID, ttl time.Duration) (string, error) {
	info := g.Info()
	if info.Policy != PolicyInvite {
		return "", fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	if !info.isAdmin(g.s.p.ID()) {
		return "", ErrNotAdmin
	}
	if ttl == 0 {
		ttl = g.s.cfg.CredentialTTL
	}
	c, err := newCredential(g.s.key, info.ID, member, ttl)
	if err != nil {
		return "", err
	}
	// This peer signed these bytes: when member presents them (a key fetch,
	// a pipe's challenge), checkMember finds them here and skips the
	// signature check. Other bytes are checked in full.
	g.mu.Lock()
	g.creds[member] = c
	g.mu.Unlock()
	return encodeCredString(info.raw, c.rawBytes)
}
