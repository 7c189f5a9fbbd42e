package netlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// namePrefix starts the name of every namespace a lab makes, followed by
	// the run's id: jxl1a2b3c-home.
	namePrefix = "jxl"
	// markerDir holds one marker per running lab, jxl<id>.json, naming the
	// process that owns it. Written before the first namespace, removed after
	// the last.
	markerDir = "/run/juxta-netlab"
)

// runRE matches a lab namespace's name and captures the run id.
var runRE = regexp.MustCompile(`^` + namePrefix + `([0-9a-f]{6})-`)

// marker names the process that owns a run. Start is the process's start
// time (field 22 of /proc/pid/stat), so a reused PID is not taken for the
// owner.
type marker struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

func markerPath(id string) string { return filepath.Join(markerDir, namePrefix+id+".json") }

func writeMarker(id string) error {
	start, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("own start time: %w", err)
	}
	return putMarker(id, marker{PID: os.Getpid(), Start: start})
}

// putMarker writes a marker atomically, so a reader never sees half of one.
func putMarker(id string, m marker) error {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	b, _ := json.Marshal(m)
	tmp := markerPath(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	if err := os.Rename(tmp, markerPath(id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("marker: %w", err)
	}
	return nil
}

func removeMarker(id string) error {
	if err := os.Remove(markerPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netlab: remove marker: %w", err)
	}
	return nil
}

// procStart reads a process's start time in clock ticks since boot.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold anything.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}

// runAlive says whether the run id has a marker whose owner still lives.
func runAlive(id string) bool {
	b, err := os.ReadFile(markerPath(id))
	if err != nil {
		return false // markers precede namespaces: no marker, no live owner
	}
	var m marker
	if json.Unmarshal(b, &m) != nil || m.PID <= 0 {
		return false
	}
	start, err := procStart(m.PID)
	return err == nil && start == m.Start
}

var cleanupMu sync.Mutex // one Cleanup at a time within a process

// Cleanup removes what crashed labs left behind: namespaces under /run/netns
// named jxl<run>-<node> whose run has no marker or whose marker names a
// process that is gone, the processes still running inside them, and the
// stale markers. Labs of live processes, this one's included, are left
// alone. New calls it; call it yourself after killing a test run. A lab never
// creates anything in the machine's own namespace (every veth and TAP device
// is made directly inside a lab namespace), so there is nothing to clean
// there.
func Cleanup() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	cleanupMu.Lock()
	defer cleanupMu.Unlock()

	stale := map[string][]string{} // run id → namespace paths
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		m := runRE.FindStringSubmatch(e.Name())
		if m == nil || runAlive(m[1]) {
			continue
		}
		stale[m[1]] = append(stale[m[1]], filepath.Join(netnsDir, e.Name()))
	}
	markers, err := os.ReadDir(markerDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range markers {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !strings.HasPrefix(name, namePrefix) {
			continue
		}
		id := strings.TrimPrefix(name, namePrefix)
		if _, seen := stale[id]; !seen && !runAlive(id) {
			stale[id] = nil
		}
	}

	var errs []error
	for id, paths := range stale {
		errs = append(errs, killInNamespaces(paths))
		for _, p := range paths {
			if err := removeNamespace(p); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
			}
		}
		errs = append(errs, removeMarker(id))
	}
	return errors.Join(errs...)
}

// killInNamespaces kills every process (other than this one) whose network
// namespace is one of the namespaces mounted at paths, and waits up to a few
// seconds for them to go.
func killInNamespaces(paths []string) error {
	type nsID struct{ dev, ino uint64 }
	want := map[nsID]bool{}
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			want[nsID{st.Dev, st.Ino}] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	// scan signals the processes inside and says how many it found.
	scan := func() int {
		procs, _ := os.ReadDir("/proc")
		n := 0
		for _, e := range procs {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			// Open the process first, then check its namespace: the signal
			// goes to the process checked, never to a successor reusing the
			// PID.
			pfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && want[nsID{st.Dev, st.Ino}] {
				n++
				unix.PidfdSendSignal(pfd, syscall.SIGKILL, nil, 0)
			}
			unix.Close(pfd)
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for scan() > 0 {
		if time.Now().After(deadline) {
			return errors.New("netlab: processes in the lab's namespaces survive SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
