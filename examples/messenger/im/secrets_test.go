package im

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/peer"
)

func openAt(t *testing.T, dir, name string) (*Messenger, error) {
	t.Helper()
	return Open(context.Background(), Config{Dir: dir, Name: name, Loopback: true, NoMDNS: true, AutoAway: -1, Heartbeat: time.Second})
}

// putRaw writes a room record as a version that kept passwords did.
func putRaw(t *testing.T, dir string, r savedRoom) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "messenger.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := enc.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bRooms).Put([]byte(r.Name), v) }); err != nil {
		t.Fatal(err)
	}
}

func fileHas(t *testing.T, path, s string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}

// A profile written by a version that kept room passwords in messenger.db
// is migrated on open: the rooms are still there, rejoined from the key
// derived from the password, and the password is no longer anywhere in the
// file (bbolt's free pages included). A room whose saved advertisement is
// damaged is forgotten with its password, and a notice says how to join it
// again. New rooms never write the password.
func TestMigrateRoomPasswords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "alice")
	const pw, lostPW, freshPW = "old-format-secret-42", "damaged-room-secret-17", "fresh-room-secret-99"
	a, err := openAt(t, dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.CreateRoom(ctx, "den", pw); err != nil {
		t.Fatal(err)
	}
	den := a.room("den").g.Info()
	a.Close()
	dbPath := filepath.Join(dir, "messenger.db")
	if fileHas(t, dbPath, pw) {
		t.Fatal("a new room wrote its password")
	}
	// Rewrite the rooms as the old version kept them: the password, no state.
	putRaw(t, dir, savedRoom{Name: "den", GroupID: den.ID, LegacyPassword: pw, GroupAd: den.Raw()})
	putRaw(t, dir, savedRoom{Name: "lost", GroupID: "x", LegacyPassword: lostPW, GroupAd: []byte("damaged")})
	if !fileHas(t, dbPath, pw) || !fileHas(t, dbPath, lostPW) {
		t.Fatal("the old-format profile does not hold the passwords")
	}

	a, err = openAt(t, dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Rooms(); !slices.Equal(got, []string{"den"}) {
		t.Fatalf("rooms after migration: %v", got)
	}
	if a.room("den").g.ID() != den.ID {
		t.Fatal("rejoined another room")
	}
	sub := a.Subscribe(ctx)
	waitNotice(t, sub.C, "room lost:", "/room join lost PASSWORD")
	sub.Cancel()
	saved := a.st.rooms()
	if len(saved) != 1 || saved[0].LegacyPassword != "" || len(saved[0].State) == 0 {
		t.Fatalf("saved rooms after migration: %+v", saved)
	}
	if err := a.CreateRoom(ctx, "fresh", freshPW); err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, s := range []string{pw, lostPW, freshPW} {
		if fileHas(t, dbPath, s) {
			t.Fatalf("messenger.db still holds password %q", s)
		}
	}
	if _, err := os.Stat(dbPath + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("compaction left its temporary file: %v", err)
	}

	// A third start: both rooms come back from their keys.
	a, err = openAt(t, dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Rooms(); !slices.Equal(got, []string{"den", "fresh"}) {
		t.Fatalf("rooms after restart: %v", got)
	}
}

func waitNotice(t *testing.T, c <-chan Event, want ...string) {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case ev := <-c:
			n, ok := ev.(Notice)
			if !ok {
				continue
			}
			all := true
			for _, w := range want {
				all = all && strings.Contains(n.Text, w)
			}
			if all {
				return
			}
		case <-deadline:
			t.Fatalf("no notice saying %q", want)
		}
	}
}

// The messenger refuses to start when a file holding keys is open to other
// users, and says how to fix it.
func TestSecretsPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix mode bits")
	}
	dir := filepath.Join(t.TempDir(), "alice")
	a, err := openAt(t, dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, f := range []string{filepath.Join(dir, "messenger.db"), filepath.Join(dir, "peer", peer.KeyFile)} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s created with mode %04o", f, fi.Mode().Perm())
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = openAt(t, dir, "alice")
		if !errors.Is(err, ErrExposed) || !strings.Contains(err.Error(), "chmod 600 "+f) || !strings.Contains(err.Error(), "0644") {
			t.Fatalf("open with %s mode 0644: %v", f, err)
		}
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err = openAt(t, dir, "alice")
	if err != nil {
		t.Fatalf("open after chmod 600: %v", err)
	}
	a.Close()
}
