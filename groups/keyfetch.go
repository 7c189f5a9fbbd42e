package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/juxta-p2p/juxta/peer"
)

// Fetching the group key of an invite group from a member that holds it
// (keyProtocol, see auth.go): ask, then check what was answered.

// fetchKey asks holders, in turn, for the group key of epoch at least want,
// presenting this peer's credential. The answer in pre, to a request made
// already, stands for its holder's.
func (g *Group) fetchKey(ctx context.Context, holders []peer.ID, want uint64, pre *keyAnswer) error {
	var errs []error
	tried := map[peer.ID]bool{g.s.p.ID(): true}
	for _, h := range holders {
		if tried[h] {
			continue
		}
		tried[h] = true
		var err error
		if resp, ok, perr := pre.answerFor(h, g.info.ID, g.cred); ok {
			if err = perr; err == nil {
				err = g.acceptKey(resp, want)
			}
		} else {
			err = g.fetchKeyFrom(ctx, h, want)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRevoked) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", h.ShortString(), err))
	}
	if len(errs) == 0 {
		// Only this peer holds the key (a creator restarting): nobody to ask.
		return fmt.Errorf("%w: no other member holds it; restore the group from its saved State", ErrNoKey)
	}
	return fmt.Errorf("%w: %w", ErrNoKey, errors.Join(errs...))
}

func (g *Group) fetchKeyFrom(ctx context.Context, holder peer.ID, want uint64) error {
	g.mu.Lock()
	group, cred := g.info.ID, g.cred
	g.mu.Unlock()
	resp, err := g.s.askKey(ctx, holder, group, cred)
	if err != nil {
		return err
	}
	return g.acceptKey(resp, want)
}

// askKey asks holder for the key of group, presenting cred. It checks nothing
// of the answer: acceptKey does.
func (s *Service) askKey(ctx context.Context, holder peer.ID, group string, cred []byte) (keyMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, protoTimeout)
	defer cancel()
	str, err := s.openStream(ctx, holder, keyProtocol)
	if err != nil {
		return keyMsg{}, err
	}
	defer str.Close()
	stop := context.AfterFunc(ctx, func() { str.Reset() })
	defer stop()
	if err := send(str, keyMsg{Op: keyFetch, Group: group, Cred: cred}); err != nil {
		str.Reset()
		return keyMsg{}, err
	}
	var resp keyMsg
	if err := recv(str, &resp); err != nil {
		str.Reset()
		if ctx.Err() != nil {
			return keyMsg{}, ctx.Err()
		}
		return keyMsg{}, err
	}
	return resp, nil
}

// acceptKey installs the key a holder answered, with its signed revocation
// list, if it is of epoch want or later.
func (g *Group) acceptKey(resp keyMsg, want uint64) error {
	if resp.Err != "" {
		if resp.Err == ErrRevoked.Error() {
			return ErrRevoked
		}
		return fmt.Errorf("%w: %s", ErrNotMember, resp.Err)
	}
	if resp.Epoch < want {
		return fmt.Errorf("%w: holder has epoch %d, want %d", ErrNoKey, resp.Epoch, want)
	}
	if err := g.installKey(resp.Epoch, resp.Key, resp.Rev); err != nil {
		return err
	}
	g.mu.Lock()
	if g.scopeKey == nil && len(resp.Scope) == 32 {
		g.scopeKey = slices.Clone(resp.Scope)
	}
	g.mu.Unlock()
	return nil
}
