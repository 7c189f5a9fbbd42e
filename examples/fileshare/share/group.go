package share

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
)

// CreateGroup creates a password group for private shares and joins it.
func (n *Node) CreateGroup(ctx context.Context, name, password string) error {
	if err := n.edge(); err != nil {
		return err
	}
	if _, ok := n.group(name); ok {
		return nil
	}
	g, err := n.gs.Create(ctx, groups.Spec{Name: name, Policy: groups.PolicyPassword, Password: password})
	if err != nil {
		return err
	}
	return n.joined(name, password, g)
}

// JoinGroup finds a password group by name and joins it.
func (n *Node) JoinGroup(ctx context.Context, name, password string) error {
	if err := n.edge(); err != nil {
		return err
	}
	if _, ok := n.group(name); ok {
		return nil
	}
	infos, err := n.gs.Find(ctx, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, info := range infos {
		if info.Name != name {
			continue
		}
		g, err := n.gs.Join(ctx, groups.Password(info, password))
		if err == nil {
			return n.joined(name, password, g)
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("share: no group named %q was found", name)
}

// JoinOrCreate joins the group, or creates it if nobody has.
func (n *Node) JoinOrCreate(ctx context.Context, name, password string) error {
	err := n.JoinGroup(ctx, name, password)
	if err == nil || errors.Is(err, groups.ErrWrongPassword) {
		return err
	}
	return n.CreateGroup(ctx, name, password)
}

// joined is a group this node is a member of, with the keys of its private
// advertisements.
type joined struct {
	g    *groups.Group
	keys *groupKeys
}

func (n *Node) joined(name, password string, g *groups.Group) error {
	keys, err := deriveGroupKeys(password, g.ID())
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.groups[name] = &joined{g: g, keys: keys}
	n.mu.Unlock()
	if !n.cfg.NoShareDownloads {
		// The group's downloads are shared onward in the group only.
		dir := filepath.Join(n.cfg.Downloads, SafeName(name))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("share: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, GroupMarker), []byte(name+"\n"), 0o600); err != nil {
			return fmt.Errorf("share: %w", err)
		}
		if err := n.Share(context.Background(), dir, name); err != nil {
			return err
		}
	}
	n.pins.watchGroup()
	ctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
	n.pins.rejoined(ctx, name)
	cancel()
	n.resumeDownloads(name)
	return nil
}

// Groups are the names of the groups joined.
func (n *Node) Groups() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.groups {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func (n *Node) group(name string) (*joined, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g, ok := n.groups[name]
	return g, ok
}

// disc is the discovery service of a group by name ("" for the net group).
func (n *Node) disc(group string) (*discovery.Service, error) {
	if group == "" {
		return n.d, nil
	}
	g, ok := n.group(group)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoGroup, group)
	}
	return g.g.Discovery(), nil
}
