// Package event is juxta's one delivery contract for typed event streams: a
// peer's connection events (peer.Peer.Subscribe), watched advertisements
// (discovery.Service.Watch) and a group's member events
// (groups.Group.SubscribeMembers) all arrive on a *Subscription[T].
//
// The contract:
//
//   - Each subscriber has its own buffered channel, Subscription.C, and drains
//     it. Publishing never blocks: when a subscriber's buffer is full, the
//     event is dropped for that subscriber only and counted by
//     Subscription.Dropped. A lagging consumer resynchronises from the state
//     accessor of the publishing object (for example peer.Peer.Status).
//   - Events reach one subscriber in the order they were published.
//   - C is closed when the subscription's ctx is done, when Cancel is called,
//     or when the publisher closes. After that no more events arrive.
//
// JXTA delivered events through listener interfaces called on its own threads;
// go-libp2p's event bus hands out untyped channels whose undrained buffers
// block publishers. Here a slow consumer loses events, never the publisher
// its progress, and the type is checked by the compiler.
package event
