// Package fsm is the Gaia coordinator's replicated state machine: directive
// versions, ITIL change records and their workflow, canary decisions, the
// fleet's acknowledgements and the audit log.
//
// It is pure, in the shape of etcd-io/raft (DESIGN.md principle 2): no I/O,
// no wall clock, no randomness. Everything it knows arrives in commands,
// including the time, so every replica that applies the same log reaches
// byte-for-byte the same state, and tests are plain scripts.
//
// The contract with the caller (internal/gaia):
//
//  1. Build a Command: the operation, its payload, who asks and with which
//     roles, and At, the proposer's clock. Encode it with Encode and propose
//     it to Raft; never apply a command that was not committed.
//  2. On every replica, apply committed commands in log order with
//     Machine.Apply(index, cmd). Apply never panics on bad input: a refused
//     command returns a Result with Err set and changes nothing but the
//     machine's clock.
//  3. The machine's clock is the largest At seen, so a leader whose clock is
//     behind its predecessor's cannot move time backwards, and it moves at
//     most Policy.MaxClockStep per entry, so one whose clock is far ahead
//     cannot end windows and deadlines at once.
//  4. Entries written by a coordinator with a cluster key are sealed
//     (Seal); replicas apply raw log entries with ApplyEntry, which
//     verifies the seal. Once the cluster recorded its key ID, an entry
//     that is not validly sealed changes nothing: a peer that can write to
//     the Raft log without the key cannot claim a principal.
//  5. Time-driven work (scheduled changes, canary windows, rollout
//     deadlines, proxies going silent) happens only when a command arrives.
//     The leader proposes OpTick when the wall clock passes NextDeadline.
//  6. Snapshots are the machine's JSON encoding (Marshal); Unmarshal
//     restores it. Encoding is deterministic (sorted map keys).
//  7. Read the machine (Target, Status, changes) under the caller's lock;
//     values returned are copies or never mutated afterwards.
//
// The workflow (ITIL): new → assess → authorize → scheduled → implement →
// review → closed, or canceled before implement. Standard changes are
// authorized by policy when inside it (weight moves bounded, model
// blessed); normal changes need an approval by a holder of the approver
// role (not the requester unless the policy allows self-approval);
// emergency changes are authorized by their requester (who must hold the
// approver role), implemented at once, skipping the canary and superseding
// a change in progress, and wait in review for a post-implementation
// review. A rollback is a change that restores an earlier version's
// content under a new version number: versions only grow.
package fsm
