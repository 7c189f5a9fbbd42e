package pipes

import (
	"context"

	"github.com/juxta-p2p/juxta/discovery"
)

// ListenOption varies one Listen or ListenMessages.
type ListenOption func(*listenOpts)

type listenOpts struct {
	public      bool // the binding says any peer may dial it by name
	unpublished bool // no binding at all
}

// Public marks the listener's binding as public: a dialer that names the pipe
// alone, without ToPeer, may pick it. Use it for a service meant for
// strangers; without it, only dialers that name this peer reach the listener
// by the net group's pipes (see the package documentation, "Trust").
func Public() ListenOption { return func(o *listenOpts) { o.public = true } }

// Unpublished binds the pipe on this peer without publishing a binding:
// nobody finds the listener through discovery, and only a dialer that names
// this peer (ToPeer, or juxta.Node.Dial with an invite) reaches it.
func Unpublished() ListenOption { return func(o *listenOpts) { o.unpublished = true } }

func listenOptions(opts []ListenOption) listenOpts {
	var o listenOpts
	for _, f := range opts {
		f(&o)
	}
	return o
}

// attrPublic marks a public binding.
const attrPublic = "public"

// publish publishes this peer's binding for a listener, unless o says not to.
func (s *Service) publish(ctx context.Context, kind Kind, id string, o listenOpts) error {
	if o.unpublished {
		return nil
	}
	attrs := map[string]string{"id": id, "kind": string(kind), "name": ""}
	if o.public {
		attrs[attrPublic] = "1"
	}
	_, err := s.disc.Scoped(s.discoveryScope()).Publish(ctx, discovery.Advertisement{Type: discovery.TypePipe, ID: id, Attrs: attrs})
	return err
}

// trusts tells whether a dial by name alone may follow a binding: in a scope
// with an Authorize hook (a group) every binding, since the hook checks the
// listener's membership before anything is sent; elsewhere only public
// bindings and this peer's own. A binding names its publisher, who signed it,
// so a stranger cannot pass for another peer, but anyone can bind any name:
// without this rule a stranger's listener of the same name, found through a
// shared super-peer, would capture the dial.
func (s *Service) trusts(r discovery.Result) bool {
	return s.hooks.Authorize != nil || r.Attrs[attrPublic] == "1" || r.Publisher == s.p.ID()
}
