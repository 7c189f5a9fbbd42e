package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// helperEnv selects a helper mode when the test binary runs as a process
// inside the lab (see helperMain).
const helperEnv = "NETLAB_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// helperMain runs the test binary as a small program inside the lab.
func helperMain(mode string, args []string) int {
	switch mode {
	case "addrs": // print this namespace's IPv4 addresses
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				fmt.Println(p.Addr())
			}
		}
		return 0
	case "sleep": // wait to be killed
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "mdns-register":
		return mdnsRegister(args)
	case "mdns-browse":
		return mdnsBrowse(args)
	case "libp2p-server":
		return libp2pServer(args)
	case "libp2p-client":
		return libp2pClient(args)
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", mode)
	return 2
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root (network namespaces, netlink, nftables): run the tests as root, as CI does")
	}
}

// newLab builds spec and closes the lab when the test ends.
func newLab(t *testing.T, spec Spec) *Lab {
	t.Helper()
	needRoot(t)
	start := time.Now()
	l, err := New(context.Background(), spec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Logf("built %d namespaces in %v\n%s", len(l.namespaces), time.Since(start).Round(time.Millisecond), l)
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// helper returns a command running the test binary in helper mode inside ns.
func helper(ctx context.Context, t *testing.T, ns *Namespace, mode string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(ctx, self, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// inside runs fn in ns and fails the test on error.
func inside(t *testing.T, ns *Namespace, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatalf("in %s: %v", ns.Name(), err)
	}
}

// echoServer is a STUN-like UDP server: it answers each datagram with the
// source address and port it saw. Its socket is also used to send probes
// from that address.
type echoServer struct {
	conn *net.UDPConn
	addr netip.AddrPort
	wg   sync.WaitGroup
}

func startEcho(t *testing.T, h *Host, port int) *echoServer {
	t.Helper()
	e := &echoServer{addr: netip.AddrPortFrom(h.Addr(), uint16(port))}
	inside(t, h.Namespace, func() error {
		var err error
		e.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(e.addr))
		return err
	})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(buf[:n]), "probe") {
				continue // probes go out from this socket; never answer them
			}
			e.conn.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	}()
	t.Cleanup(func() {
		e.conn.Close()
		e.wg.Wait()
	})
	return e
}

// probe sends a datagram from the server's socket to dst.
func (e *echoServer) probe(t *testing.T, dst netip.AddrPort, tag string) {
	t.Helper()
	if _, err := e.conn.WriteToUDPAddrPort([]byte("probe "+tag), dst); err != nil {
		t.Fatalf("probe from %v to %v: %v", e.addr, dst, err)
	}
}

// udpSocket opens a UDP socket inside h on any port.
func udpSocket(t *testing.T, h *Host) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inside(t, h.Namespace, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// mapped asks the echo server at srv what address c's packets arrive from.
func mapped(t *testing.T, c *net.UDPConn, srv netip.AddrPort) netip.AddrPort {
	t.Helper()
	return mappedTries(t, c, srv, 5)
}

// mappedTries is mapped with a given number of one-second tries, for links
// that lose packets (ARP's included).
func mappedTries(t *testing.T, c *net.UDPConn, srv netip.AddrPort, tries int) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 256)
	for try := 0; try < tries; try++ {
		if _, err := c.WriteToUDPAddrPort([]byte("query"), srv); err != nil {
			t.Fatalf("query %v: %v", srv, err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // timeout: ask again
			}
			if from != srv {
				continue
			}
			a, err := netip.ParseAddrPort(string(buf[:n]))
			if err != nil {
				t.Fatalf("echo %v answered %q", srv, buf[:n])
			}
			return a
		}
	}
	t.Fatalf("no answer from %v", srv)
	return netip.AddrPort{}
}

// receives says whether c gets the datagram tagged tag within wait.
func receives(c *net.UDPConn, tag string, wait time.Duration) bool {
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == "probe "+tag {
			return true
		}
	}
}

// tcpEcho listens inside h and writes each connection's remote address back.
func tcpEcho(t *testing.T, h *Host, port int) netip.AddrPort {
	t.Helper()
	addr := netip.AddrPortFrom(h.Addr(), uint16(port))
	var ln net.Listener
	inside(t, h.Namespace, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String()+"\n")
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return addr
}

// reusePort sets SO_REUSEADDR and SO_REUSEPORT, as go-libp2p's TCP transport
// does so that its dials leave from its listening port.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	return errors.Join(err, serr)
}

// dialTCP dials dst from inside h, from local port lport (0 for any), and
// returns the first line the peer sends, if any.
func dialTCP(h *Host, lport int, dst netip.AddrPort, timeout time.Duration) (string, error) {
	var line string
	err := h.Do(func() error {
		d := net.Dialer{Timeout: timeout, Control: reusePort}
		if lport != 0 {
			d.LocalAddr = &net.TCPAddr{Port: lport}
		}
		c, err := d.Dial("tcp4", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(timeout))
		line, _ = bufio.NewReader(c).ReadString('\n')
		line = strings.TrimSpace(line)
		return nil
	})
	return line, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpListenReuse listens on port inside h with SO_REUSEPORT, so dials may
// leave from the same port, and greets each connection with its remote
// address.
func tcpListenReuse(t *testing.T, h *Host, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	inside(t, h.Namespace, func() error {
		var err error
		lc := net.ListenConfig{Control: reusePort}
		ln, err = lc.Listen(context.Background(), "tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String()+"\n")
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln
}

func netDialUDP(dst netip.AddrPort) (*net.UDPConn, error) {
	return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
}
