package share

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// Pinning keeps rare files alive (Freenet's answer to the torrent's lost
// seeders): members of a group volunteer disk space, and a pinned file is
// kept on at least K online members. Every holder of a pinned file publishes
// a pin advertisement in the group (so the pin outlives its first sharer);
// every volunteer looks at the pins now and then, counts the holders that
// presence shows online, and when they are fewer than K the volunteers that
// hold no copy and have room rank themselves by a hash of their peer ID and
// the content ID: the first K - online take a copy from the holders. A
// volunteer never holds more than it offered.
const (
	// PinType: "I hold this pinned file". Attributes cid, k, size, name; the
	// body is a share link.
	PinType = "fileshare.pin"
	// VolunteerType: "I keep pinned files for this group". Attribute free: the
	// bytes left of the offer.
	VolunteerType = "fileshare.volunteer"
	attrK         = "k"
	attrFree      = "free"
	attrOwn       = "own" // "1": the holder shares the file itself and never drops it
	// MaxK bounds the copies a pin asks for.
	MaxK = 16
	// pinTick is how often a volunteer looks at the pins.
	pinTick = 2 * time.Second
	// pinLimit bounds the pin and volunteer advertisements read per round.
	pinLimit = 1000
)

type pinner struct {
	n    *Node
	wake chan struct{}

	saveMu sync.Mutex // serialises writes of the pins file

	mu       sync.Mutex
	started  bool                // guarded by mu
	offers   map[string]int64    // guarded by mu; bytes offered, by group
	used     map[string]int64    // guarded by mu; bytes held or being fetched, by group
	held     map[string]*heldPin // guarded by mu; by content ID
	fetching map[string]string   // guarded by mu; group by content ID
}

type heldPin struct {
	group, name string
	size        int64
	k           int
	own         bool // the file is this node's own share, not a volunteer copy
}

func newPinner(n *Node) *pinner {
	return &pinner{n: n, wake: make(chan struct{}, 1), offers: map[string]int64{}, used: map[string]int64{},
		held: map[string]*heldPin{}, fetching: map[string]string{}}
}

func (p *pinner) holds(id string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, fetching := p.fetching[id]
	return p.held[id] != nil || fetching
}

// groupOf returns the group of a pinned copy held or being fetched.
func (p *pinner) groupOf(id string) (string, bool) {
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.held[id]; h != nil {
		return h.group, true
	}
	g, ok := p.fetching[id]
	return g, ok
}

// watchGroup starts the pinning loop once a group is joined.
func (p *pinner) watchGroup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.started = true
		p.n.wg.Add(1)
		go p.loop()
	}
}

func (p *pinner) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Volunteer offers bytes of disk space to keep a group's pinned files alive.
// Offering less than is held already drops nothing; no new copy is taken
// until there is room.
func (n *Node) Volunteer(ctx context.Context, group string, bytes int64) error {
	if err := n.edge(); err != nil {
		return err
	}
	if bytes < 0 {
		return fmt.Errorf("share: offer of %d bytes", bytes)
	}
	if _, err := n.disc(group); err != nil || group == "" {
		return fmt.Errorf("%w: %q (volunteering is for a group)", ErrNoGroup, group)
	}
	p := n.pins
	p.mu.Lock()
	p.offers[group] = bytes
	p.mu.Unlock()
	p.save()
	if err := p.advertiseVolunteer(ctx, group); err != nil {
		return err
	}
	p.kick()
	return nil
}

func (p *pinner) advertiseVolunteer(ctx context.Context, group string) error {
	d, err := p.n.disc(group)
	if err != nil {
		return err
	}
	p.mu.Lock()
	free := p.offers[group] - p.used[group]
	p.mu.Unlock()
	_, err = d.Publish(ctx, discovery.Advertisement{Type: VolunteerType, ID: p.n.ID().String(),
		Attrs: map[string]string{attrFree: strconv.FormatInt(max(free, 0), 10)}, Expiration: 5 * time.Minute})
	return err
}

// Pin asks a group to keep a file it holds on at least k online members. The
// file must be shared by this node in the group (or be a result found in it,
// which is downloaded first).
func (n *Node) Pin(ctx context.Context, group string, r Result, k int) error {
	if err := n.edge(); err != nil {
		return err
	}
	if k < 1 || k > MaxK {
		return fmt.Errorf("share: K = %d; pin asks for 1 to %d copies", k, MaxK)
	}
	if _, err := n.disc(group); err != nil || group == "" {
		return fmt.Errorf("%w: %q (pinning is for a group)", ErrNoGroup, group)
	}
	id, err := content.ParseID(r.ID)
	if err != nil {
		return err
	}
	if _, err := n.cs.Stat(id); err != nil {
		return fmt.Errorf("share: pin %s: this node does not hold it; get it first: %w", r.Name, err)
	}
	p := n.pins
	p.mu.Lock()
	p.held[r.ID] = &heldPin{group: group, name: r.Name, size: r.Size, k: k, own: true}
	p.mu.Unlock()
	p.save()
	if err := p.advertiseHeld(ctx, r.ID); err != nil {
		return err
	}
	p.kick()
	return nil
}

// advertiseHeld publishes the pin advertisement of a held file, and its file
// advertisement in the group so that searches find this copy.
func (p *pinner) advertiseHeld(ctx context.Context, id string) error {
	p.mu.Lock()
	h := p.held[id]
	p.mu.Unlock()
	if h == nil {
		return nil
	}
	g, ok := p.n.group(h.group)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoGroup, h.group)
	}
	d, k := g.g.Discovery(), g.keys
	own := "0"
	if h.own {
		own = "1"
	}
	f := File{Name: h.name, Rel: h.name, Size: h.size, ID: id, Link: p.n.link(id)}
	body, err := k.sealBody(f)
	if err != nil {
		return err
	}
	ad := discovery.Advertisement{Type: PinType, ID: k.blindID(id), Body: body, Expiration: 5 * time.Minute,
		Attrs: map[string]string{AttrID: k.blindID(id), attrK: strconv.Itoa(h.k), attrOwn: own}}
	if _, err := d.Publish(ctx, ad); err != nil {
		return err
	}
	if h.own {
		return nil
	}
	fad, err := k.privateAd(f)
	if err != nil {
		return err
	}
	_, err = d.Publish(ctx, fad)
	return err
}

func (p *pinner) loop() {
	defer p.n.wg.Done()
	t := time.NewTicker(pinTick)
	defer t.Stop()
	for {
		select {
		case <-p.n.ctx.Done():
			return
		case <-t.C:
		case <-p.wake:
		}
		for _, g := range p.n.Groups() {
			p.round(g)
		}
	}
}

// pinState is what a round learns of one pinned file.
type pinState struct {
	id, name, link string
	size           int64
	k              int
	holders        []peer.ID
	own            map[peer.ID]bool // holders whose copy is their own share
}

// round looks at a group's pins and takes the copies this volunteer should.
func (p *pinner) round(group string) {
	p.mu.Lock()
	offer, volunteering := p.offers[group]
	p.mu.Unlock()
	g, ok := p.n.group(group)
	if !ok || !volunteering {
		return
	}
	ctx, cancel := context.WithTimeout(p.n.ctx, 20*time.Second)
	defer cancel()
	d := g.g.Discovery()
	online := map[peer.ID]bool{p.n.ID(): true}
	for _, m := range g.g.Members() {
		if m.State != groups.Offline {
			online[m.ID] = true
		}
	}
	pins := p.readPins(ctx, d, g.keys)
	volunteers := p.readVolunteers(ctx, d, online)
	for _, ps := range pins {
		var up []peer.ID
		for _, h := range ps.holders {
			if online[h] {
				up = append(up, h)
			}
		}
		if len(up) >= ps.k+2 {
			p.trim(group, ps, up)
			continue
		}
		need := ps.k - len(up)
		if need <= 0 || slices.Contains(up, p.n.ID()) || p.holds(ps.id) {
			continue
		}
		// Rank the online volunteers without a copy and with room.
		var cands []peer.ID
		for id, free := range volunteers {
			if !slices.Contains(up, id) && (free >= ps.size || id == p.n.ID()) {
				cands = append(cands, id)
			}
		}
		slices.SortFunc(cands, func(a, b peer.ID) int { return cmp.Compare(rank(a, ps.id), rank(b, ps.id)) })
		i := slices.Index(cands, p.n.ID())
		if i < 0 || i >= need {
			continue
		}
		p.mu.Lock()
		room := p.used[group]+ps.size <= offer
		if room {
			p.used[group] += ps.size
			p.fetching[ps.id] = group
		}
		p.mu.Unlock()
		if !room {
			continue
		}
		p.n.wg.Add(1)
		go p.take(group, ps, up)
	}
}

// trim drops this volunteer's copy when at least K+2 members hold the file
// online: the volunteer copies ranked last go until K+1 remain (one spare, so
// that a member's blink does not start a fetch). Sharers' own copies never
// go.
func (p *pinner) trim(group string, ps *pinState, up []peer.ID) {
	var droppable []peer.ID
	for _, h := range up {
		if !ps.own[h] {
			droppable = append(droppable, h)
		}
	}
	slices.SortFunc(droppable, func(a, b peer.ID) int { return cmp.Compare(rank(b, ps.id), rank(a, ps.id)) })
	excess := len(up) - (ps.k + 1)
	if i := slices.Index(droppable, p.n.ID()); i < 0 || i >= excess {
		return
	}
	p.mu.Lock()
	h := p.held[ps.id]
	if h == nil || h.own {
		p.mu.Unlock()
		return
	}
	delete(p.held, ps.id)
	p.used[group] -= h.size
	p.mu.Unlock()
	p.save()
	ctx, cancel := context.WithTimeout(p.n.ctx, publishTimeout)
	defer cancel()
	if g, ok := p.n.group(group); ok {
		for _, typ := range []string{PinType, AdType} {
			if err := g.g.Discovery().Flush(ctx, typ, g.keys.blindID(ps.id)); err != nil {
				p.n.log.Debug("flush dropped pin", "id", ps.id, "err", err)
			}
		}
	}
	if id, err := content.ParseID(ps.id); err == nil && len(p.n.scopesOf(ps.id)) == 0 {
		p.n.cs.Remove(ctx, id)
		os.Remove(filepath.Join(p.n.cfg.Dir, "pinned", id.Hex()))
	}
	p.advertiseVolunteer(ctx, group)
	p.n.emit(Pinned{Group: group, ID: ps.id, Name: h.name, Dropped: true})
}

func rank(id peer.ID, cid string) string {
	h := sha256.Sum256([]byte(string(id) + "\x00" + cid))
	return string(h[:])
}

func (p *pinner) readPins(ctx context.Context, d *discovery.Service, keys *groupKeys) []*pinState {
	byID := map[string]*pinState{}
	var order []*pinState
	q := discovery.Query{Type: PinType, Attr: AttrID, Value: "*", Limit: pinLimit}
	for r, err := range d.Find(ctx, q) {
		if err != nil {
			continue
		}
		ad := r.Advertisement
		k, _ := strconv.Atoi(ad.Attrs[attrK])
		var f File
		if err := keys.openBody(ad.Body, &f); err != nil || k < 1 || f.Size < 0 || ad.ID != keys.blindID(f.ID) {
			continue
		}
		ps := byID[f.ID]
		if ps == nil {
			ps = &pinState{id: f.ID, name: SafeName(f.Name), size: f.Size, link: f.Link, own: map[peer.ID]bool{}}
			byID[f.ID] = ps
			order = append(order, ps)
		}
		ps.k = max(ps.k, min(k, MaxK))
		if !slices.Contains(ps.holders, ad.Publisher) {
			ps.holders = append(ps.holders, ad.Publisher)
		}
		if ad.Attrs[attrOwn] == "1" {
			ps.own[ad.Publisher] = true
		}
	}
	return order
}

// readVolunteers returns the online volunteers with their free space.
func (p *pinner) readVolunteers(ctx context.Context, d *discovery.Service, online map[peer.ID]bool) map[peer.ID]int64 {
	out := map[peer.ID]int64{}
	q := discovery.Query{Type: VolunteerType, Attr: attrFree, Value: "*", Limit: pinLimit}
	for r, err := range d.Find(ctx, q) {
		if err != nil || !online[r.Publisher] {
			continue
		}
		if free, err := strconv.ParseInt(r.Attrs[attrFree], 10, 64); err == nil && free >= 0 {
			out[r.Publisher] = free
		}
	}
	return out
}

// take fetches a copy of a pinned file from its online holders.
func (p *pinner) take(group string, ps *pinState, holders []peer.ID) {
	defer p.n.wg.Done()
	err := p.fetchPin(group, ps, holders)
	p.mu.Lock()
	delete(p.fetching, ps.id)
	if err != nil {
		p.used[group] -= ps.size
	} else {
		p.held[ps.id] = &heldPin{group: group, name: ps.name, size: ps.size, k: ps.k}
	}
	p.mu.Unlock()
	if err != nil {
		p.n.log.Debug("pin copy failed", "id", ps.id, "err", err)
		return
	}
	p.save()
	ctx, cancel := context.WithTimeout(p.n.ctx, publishTimeout)
	defer cancel()
	if err := p.advertiseHeld(ctx, ps.id); err != nil {
		p.n.emit(Notice{Text: fmt.Sprintf("advertise pinned %s: %v", ps.name, err)})
	}
	p.advertiseVolunteer(ctx, group)
	p.n.emit(Pinned{Group: group, ID: ps.id, Name: ps.name})
}

func (p *pinner) fetchPin(group string, ps *pinState, holders []peer.ID) error {
	id, err := content.ParseID(ps.id)
	if err != nil {
		return err
	}
	dir := filepath.Join(p.n.cfg.Dir, "pinned")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	r := Result{ID: ps.id, Name: ps.name, Size: ps.size, Link: ps.link, Sources: holders, Group: group}
	ctx, cancel := context.WithTimeout(p.n.ctx, 10*time.Minute)
	defer cancel()
	info, err := p.n.fetchInto(ctx, id, filepath.Join(dir, id.Hex()), r)
	if err != nil {
		return err
	}
	if info.Size != ps.size {
		p.n.cs.Remove(ctx, id)
		return fmt.Errorf("share: pinned %s is %d bytes, its pin said %d", ps.name, info.Size, ps.size)
	}
	return nil
}

// PinInfo is what this node holds for a group's pins.
type PinInfo struct {
	Group, ID, Name string
	Size            int64
	K               int
	Own             bool
}

// Pins lists the pinned files held here, and the space offered and used per
// group.
func (n *Node) Pins() (held []PinInfo, offered, used map[string]int64) {
	p := n.pins
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, h := range p.held {
		held = append(held, PinInfo{Group: h.group, ID: id, Name: h.name, Size: h.size, K: h.k, Own: h.own})
	}
	slices.SortFunc(held, func(a, b PinInfo) int { return cmp.Compare(a.ID, b.ID) })
	return held, maps.Clone(p.offers), maps.Clone(p.used)
}

func (p *pinner) fetchingNow(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.fetching[id]
	return ok
}

// pinsFile keeps a volunteer's offers and held copies across restarts.
const pinsFile = "pins.json"

type savedPin struct {
	Group, Name string
	Size        int64
	K           int
	Own         bool
}

type savedPins struct {
	Offers map[string]int64
	Held   map[string]savedPin
}

// save writes the offers and held pins to the node's directory.
func (p *pinner) save() {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	sp := savedPins{Offers: maps.Clone(p.offers), Held: map[string]savedPin{}}
	for id, h := range p.held {
		sp.Held[id] = savedPin{Group: h.group, Name: h.name, Size: h.size, K: h.k, Own: h.own}
	}
	p.mu.Unlock()
	b, err := json.Marshal(sp)
	if err != nil {
		return
	}
	tmp := filepath.Join(p.n.cfg.Dir, pinsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, filepath.Join(p.n.cfg.Dir, pinsFile))
	}
}

// load reads what save wrote; the pins come back to life when their group
// is joined again.
func (p *pinner) load() {
	b, err := os.ReadFile(filepath.Join(p.n.cfg.Dir, pinsFile))
	if err != nil || len(b) > 16<<20 {
		return
	}
	var sp savedPins
	if err := json.Unmarshal(b, &sp); err != nil {
		p.n.emit(Notice{Text: fmt.Sprintf("pins list unreadable: %v", err)})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for g, o := range sp.Offers {
		if o >= 0 {
			p.offers[g] = o
		}
	}
	for id, h := range sp.Held {
		if h.Size < 0 || h.K < 1 || h.K > MaxK {
			continue
		}
		p.held[id] = &heldPin{group: h.Group, name: SafeName(h.Name), size: h.Size, k: h.K, own: h.Own}
		if !h.Own {
			p.used[h.Group] += h.Size
		}
	}
}

// rejoined advertises again, once a group is joined, what this node offers
// and holds in it.
func (p *pinner) rejoined(ctx context.Context, group string) {
	p.mu.Lock()
	_, offered := p.offers[group]
	var ids []string
	for id, h := range p.held {
		if h.group == group {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	if offered {
		if err := p.advertiseVolunteer(ctx, group); err != nil {
			p.n.log.Debug("advertise volunteer", "group", group, "err", err)
		}
	}
	for _, id := range ids {
		if err := p.advertiseHeld(ctx, id); err != nil {
			p.n.log.Debug("advertise held pin", "id", id, "err", err)
		}
	}
}
