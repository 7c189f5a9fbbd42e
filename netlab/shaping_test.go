package netlab

import (
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestShaping measures what Link promises: delay by UDP round trips, loss by
// counting echoes, rate by a TCP transfer.
func TestShaping(t *testing.T) {
	const (
		delay = 25 * time.Millisecond
		loss  = 0.2
		rate  = 8_000_000
	)
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "slow", WAN: Link{Delay: delay}}},
		Hosts: []HostSpec{
			{Name: "laptop", Router: "slow"},
			{Name: "client"},
			{Name: "echo"},
			{Name: "lossy", Link: Link{Loss: loss}},
			{Name: "thin", Link: Link{Rate: rate}},
		},
	})
	echo := startEcho(t, l.Host("echo"), 3478)
	lossy := startEcho(t, l.Host("lossy"), 3478)

	t.Run("delay", func(t *testing.T) {
		rtt := func(h *Host) time.Duration {
			c := udpSocket(t, h)
			mapped(t, c, echo.addr) // warm up ARP and conntrack
			var rtts []time.Duration
			for range 20 {
				start := time.Now()
				mapped(t, c, echo.addr)
				rtts = append(rtts, time.Since(start))
			}
			slices.Sort(rtts)
			return rtts[len(rtts)/2]
		}
		base, got := rtt(l.Host("client")), rtt(l.Host("laptop"))
		t.Logf("median RTT: %v without delay, %v over a link with %v each way", base, got, delay)
		// The emulator adds its own scheduling latency, more on a busy
		// machine (two busy loops on two cores added 13 ms), which the
		// round trip without delay hints at.
		if hi := 2*delay + max(40*time.Millisecond, 3*base); got < 2*delay || got > hi {
			t.Errorf("RTT %v, want %v to %v", got, 2*delay, hi)
		}
	})

	t.Run("loss", func(t *testing.T) {
		c := udpSocket(t, l.Host("client"))
		// Resolve ARP first: the link drops ARP frames too, and three lost
		// requests in a row would stall the measurement for seconds. A try
		// is lost 36% of the time (20% each way), and ARP's own probes with
		// it, so five tries were not always enough: thirty are.
		mappedTries(t, c, lossy.addr, 30)
		const n = 500
		got := make(chan int)
		go func() {
			buf := make([]byte, 256)
			count := 0
			for {
				// Until the echoes stop: an idle deadline, since sending
				// 500 queries takes much longer than 500 ms on a busy
				// machine.
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					got <- count
					return
				}
				count++
			}
		}()
		for range n {
			c.WriteToUDPAddrPort([]byte("query"), lossy.addr)
			time.Sleep(time.Millisecond)
		}
		// Each echo crosses the lossy link twice.
		want := (1 - loss) * (1 - loss)
		frac := float64(<-got) / n
		t.Logf("%.1f%% of %d echoes came back over a link losing %g%% each way; expected %.1f%%", frac*100, n, loss*100, want*100)
		if frac < want-0.1 || frac > want+0.1 {
			t.Errorf("delivered %.2f, want %.2f ± 0.10", frac, want)
		}
	})

	t.Run("rate", func(t *testing.T) {
		thin := l.Host("thin")
		var ln net.Listener
		inside(t, thin.Namespace, func() error {
			var err error
			ln, err = net.Listen("tcp4", ":5001")
			return err
		})
		defer ln.Close()
		type result struct {
			n       int64
			elapsed time.Duration
		}
		res := make(chan result, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				res <- result{}
				return
			}
			defer c.Close()
			// The clock starts after the first read, which takes whatever
			// arrived before this goroutine ran (a loaded machine may run
			// it late): what follows comes at the shaped rate.
			first := make([]byte, 1<<20)
			if _, err := c.Read(first); err != nil {
				res <- result{}
				return
			}
			start := time.Now()
			n, _ := io.Copy(io.Discard, c)
			res <- result{n, time.Since(start)}
		}()
		var conn net.Conn
		inside(t, l.Host("client").Namespace, func() error {
			var err error
			conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(thin.Addr(), 5001).String(), 2*time.Second)
			return err
		})
		buf := make([]byte, 32<<10)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := conn.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
		r := <-res
		bps := float64(r.n*8) / r.elapsed.Seconds()
		t.Logf("%d bytes in %v: %.2f Mbit/s through a %g Mbit/s cap", r.n, r.elapsed.Round(time.Millisecond), bps/1e6, float64(rate)/1e6)
		if bps < 0.7*rate || bps > 1.1*rate {
			t.Errorf("throughput %.2f Mbit/s, want %g ± 30%%", bps/1e6, float64(rate)/1e6)
		}
	})
}
