package netlab

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDo: sockets made in Do belong to the namespace and keep working from
// other goroutines; the machine's own loopback is another world.
func TestDo(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home"}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "server"}},
	})
	laptop, server := l.Host("laptop"), l.Host("server")

	// Inside, the host sees its own interfaces only.
	var names []string
	inside(t, laptop.Namespace, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	})
	if strings.Join(names, ",") != "lo,"+hostIf {
		t.Errorf("interfaces inside the laptop: %v, want lo and %s", names, hostIf)
	}

	// A listener made inside, served by a goroutine outside.
	var ln net.Listener
	inside(t, server.Namespace, func() error {
		var err error
		ln, err = net.Listen("tcp4", ":7000")
		return err
	})
	defer ln.Close()
	done := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err.Error()
			return
		}
		defer c.Close()
		done <- c.RemoteAddr().String()
	}()
	var conn net.Conn
	inside(t, laptop.Namespace, func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(server.Addr(), 7000).String(), 2*time.Second)
		return err
	})
	conn.Close()
	if got := <-done; !strings.HasPrefix(got, l.Router("home").PublicAddr().String()+":") {
		t.Errorf("server saw %s, want the home router's public address", got)
	}

	// A loopback listener inside is not the machine's loopback.
	var lo net.Listener
	inside(t, server.Namespace, func() error {
		var err error
		lo, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	defer lo.Close()
	if c, err := net.DialTimeout("tcp4", lo.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("dialled a lab host's loopback listener %v from the machine's own namespace", lo.Addr())
	}
}

// TestCommand: a program started through Command runs inside the host,
// however it is started; Start's processes die with the lab.
func TestCommand(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home"}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "super"}},
	})
	ctx := context.Background()
	for _, name := range []string{"laptop", "super"} {
		h := l.Host(name)
		out, err := helper(ctx, t, h.Namespace, "addrs").Output() // plain exec.Cmd.Output
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := strings.Fields(string(out))
		if strings.Join(got, " ") != "127.0.0.1 "+h.Addr().String() {
			t.Errorf("%s: a process inside sees %v, want 127.0.0.1 and %v", name, got, h.Addr())
		}
	}

	// Start works for any command, not only one made by Command.
	cmd := exec.Command("/bin/cat", "/proc/self/net/dev")
	var sb strings.Builder
	cmd.Stdout = &sb
	if err := l.Host("laptop").Run(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	var ifs []string
	for _, line := range strings.Split(sb.String(), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok {
			ifs = append(ifs, strings.TrimSpace(name))
		}
	}
	if strings.Join(ifs, ",") != "lo,"+hostIf {
		t.Errorf("a process started inside sees interfaces %v, want lo and %s", ifs, hostIf)
	}

	// Close kills what is still running.
	sleeper := helper(ctx, t, l.Host("super").Namespace, "sleep")
	out, err := sleeper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Host("super").Start(ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q", line)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	err = sleeper.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("process after Close: %v, want killed", err)
	}
}
