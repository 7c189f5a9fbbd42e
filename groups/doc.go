// Package groups scopes peers into groups with membership enforced by
// cryptography, and tracks who is online: JXTA's peer groups and membership
// service, with ICQ's presence.
//
// Every peer starts in the net group (Service.Net): discovery and pipes used
// without a group act in it. A group is created with Service.Create, found by
// name with Service.Find (its advertisement, type juxta.group, is signed by its
// creator and published in the net group) and joined according to its policy;
// a peer may be in several at once. Group.Discovery and Group.Pipes are the same
// services as the net group's, scoped to the group: an advertisement published
// in a group is returned only to queries in that group, and a group's pipes are
// distinct from every other scope's. A private group's discovery scope derives
// from a secret only members hold (the password's keys, or an invite group's
// scope secret handed out with the group key), so a non-member who knows the
// group's ID cannot read its advertisements or pipe bindings; and a group's
// pipes check membership at both ends, the dialer challenging the listener
// as the listener challenges the dialer. SECURITY.md lists the bounds.
//
// # Membership policies
//
//   - Open: anyone joins (Service.Join with Open).
//   - Password (Service.Join with Password): argon2id (OWASP minimum: 19 MiB, 2 passes;
//     parameters travel in the advertisement) turns the password, a random salt
//     and the group ID into three keys: a verifier published in the
//     advertisement, an authentication key and a message key. A joiner checks
//     its password against the verifier locally, so a wrong password fails at
//     once with ErrWrongPassword. Members prove membership by challenge and
//     response: the verifier sends a fresh nonce; the prover answers
//     HMAC(auth key, nonce, group, both peer IDs). The password itself is never
//     sent, and a proof cannot be replayed to another peer. The verifier allows
//     an offline guessing attack by whoever holds the advertisement; argon2id
//     makes each guess cost 19 MiB and two passes, so choose a strong password.
//     Group.Rotate moves the group to a new password: the creator publishes
//     the advertisement of the next epoch (Info.Epoch), and each member told
//     the new password follows with Rotate; after Config.RotateGrace (30 s)
//     the old password's key opens nothing and proves nothing. A member left
//     behind learns it from Group.SubscribeRotations.
//   - Invite (Service.Join with Invited): the creator, and the admins it names, sign
//     credentials (libp2p signed envelopes) that bind a peer ID to the group
//     until an expiry. Group.Invite returns one as a string (prefix
//     "juxtagroup1") that carries the group advertisement too, for handing over
//     out of band. Expired, forged, tampered and revoked credentials are
//     refused. The joiner fetches the group key from a member by presenting its
//     credential. Group.Revoke adds a member to a signed revocation list and
//     rotates the group key; the new key goes to the members online (the others
//     fetch it from any member), never to the removed one.
//
// # Saved state
//
// Group.State is what a member of a private group keeps to take its place
// again after a restart, with nobody else online (Service.Restore): the
// group's advertisement and its keys. The kept advertisement is checked
// with discovery.VerifyKept, not against its lifetime (a day): it stays the
// creator's however long the user was away; a newer epoch, if the creator
// moved on meanwhile, is found over the network as after any absence. The
// creator keeps its group's advertisement renewed while it runs
// (discovery's PublishRenewed), and publishes it again when it restores the
// group, so that the group is found, and its epoch confirmed, beyond the
// advertisement's lifetime.
//
// # Enforcement
//
// A group pipe accepts a stream only after the opener proves membership (a
// password proof or a valid credential), when the stream opens and before the
// application sees it. In password and invite groups, propagated payloads are
// sealed with XChaCha20-Poly1305 under the group key, with the group, the key
// epoch, the sender's peer ID and the time as authenticated data; the GossipSub
// validator drops what does not open, and in invite groups what lacks a valid,
// unrevoked credential of its sender, so an outsider subscribed to the topic by
// name sees only ciphertext and cannot inject, nor replay a captured message
// under its own ID or later than MaxMessageAge.
//
// # Presence
//
// Members announce online, away, busy, do-not-disturb or offline, with a status
// text, on the group's presence pipe (encrypted like any other in private
// groups), at once on a change and as a heartbeat every Config.Heartbeat (5 s).
// A member silent for Config.OfflineAfter (15 s) is shown offline; Leave
// announces offline at once. Invisible shows a member offline to others while
// its pipes keep working. Group.Members lists members and Group.SubscribeMembers
// delivers changes under juxta's one event contract (package event).
package groups
