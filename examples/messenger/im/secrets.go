package im

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// Secrets at rest. The messenger's directory holds the peer's identity key
// (peer/identity.key), and messenger.db holds the mailbox box key, invite
// rooms' group keys and credentials, and password rooms' derived keys. None
// is encrypted: a key to encrypt them would have to sit beside them (or be
// typed at every start, which -demo and unattended super-peers cannot do),
// and the identity key beside them is worth as much. What protects them is
// the operating system: both files are created mode 0600 in a 0700
// directory, and the messenger refuses to start when either can be read by
// other users (ErrExposed). What the messenger no longer keeps is the
// password a user typed for a room, which people reuse elsewhere: it keeps
// the key derived from it (groups.Group.State), which admits to that one
// room and, through argon2id, does not give the password back.

// ErrExposed: a file holding the user's keys can be read or written by other
// users of this machine.
var ErrExposed = errors.New("messenger: a file holding your keys is open to other users")

// checkPrivate refuses a secret file that other users can access. A missing
// file passes (it is created 0600). Windows has no such mode bits.
func checkPrivate(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; make it private with: chmod 600 %s", ErrExposed, path, perm, path)
	}
	return nil
}

// checkSecrets checks the files in dir that hold keys.
func checkSecrets(dir string) error {
	for _, p := range []string{filepath.Join(dir, "messenger.db"), filepath.Join(dir, "peer", peer.KeyFile)} {
		if err := checkPrivate(p); err != nil {
			return err
		}
	}
	return nil
}

// openProfile opens the store in dir once its key files are checked, and
// migrates what earlier versions kept in the clear.
func (m *Messenger) openProfile(dir string) (err error) {
	if err := checkSecrets(dir); err != nil {
		return err
	}
	if m.st, err = openStore(dir); err != nil {
		return err
	}
	notices, err := m.st.migrateRooms()
	if err != nil {
		m.st.close()
		return err
	}
	for _, n := range notices {
		m.emit(Notice{Text: n})
	}
	return nil
}

// migrateRooms replaces the room passwords that earlier versions kept with
// the keys derived from them, then rewrites the database so that the
// passwords are not left in its free pages. A saved advertisement past its
// lifetime converts (groups.ParseInfo takes kept advertisements); a room
// whose advertisement does not verify (damaged, tampered with) cannot be
// converted: it is forgotten with its password, and the returned notices
// tell the user to join it again.
func (s *store) migrateRooms() (notices []string, err error) {
	changed := false
	for _, r := range s.rooms() {
		if r.LegacyPassword == "" {
			continue
		}
		info, err := groups.ParseInfo(r.GroupAd)
		if err == nil {
			r.State, err = groups.PasswordState(info, r.LegacyPassword)
		}
		changed = true
		if err != nil {
			notices = append(notices, fmt.Sprintf("room %s: its saved password could not be turned into a key (%v) and is no longer kept; join it again with /room join %s PASSWORD", r.Name, err, r.Name))
			if err := s.deleteRoom(r.Name); err != nil {
				return nil, err
			}
			continue
		}
		r.LegacyPassword = ""
		if err := s.putRoom(r); err != nil {
			return nil, err
		}
	}
	if changed {
		if err := s.compact(); err != nil {
			return nil, fmt.Errorf("messenger: rewriting the database without room passwords: %w", err)
		}
	}
	return notices, nil
}

// compact rewrites the database into a fresh file holding only live data
// and puts it in place of the old one: bbolt keeps replaced values in free
// pages until they are reused. (The file system may keep the old file's
// blocks until they are reused too; only full-disk encryption helps there.)
func (s *store) compact() error {
	path := s.db.Path()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 1<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	renameErr := os.Rename(tmp, path)
	if renameErr == nil {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			_ = d.Sync()
			d.Close()
		}
	} else {
		os.Remove(tmp)
	}
	// Reopen whichever file is now in place: the compacted one, or the
	// original when the rename failed.
	if s.db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second}); err != nil {
		return err
	}
	return renameErr
}
