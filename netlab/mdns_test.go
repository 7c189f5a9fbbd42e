package netlab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/zeroconf/v2"
)

const mdnsService = "_netlabtest._udp"

// mdnsRegister announces args[0] by mDNS until killed (at most a minute).
func mdnsRegister(args []string) int {
	srv, err := zeroconf.Register(args[0], mdnsService, "local.", 4242, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Shutdown()
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return 0
}

// mdnsBrowse prints the instances it finds by mDNS within two seconds, or,
// given "first", until it finds one (at most 30 s): a positive check waits
// for its event, a negative one for a fixed window.
func mdnsBrowse(args []string) int {
	wait, first := 2*time.Second, len(args) > 0 && args[0] == "first"
	if first {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range entries {
			fmt.Println("found", e.Instance, e.AddrIPv4)
			if first {
				cancel()
			}
		}
	}()
	if err := zeroconf.Browse(ctx, mdnsService, "local.", entries); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-ctx.Done()
	<-done
	return 0
}

// TestMulticast: multicast (and so mDNS) reaches the hosts of the same LAN
// and no further. All of it stays inside the lab's namespaces: the sockets
// are made inside with Do, and the mDNS programs run as processes inside.
func TestMulticast(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home"}, {Name: "other"}},
		Hosts:   []HostSpec{{Name: "a", Router: "home"}, {Name: "b", Router: "home"}, {Name: "c", Router: "other"}},
	})
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

	t.Run("raw", func(t *testing.T) {
		listen := func(h *Host) *net.UDPConn {
			var c *net.UDPConn
			inside(t, h.Namespace, func() error {
				ifi, err := net.InterfaceByName(hostIf)
				if err != nil {
					return err
				}
				c, err = net.ListenMulticastUDP("udp4", ifi, group)
				return err
			})
			t.Cleanup(func() { c.Close() })
			return c
		}
		a, c := listen(l.Host("a")), listen(l.Host("c"))
		var b *net.UDPConn
		inside(t, l.Host("b").Namespace, func() error {
			var err error
			b, err = net.DialUDP("udp4", nil, group)
			return err
		})
		defer b.Close()
		if _, err := b.Write([]byte("probe hello")); err != nil {
			t.Fatal(err)
		}
		if !receives(a, "hello", 2*time.Second) {
			t.Error("a, on b's LAN, did not receive b's multicast")
		}
		if receives(c, "hello", 300*time.Millisecond) {
			t.Error("c, behind another router, received b's multicast")
		}
	})

	t.Run("mdns", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		reg := helper(ctx, t, l.Host("a").Namespace, "mdns-register", "laptop-a")
		out, err := reg.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Host("a").Start(ctx, reg); err != nil {
			t.Fatal(err)
		}
		defer reg.Wait()
		defer reg.Process.Kill()
		if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
			t.Fatalf("register helper: %q", line)
		}
		var wg sync.WaitGroup
		found := map[string]string{}
		var mu sync.Mutex
		for _, name := range []string{"b", "c"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var args []string
				if name == "b" { // expected to find a: browse until it does
					args = []string{"first"}
				}
				out, err := helper(ctx, t, l.Host(name).Namespace, "mdns-browse", args...).CombinedOutput()
				if err != nil {
					t.Errorf("browse in %s: %v\n%s", name, err, out)
				}
				mu.Lock()
				found[name] = string(out)
				mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("b found: %q; c found: %q", found["b"], found["c"])
		if !strings.Contains(found["b"], "found laptop-a ["+l.Host("a").Addr().String()+"]") {
			t.Errorf("b did not find a by mDNS: %q", found["b"])
		}
		if strings.Contains(found["c"], "laptop-a") {
			t.Errorf("c, behind another router, found a: %q", found["c"])
		}
	})
}
