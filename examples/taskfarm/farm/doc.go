// Package farm is the task farm's engine: volunteer computing as seed 004
// describes it (its Table 1 gives the roles), hardened the way BOINC and
// HTCondor are. A Go program imports it; examples/taskfarm is a thin command
// over it.
//
// # Roles
//
//   - The scheduler (seed 004's Server) registers providers and schedules
//     work: Scheduler keeps jobs and units in bbolt and runs one state
//     machine per unit, queued → assigned → running → reported → validated or
//     failed, with deadlines and retries.
//   - Providers run on volunteers' machines: they register a host Profile
//     (CPU model and speed, cores, OS and architecture, memory, free disk,
//     network, and a short benchmark), take units, run them in the Executor's
//     sandbox and report results, which a Worker keeps until the scheduler
//     acknowledges them.
//   - Clients are the customers: they submit jobs of many units, serve the
//     modules and data, and receive the validated results as a stream.
//
// # Scheduling
//
// Units wait in one queue per requirement class, ordered by priority and
// then first come, first served. A provider takes only units whose
// Requirements it meets, never one it already ran, and never more than it
// can finish before the units' deadlines at its measured speed (its
// benchmark at first, then what it reports). Among providers waiting for
// work, the faster and more reliable are served first. An instance whose
// deadline passes, or whose provider goes offline (presence) or stays
// disconnected longer than Grace, is re-issued elsewhere; a unit that wastes
// MaxAttempts instances fails with the last error as its reason, and one
// that nobody can take stays queued with the reason (Scheduler.Unit).
//
// # Validation
//
// A unit with Quorum n is validated when n results agree bit for bit
// (WebAssembly is deterministic apart from NaN bits and threads, which Go's
// wasip1 port does not use). Providers whose results were outvoted are
// distrusted for good. In Adaptive jobs, a provider with a run of
// TrustAfter valid results runs most units alone, with random spot checks,
// so replication costs little once the farm is warm (BOINC's adaptive
// replication).
//
// # Durability
//
// Every transition is written to bbolt; writes made while a transaction
// syncs go into the next one (group commit), and nothing is acknowledged —
// a job accepted, a unit granted, a result taken — before its transaction is
// synced. A scheduler killed with kill -9 restarts where its last commit
// left it; providers reconnect, say what they hold, and report what they
// finished meanwhile.
//
// # JXTA and libp2p
//
// The farm is a juxta password group (JXTA's peer group with a membership
// service): only members submit or take work, since the group's pipes admit
// members only. Providers find the scheduler through the group's discovery
// (an advertisement of type "taskfarm.scheduler"), talk to it over a group
// message pipe (a libp2p stream), and the group's presence tells the
// scheduler when a provider goes offline. Modules and large data move by
// reference (BLAKE3) through the content package, served to members only.
package farm
