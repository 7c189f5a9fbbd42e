package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces live, as with `ip netns`, so
// `ip netns exec <name> ...` works on a lab while it runs.
const netnsDir = "/run/netns"

// Namespace is one network namespace of the lab: a host, a router or the
// internet itself. Sockets made inside it see only the lab's network.
type Namespace struct {
	lab  *Lab
	name string // the node's name in the spec
	path string // bind mount under netnsDir; never empty

	fd     netns.NsHandle  // open until Close
	handle *netlink.Handle // netlink inside the namespace; closed on Close

	// Set while the lab is built; changed only under lab.chg (change.go).
	up     *uplink    // how this node plugs into its upstream; nil for the internet
	lanSeg *segment   // the segment this node serves (a router's LAN, the internet)
	stack  Stack      // what a node on the internet asks for when it attaches
	addr6  netip.Addr // the node's IPv6 address on its uplink; invalid without

	closeOnce sync.Once
}

// Name is the node's name in the spec ("internet" for the internet).
func (n *Namespace) Name() string { return n.name }

// Path is the namespace's bind mount, /run/netns/jxl<run>-<name>: its base
// name is what `ip netns exec` takes, for looking inside a running lab.
func (n *Namespace) Path() string { return n.path }

// Do runs fn on the calling goroutine, locked to its OS thread, with that
// thread moved into the namespace, and moves the thread back afterwards.
//
// Sockets fn creates belong to the namespace for good and may be used from
// any goroutine afterwards. But only the calling goroutine is inside: a
// goroutine fn starts runs on another thread, outside, and sockets it creates
// (a listener opened later, a dial made lazily) live in the machine's own
// namespace. Libraries that create sockets in the background, as go-libp2p
// does for every dial, must therefore run in a process of their own: see
// Command. fn may call t.Fatal.
func (n *Namespace) Do(fn func() error) error {
	target, err := n.dup()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		target.Close()
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: %s: current namespace: %w", n.name, err)
	}
	err = netns.Set(target)
	target.Close()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: %s: enter namespace: %w", n.name, err)
	}
	defer func() {
		err := netns.Set(orig)
		orig.Close()
		if err != nil {
			// The thread stays locked to this goroutine and so never runs
			// anything else; it is unusable, and this is unrecoverable.
			panic(fmt.Sprintf("netlab: cannot leave namespace %s: %v", n.name, err))
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// dup returns a descriptor of the namespace of its own, so that a Close
// running meanwhile cannot pull the namespace from under the caller.
func (n *Namespace) dup() (netns.NsHandle, error) {
	n.lab.mu.Lock()
	defer n.lab.mu.Unlock()
	if n.lab.closed {
		return -1, fmt.Errorf("netlab: lab %s: %w", n.lab.prefix, net.ErrClosed)
	}
	fd, err := unix.FcntlInt(uintptr(n.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("netlab: %s: %w", n.name, err)
	}
	return netns.NsHandle(fd), nil
}

// inNS runs fn in the namespace fd on a goroutine of its own. If the thread
// cannot be moved back, the goroutine exits still locked, which makes the Go
// runtime discard the thread.
func inNS(fd netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(fd); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace: %w", err))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// createNamespace makes a new network namespace and bind-mounts it at path,
// as `ip netns add` does, and returns an open handle to it.
func createNamespace(path string) (netns.NsHandle, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return -1, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return -1, err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, err)
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind mount: %w", merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		removeNamespace(path)
		return -1, err
	}
	return netns.GetFromPath(path)
}

// removeNamespace unmounts and removes a namespace's bind mount. The kernel
// frees the namespace when nothing else holds it: no process, no open handle.
func removeNamespace(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		err = nil // not mounted: a crash between create and mount
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// newNamespace creates the namespace for node name, with loopback up.
func (l *Lab) newNamespace(name string) (*Namespace, error) {
	n := &Namespace{lab: l, name: name, path: filepath.Join(netnsDir, l.prefix+"-"+name), fd: -1}
	fd, err := createNamespace(n.path)
	if err != nil {
		return nil, fmt.Errorf("netlab: create namespace %s: %w", n.path, err)
	}
	n.fd = fd
	l.namespaces = append(l.namespaces, n) // from here on, Close removes it
	if n.handle, err = netlink.NewHandleAt(fd); err != nil {
		return nil, fmt.Errorf("netlab: %s: netlink: %w", name, err)
	}
	lo, err := n.handle.LinkByName("lo")
	if err == nil {
		err = n.handle.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: loopback up: %w", name, err)
	}
	// Bridged frames stay at layer 2: no iptables or nftables on bridge
	// ports, whatever br_netfilter says. Per namespace since Linux 5.3; on
	// kernels without br_netfilter the file is missing, which is fine.
	_ = n.sysctl("net.bridge.bridge-nf-call-iptables", "0")
	_ = n.sysctl("net.bridge.bridge-nf-call-ip6tables", "0")
	return n, nil
}

// sysctl sets a network sysctl inside the namespace: /proc/sys/net resolves
// against the namespace of the thread that opens it.
func (n *Namespace) sysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return inNS(n.fd, func() error {
		return os.WriteFile(p, []byte(value), 0o644)
	})
}

// release closes the handles that keep the namespace alive; it leaves the
// bind mount.
func (n *Namespace) release() {
	n.closeOnce.Do(func() {
		if n.handle != nil {
			n.handle.Close()
		}
		if n.fd.IsOpen() {
			n.fd.Close()
		}
	})
}
