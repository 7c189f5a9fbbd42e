package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// labChangeUsage documents `juxta lab run -change`.
const labChangeUsage = `changes (-change AT:ACTION:NODE[:ARG], repeatable; AT counts from the
start of COMMAND; NODE is a host (a, b, sp1, sp2) or a router (ra, rb); a
host stands for the router it sits behind where a router is wanted):
  AT:renumber:NODE          the router gets a new WAN address; its mappings go
  AT:reboot:NODE:FOR        the router's WAN link is down FOR, mappings forgotten
  AT:down:NODE, AT:up:NODE  pull and replug the node's cable (mappings kept)
  AT:move:HOST:NODE         the host roams to the LAN of NODE's router
  AT:udp-timeout:NODE:D     the router keeps idle UDP mappings D (whole seconds)
`

// labChange is one scheduled change of `juxta lab run`.
type labChange struct {
	at     time.Duration
	action string
	node   string
	arg    string        // move: the target node
	d      time.Duration // reboot: the outage; udp-timeout: the timeout
	raw    string
}

// parseLabChange reads AT:ACTION:NODE[:ARG].
func parseLabChange(s string) (labChange, error) {
	parts := strings.Split(s, ":")
	bad := func(format string, a ...any) (labChange, error) {
		return labChange{}, fmt.Errorf("lab run: -change %q: "+format, append([]any{s}, a...)...)
	}
	if len(parts) < 3 {
		return bad("want AT:ACTION:NODE[:ARG]")
	}
	at, err := time.ParseDuration(parts[0])
	if err != nil || at < 0 {
		return bad("AT must be a duration from 0, like 10s")
	}
	c := labChange{at: at, action: parts[1], node: parts[2], raw: s}
	if c.node == "" {
		return bad("no node")
	}
	wantArgs := map[string]int{"renumber": 3, "down": 3, "up": 3, "reboot": 4, "move": 4, "udp-timeout": 4}
	n, ok := wantArgs[c.action]
	if !ok {
		return bad("unknown action %q (renumber, reboot, down, up, move, udp-timeout)", c.action)
	}
	if len(parts) != n {
		return bad("%s takes %d fields", c.action, n)
	}
	switch c.action {
	case "reboot", "udp-timeout":
		if c.d, err = time.ParseDuration(parts[3]); err != nil || c.d <= 0 {
			return bad("%q is not a positive duration", parts[3])
		}
	case "move":
		c.arg = parts[3]
	}
	return c, nil
}

// router resolves a node to a router: a router by name, or the router a
// host sits behind.
func labRouter(lab *netlab.Lab, node string) (*netlab.Router, error) {
	if r := lab.Router(node); r != nil {
		return r, nil
	}
	if h := lab.Host(node); h != nil {
		if r := h.Router(); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("host %s is on the internet, behind no router", node)
	}
	return nil, fmt.Errorf("no node %q", node)
}

// apply makes the change and says what it did.
func (c labChange) apply(ctx context.Context, lab *netlab.Lab) (string, error) {
	switch c.action {
	case "down", "up":
		var ns *netlab.Namespace
		if r := lab.Router(c.node); r != nil {
			ns = r.Namespace
		} else if h := lab.Host(c.node); h != nil {
			ns = h.Namespace
		} else {
			return "", fmt.Errorf("no node %q", c.node)
		}
		if c.action == "down" {
			return "cable of " + c.node + " pulled", ns.LinkDown()
		}
		return "cable of " + c.node + " back", ns.LinkUp(ctx)
	case "move":
		h := lab.Host(c.node)
		if h == nil {
			return "", fmt.Errorf("no host %q", c.node)
		}
		r, err := labRouter(lab, c.arg)
		if err != nil {
			return "", err
		}
		from := h.Addr()
		if err := h.MoveTo(ctx, r); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s moved from %v to %v behind %s (public %v)", c.node, from, h.Addr(), r.Name(), r.PublicAddr()), nil
	}
	r, err := labRouter(lab, c.node)
	if err != nil {
		return "", err
	}
	switch c.action {
	case "renumber":
		old := r.WANAddr()
		fresh, err := r.Renumber(ctx)
		return fmt.Sprintf("%s renumbered: WAN %v → %v", r.Name(), old, fresh), err
	case "reboot":
		return fmt.Sprintf("%s rebooted: WAN down %v, mappings forgotten", r.Name(), c.d), r.Reboot(ctx, c.d)
	default: // udp-timeout
		return fmt.Sprintf("%s keeps idle UDP mappings %v", r.Name(), c.d), r.SetUDPTimeout(c.d)
	}
}

// runLabChanges makes the changes at their times, counted from start, and
// logs each to log; it returns when all are made, one fails, or ctx ends.
// A reboot runs through its outage before the next change starts.
func runLabChanges(ctx context.Context, lab *netlab.Lab, changes []labChange, start time.Time, log io.Writer) error {
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].at < changes[j].at })
	for _, c := range changes {
		t := time.NewTimer(time.Until(start.Add(c.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		what, err := c.apply(ctx, lab)
		if err != nil {
			return fmt.Errorf("lab: change %s: %w", c.raw, err)
		}
		fmt.Fprintf(log, "lab: %6.1fs %s\n", time.Since(start).Seconds(), what)
	}
	return nil
}
