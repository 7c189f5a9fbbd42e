package share

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Op says what happened to a shared file.
type Op int

const (
	// Upsert: the file is new, or its size or modification time changed.
	Upsert Op = iota + 1
	// Remove: the file is gone (deleted, renamed away, or no longer a regular
	// file).
	Remove
)

func (o Op) String() string {
	switch o {
	case Upsert:
		return "upsert"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Change is one file's change under a watched folder.
type Change struct {
	Op   Op
	Root string // the shared folder it is under
	Path string // absolute path
	Size int64
	Mod  time.Time
}

// Rel is the path relative to its shared folder, with '/' separators.
func (c Change) Rel() string {
	r, err := filepath.Rel(c.Root, c.Path)
	if err != nil {
		return filepath.Base(c.Path)
	}
	return filepath.ToSlash(r)
}

type stamp struct {
	root string
	size int64
	mod  time.Time
}

// Watcher follows shared folders and reports their regular files as they
// appear, change and disappear: first every file found by a full scan, then
// changes, each once the path has been quiet for the settle time. Hidden files
// and folders (names starting with '.') and symbolic links are skipped.
type Watcher struct {
	fsw    *fsnotify.Watcher
	settle time.Duration
	ready  chan struct{} // a token when out is non-empty
	done   chan struct{} // closed when run returns
	stop   chan struct{} // closed on Close
	once   sync.Once

	mu      sync.Mutex
	roots   []string             // guarded by mu
	known   map[string]stamp     // guarded by mu; files reported and not removed
	pending map[string]time.Time // guarded by mu; paths to re-examine, since
	out     []Change             // guarded by mu; changes not yet taken by Next
	err     error                // guarded by mu; fatal watcher error
}

// Watch starts watching roots (folders) and queues a full scan of them.
// settle is how long a path must be quiet before it is examined (default
// 200 ms); writes in progress are thus reported once, when they end.
func Watch(roots []string, settle time.Duration) (*Watcher, error) {
	if settle <= 0 {
		settle = 200 * time.Millisecond
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("share: watch: %w", err)
	}
	w := &Watcher{
		fsw: fsw, settle: settle, ready: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{}),
		known: map[string]stamp{}, pending: map[string]time.Time{},
	}
	for _, r := range roots {
		if err := w.Add(r); err != nil {
			fsw.Close()
			return nil, err
		}
	}
	go w.run()
	return w, nil
}

// Add watches another folder and reports the files in it.
func (w *Watcher) Add(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("share: %s is not a folder", root)
	}
	w.mu.Lock()
	if slices.Contains(w.roots, abs) {
		w.mu.Unlock()
		return nil
	}
	w.roots = append(w.roots, abs)
	w.mu.Unlock()
	w.scan(abs, abs)
	return nil
}

// Roots are the watched folders, absolute.
func (w *Watcher) Roots() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.roots)
}

// Next blocks until changes are ready and returns them in order. It returns
// net.ErrClosed after Close, or the watcher's fatal error.
func (w *Watcher) Next(ctx context.Context) ([]Change, error) {
	for {
		w.mu.Lock()
		out, err := w.out, w.err
		w.out = nil
		w.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-w.ready:
		case <-w.done:
			w.mu.Lock()
			empty := len(w.out) == 0
			w.mu.Unlock()
			if empty {
				return nil, fmt.Errorf("share: watcher: %w", net.ErrClosed)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops watching. Changes not yet taken are dropped.
func (w *Watcher) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.fsw.Close()
}

// rootOf returns the watched folder that holds path.
func (w *Watcher) rootOf(path string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	best := ""
	for _, r := range w.roots {
		if (path == r || strings.HasPrefix(path, r+string(filepath.Separator))) && len(r) > len(best) {
			best = r
		}
	}
	return best, best != ""
}

func (w *Watcher) isRoot(p string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.roots, p)
}

// GroupMarker marks a folder that holds a group's files (its downloads): a
// share of a folder above it skips it, so they are never advertised outside
// the group.
const GroupMarker = ".fileshare-group"

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// scan walks dir (under root), watches its folders and reports its files.
func (w *Watcher) scan(root, dir string) {
	var batch []Change
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: skip
		}
		if p != dir && hidden(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != dir && (w.isRoot(p) || exists(filepath.Join(p, GroupMarker))) {
				return filepath.SkipDir // shared on its own: a group's downloads
			}
			w.fsw.Add(p)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if c, ok := w.examine(root, p); ok {
			batch = append(batch, c)
		}
		return nil
	})
	w.emit(batch)
}

// examine stats path and returns the change it shows against what was
// reported, if any.
func (w *Watcher) examine(root, path string) (Change, bool) {
	fi, err := os.Lstat(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	old, had := w.known[path]
	if err != nil || !fi.Mode().IsRegular() {
		if had {
			delete(w.known, path)
			return Change{Op: Remove, Root: old.root, Path: path}, true
		}
		return Change{}, false
	}
	st := stamp{root: root, size: fi.Size(), mod: fi.ModTime()}
	if had && old == st {
		return Change{}, false
	}
	w.known[path] = st
	return Change{Op: Upsert, Root: root, Path: path, Size: st.size, Mod: st.mod}, true
}

// removeUnder reports every known file under dir as removed.
func (w *Watcher) removeUnder(dir string) {
	var batch []Change
	w.mu.Lock()
	for _, p := range slices.Sorted(maps.Keys(w.known)) {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			batch = append(batch, Change{Op: Remove, Root: w.known[p].root, Path: p})
			delete(w.known, p)
		}
	}
	w.mu.Unlock()
	w.emit(batch)
}

func (w *Watcher) emit(batch []Change) {
	if len(batch) == 0 {
		return
	}
	w.mu.Lock()
	w.out = append(w.out, batch...)
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func (w *Watcher) run() {
	defer close(w.done)
	tick := time.NewTicker(w.settle / 2)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.mu.Lock()
			w.pending[ev.Name] = time.Now()
			w.mu.Unlock()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.rescan() // events were lost: compare everything again
				continue
			}
			w.mu.Lock()
			w.err = fmt.Errorf("share: watcher: %w", err)
			w.mu.Unlock()
			select {
			case w.ready <- struct{}{}:
			default:
			}
		case now := <-tick.C:
			w.settled(now)
		}
	}
}

// settled examines the paths quiet for the settle time.
func (w *Watcher) settled(now time.Time) {
	w.mu.Lock()
	var due []string
	for p, t := range w.pending {
		if now.Sub(t) >= w.settle {
			due = append(due, p)
			delete(w.pending, p)
		}
	}
	w.mu.Unlock()
	slices.Sort(due)
	var batch []Change
	for _, p := range due {
		root, ok := w.rootOf(p)
		if !ok || hidden(filepath.Base(p)) {
			continue
		}
		fi, err := os.Lstat(p)
		if err == nil && fi.IsDir() && root != p && exists(filepath.Join(p, GroupMarker)) {
			continue // a group's folder under a shared one
		}
		if err == nil && fi.IsDir() {
			w.emit(batch)
			batch = nil
			w.scan(root, p) // a new or moved-in folder
			continue
		}
		if err != nil {
			w.removeUnder(p) // a folder that went away takes its files
		}
		if c, ok := w.examine(root, p); ok {
			batch = append(batch, c)
		}
	}
	w.emit(batch)
}

// rescan compares every watched folder with what was reported.
func (w *Watcher) rescan() {
	w.mu.Lock()
	gone := make(map[string]bool, len(w.known))
	for p := range w.known {
		gone[p] = true
	}
	roots := slices.Clone(w.roots)
	w.mu.Unlock()
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				delete(gone, p)
			}
			return nil
		})
		w.scan(r, r)
	}
	var batch []Change
	for _, p := range slices.Sorted(maps.Keys(gone)) {
		if c, ok := w.examine("", p); ok {
			batch = append(batch, c)
		}
	}
	w.emit(batch)
}
