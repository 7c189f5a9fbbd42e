package im

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/peer"
)

// The mailbox store: one bbolt bucket per recipient, items keyed by sequence
// and ID. Fullness is judged from live bytes, counted in memory (rebuilt at
// open), never from the file's size, which bbolt never shrinks: deleted
// items' pages are reused.

// recount rebuilds the live-byte counts from the store.
func (s *MailboxServer) recount() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recountLocked()
}

// recountLocked is recount with mu held; it also repairs the counts after a
// failed transaction.
func (s *MailboxServer) recountLocked() error {
	s.total, s.own = 0, map[string]int64{}
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(_, v []byte) error {
				var it mbItem
				if dec.Unmarshal(v, &it) == nil {
					s.account(string(it.From), int64(len(v)))
				}
				return nil
			})
		})
	})
}

// account adds n live bytes deposited by from; guarded by mu.
func (s *MailboxServer) account(from string, n int64) {
	s.total += n
	if s.own[from] += n; s.own[from] <= 0 {
		delete(s.own, from)
	}
}

func (s *MailboxServer) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(mailboxSweepTick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep removes expired items from every recipient's box.
func (s *MailboxServer) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.lastSweep = now
	_ = s.db.Update(func(tx *bolt.Tx) error {
		var names [][]byte
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, append([]byte(nil), name...))
			return nil
		})
		for _, name := range names {
			s.expire(tx, name, now)
		}
		return nil
	})
}

// expire removes the expired (or unreadable) items of recipient to, and the
// box itself when it is empty; guarded by mu, inside a write transaction.
func (s *MailboxServer) expire(tx *bolt.Tx, to []byte, now time.Time) {
	b := tx.Bucket(to)
	if b == nil {
		return
	}
	var dead [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		var it mbItem
		if dec.Unmarshal(v, &it) != nil || now.UnixMilli() > it.Expires {
			dead = append(dead, append([]byte(nil), k...))
			s.account(string(it.From), -int64(len(v)))
		}
		return nil
	})
	for _, k := range dead {
		_ = b.Delete(k)
	}
	dropEmpty(tx, to)
}

func dropEmpty(tx *bolt.Tx, to []byte) {
	if b := tx.Bucket(to); b != nil {
		if k, _ := b.Cursor().First(); k == nil {
			_ = tx.DeleteBucket(to)
		}
	}
}

// errStoreFull: the whole store is at MaxTotal live bytes.
var errStoreFull = errors.New("the super-peer's mailbox store is full")

func (s *MailboxServer) deposit(from peer.ID, req mbReq) (int, error) {
	to, err := validRecipient(req.To)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.lim.MaxTotal && time.Since(s.lastSweep) > time.Minute {
		s.mu.Unlock()
		s.sweep()
		s.mu.Lock()
	}
	stored := 0
	var firstErr error
	refuse := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	now := time.Now()
	lim := s.limiter(from)
	var added []int64
	err = s.db.Update(func(tx *bolt.Tx) error {
		added = added[:0]
		s.expire(tx, req.To, now)
		b, err := tx.CreateBucketIfNotExists(req.To)
		if err != nil {
			return err
		}
		count, size := b.Stats().KeyN, 0
		_ = b.ForEach(func(_, v []byte) error { size += len(v); return nil })
		own, total := s.own[string(from)], s.total
		// Each item on its own: one bad item does not cost the others.
		for _, it := range req.Items {
			if len(it.Blob) > MailboxMaxItem || len(it.ID) == 0 || len(it.ID) > 64 {
				refuse(fmt.Errorf("item %q too large or unnamed", it.ID))
				continue
			}
			v, err := enc.Marshal(mbItem{ID: it.ID, From: []byte(from), Blob: it.Blob, Expires: now.Add(s.lim.TTL).UnixMilli(), Time: now.UnixMilli()})
			if err != nil {
				return err
			}
			n := int64(len(v))
			switch {
			case count >= s.lim.MaxItems || size+len(v) > s.lim.MaxBytes:
				refuse(fmt.Errorf("mailbox of %s is full", to.ShortString()))
				continue
			case own+n > s.lim.MaxOwn:
				refuse(errors.New("you have too much waiting in mailboxes on this super-peer"))
				continue
			case total+n > s.lim.MaxTotal:
				refuse(errStoreFull)
				continue
			case !lim.Allow():
				refuse(errRateLimited)
				continue
			}
			seq, _ := b.NextSequence()
			key := binary.BigEndian.AppendUint64(nil, seq)
			key = append(key, it.ID...)
			if err := b.Put(key, v); err != nil {
				return err
			}
			count++
			size += len(v)
			own += n
			total += n
			added = append(added, n)
			stored++
		}
		dropEmpty(tx, req.To)
		return nil
	})
	if err != nil {
		_ = s.recountLocked()
		return 0, err
	}
	for _, n := range added {
		s.account(string(from), n)
	}
	return stored, firstErr
}

// fetch returns what waits for to, at most mailboxFetchBytes of it, and
// whether more waits.
func (s *MailboxServer) fetch(to peer.ID) ([]mbItem, bool, error) {
	var out []mbItem
	more := false
	size := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, more, size = nil, false, 0
		s.expire(tx, []byte(to), time.Now())
		b := tx.Bucket([]byte(to))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var it mbItem
			if more || dec.Unmarshal(v, &it) != nil {
				return nil
			}
			if size+len(v) > mailboxFetchBytes {
				more = true
				return nil
			}
			out = append(out, it)
			size += len(v)
			return nil
		})
	})
	if err != nil {
		_ = s.recountLocked()
	}
	return out, more, err
}

func (s *MailboxServer) ack(to peer.ID, ids []string) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type gone struct {
		from string
		n    int64
	}
	var freed []gone
	err := s.db.Update(func(tx *bolt.Tx) error {
		freed = freed[:0]
		b := tx.Bucket([]byte(to))
		if b == nil {
			return nil
		}
		var dead [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			if len(k) > 8 && want[string(k[8:])] {
				dead = append(dead, append([]byte(nil), k...))
				var it mbItem
				_ = dec.Unmarshal(v, &it)
				freed = append(freed, gone{string(it.From), int64(len(v))})
			}
			return nil
		})
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		dropEmpty(tx, []byte(to))
		return nil
	})
	if err != nil {
		_ = s.recountLocked()
		return err
	}
	for _, g := range freed {
		s.account(g.from, -g.n)
	}
	return nil
}

// Count reports how many items wait for recipient.
func (s *MailboxServer) Count(recipient peer.ID) int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(recipient)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}
