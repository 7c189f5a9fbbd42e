package pipes

import (
	"fmt"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// Bounds on the reliable sessions a listener keeps for remote peers. A
// session lives until it is closed, or until its dialer fails to resume it
// after its stream breaks; a hostile peer that says hello and resets must not
// pile sessions up (SECURITY.md).
const (
	// MaxSessionsPerPeer bounds the listener-side reliable sessions one
	// remote peer holds on this peer, over all pipes of all scopes. When a new
	// session would pass it, the peer's oldest session that is waiting for a
	// resume is dropped; if none waits, the new session is refused.
	MaxSessionsPerPeer = 32
	// MaxSessions bounds the listener-side reliable sessions of all remote
	// peers together; past it new sessions are refused.
	MaxSessions = 4096
	// idleResumeTimeout is how long a listener keeps a session that never
	// carried a message after its stream breaks: an honest dialer resumes
	// within seconds, and an idle session loses nothing when it ends.
	idleResumeTimeout = 10 * time.Second
)

// addSession records a listener-side reliable session under key. It evicts
// remote's oldest broken session when remote is at MaxSessionsPerPeer, and
// reports false when the session must be refused.
func (c *core) addSession(key string, remote peer.ID, conn *MsgConn) bool {
	c.mu.Lock()
	var victim *MsgConn
	var victimLost time.Time
	if c.perPeer[remote] >= MaxSessionsPerPeer {
		for _, s := range c.sessions {
			if s.remote != remote {
				continue
			}
			s.mu.Lock()
			broken, lost := s.broken, s.lostAt
			s.mu.Unlock()
			if broken && (victim == nil || lost.Before(victimLost)) {
				victim, victimLost = s, lost
			}
		}
		if victim == nil {
			c.mu.Unlock()
			return false
		}
	} else if len(c.sessions) >= MaxSessions {
		c.mu.Unlock()
		return false
	}
	if victim != nil {
		c.deleteSessionLocked(sessionKey(victim.s.scope, victim.id, victim.remote, victim.sid), victim)
	}
	if old := c.sessions[key]; old != nil {
		c.deleteSessionLocked(key, old)
	}
	c.sessions[key] = conn
	c.perPeer[remote]++
	c.mu.Unlock()
	if victim != nil {
		victim.fail(fmt.Errorf("%w: %s opened more than %d sessions", ErrSessionLost, remote.ShortString(), MaxSessionsPerPeer))
	}
	return true
}

// deleteSessionLocked forgets the session under key if it is conn.
func (c *core) deleteSessionLocked(key string, conn *MsgConn) {
	if c.sessions[key] != conn {
		return
	}
	delete(c.sessions, key)
	if c.perPeer[conn.remote]--; c.perPeer[conn.remote] <= 0 {
		delete(c.perPeer, conn.remote)
	}
}

// Sessions reports how many listener-side reliable sessions this service's
// peer keeps, and how many of them remote holds.
func (s *Service) Sessions(remote peer.ID) (total, ofRemote int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions), s.perPeer[remote]
}

// resumeWait is how long a listener-side session waits for its dialer after
// its stream broke: the configured ResumeTimeout once the session has carried
// a message, a short idleResumeTimeout before.
func (c *MsgConn) resumeWait() time.Duration {
	c.mu.Lock()
	idle := c.recvSeq == 0 && c.nextSeq == 1
	c.mu.Unlock()
	if idle {
		return min(c.cfg.ResumeTimeout, idleResumeTimeout)
	}
	return c.cfg.ResumeTimeout
}
