package im

import (
	"time"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

func (m *Messenger) visiblePresence() (string, string) {
	st, text := m.Presence()
	if st == string(groups.Invisible) {
		return string(groups.Offline), ""
	}
	return st, text
}

func (m *Messenger) setPresence(id peer.ID, state, text string) {
	if state == "" {
		state = string(groups.Online)
	}
	m.mu.Lock()
	old := m.presence[id]
	m.presence[id] = [2]string{state, trim(text, 256)}
	m.mu.Unlock()
	if old[0] != state || old[1] != text {
		if c, ok := m.st.contact(id); ok {
			c.Presence, c.StatusText = state, text
			m.emit(ContactChanged{Contact: c})
		}
	}
}

func (m *Messenger) broadcastPresence(state, text string) {
	if state == string(groups.Invisible) {
		state, text = string(groups.Offline), ""
	}
	m.mu.Lock()
	conns := make(map[peer.ID]*pipes.MsgConn, len(m.conns))
	for id, c := range m.conns {
		conns[id] = c
	}
	m.mu.Unlock()
	for id, c := range conns {
		if ct, ok := m.st.contact(id); ok && ct.State == Accepted {
			m.sendFrame(m.ctx, c, frame{T: "presence", State: state, Text: text})
		}
	}
}

// expirePresence shows contacts offline after three silent heartbeats.
func (m *Messenger) expirePresence() {
	limit := 3 * m.cfg.Heartbeat
	var gone []peer.ID
	m.mu.Lock()
	for id := range m.presence {
		if time.Since(m.lastHeard[id]) > limit {
			delete(m.presence, id)
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		if c, ok := m.st.contact(id); ok {
			c.Presence = string(groups.Offline)
			m.emit(ContactChanged{Contact: c})
		}
	}
}

func (m *Messenger) autoAwayCheck(now time.Time) {
	if m.cfg.AutoAway < 0 {
		return
	}
	m.mu.Lock()
	idle := now.Sub(m.active) > m.cfg.AutoAway && m.state == string(groups.Online)
	if idle {
		m.state, m.autoAway = string(groups.Away), true
	}
	text := m.text
	m.mu.Unlock()
	if idle {
		m.broadcastPresence(string(groups.Away), text)
		m.emit(PresenceChanged{State: string(groups.Away), Text: text, Auto: true})
	}
}
