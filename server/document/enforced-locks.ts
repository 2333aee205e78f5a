import * as Y from 'yjs'
import type { LockInfo } from '../../shared/tandem.js'
import type { SharedType } from '../../shared/type-resource.js'
import { mergeUpdates } from './merge.js'
import type { TypeGuards } from './type-guards.js'

// Enforced locks, part two: applying an update and undoing what the `y:` locks forbid, and the
// budget of reverts per session. Which types are guarded is kept in type-guards.ts.

type Decoded = ReturnType<typeof Y.decodeUpdate>
type DeleteSet = ReturnType<typeof Y.createDeleteSet>
type Type = SharedType

/** What an update is checked against: the locks held (and who sent it), or nothing at all (a read-only session). */
export type Rule =
  | { kind: 'locks', guards: TypeGuards, sessionId: string | null }
  | { kind: 'read-only' }

/** What an enforced application did. */
export interface Enforced {
  /** What to relay and store: the update as integrated, merged with its revert if there was one. */
  changes: Uint8Array | null
  /** True when part of the update was undone: relay `changes` to its author too. */
  reverted: boolean
  /** The lock (held by another session) that refused part of the update, or null. */
  refusedBy: LockInfo | null
  /** Size of the revert: what undoing cost (copies of deleted content, mostly). */
  revertBytes: number
}

/**
 * Applies an update (through `apply`, which must run its transaction with `origin`) and undoes,
 * in a second transaction of the server's own client before the first one's deleted content is
 * garbage-collected, every change it made that `rule` forbids:
 *
 * - items it inserted inside a guarded type (at any depth: text, map entries, array elements,
 *   XML children and attributes, formatting marks) are deleted;
 * - items it deleted inside a guarded type, and a guarded nested type it deleted itself, are
 *   inserted again as copies at the same place (Yjs cannot undelete; the copies are new items
 *   of the server's client, and a re-created guarded type stays guarded under its old name);
 * - formatting comes back as both: the new marks deleted, the marks they replaced copied back.
 *
 * This is Y.UndoManager's own undo (redoItem and delete, in popStackItem), fed with a stack item
 * built here holding exactly the forbidden changes, so the revert is what Yjs itself would do to
 * undo them. The caller relays the update and the revert merged as one update to every member,
 * its author too, and stores that merged update: the stored state never shows the change.
 *
 * The holder's own changes pass; anything else its transaction integrates (content some other
 * sender left pending, waiting for the holder's items) is checked like any other sender's.
 * Costs O(changes) when the update touches a guarded type, and one look at the transaction's
 * changed types when it does not.
 */
export function applyEnforced (doc: Y.Doc, rule: Rule, decoded: Decoded, origin: unknown, apply: () => Uint8Array | null): Enforced {
  let undo: Y.UndoManager | null = null
  let revert: Uint8Array | null = null
  let refusedBy: LockInfo | null = null
  const onUpdate = (update: Uint8Array, updateOrigin: unknown): void => {
    if (updateOrigin === undo) revert = revert === null ? update : mergeUpdates([revert, update])
  }
  const onCleanup = (transaction: Y.Transaction): void => {
    if (transaction.origin !== undo) return
    doc.off('afterTransactionCleanup', onCleanup)
    doc.on('update', onUpdate)
  }
  const afterTransaction = (transaction: Y.Transaction): void => {
    if (transaction.origin !== origin || undo !== null) return
    const plan = rule.kind === 'read-only' ? everything(transaction) : forbidden(doc, transaction, rule.guards, rule.sessionId, decoded)
    if (plan === null) return
    refusedBy = plan.refusedBy
    undo = undoManager(doc)
    // an `update` listener makes Yjs encode every transaction: listen for the revert's only, from
    // the moment its cleanup starts (this transaction's own update is emitted before that)
    doc.on('afterTransactionCleanup', onCleanup)
    undo.undoStack.push({ insertions: plan.insertions, deletions: plan.deletions, meta: new Map() } as unknown as Y.UndoManager['undoStack'][number])
    undo.undo()
  }
  doc.on('afterTransaction', afterTransaction)
  let changes: Uint8Array | null
  try {
    changes = apply()
  } finally {
    doc.off('afterTransaction', afterTransaction)
    if (undo !== null) {
      doc.off('afterTransactionCleanup', onCleanup)
      doc.off('update', onUpdate)
    }
  }
  if (revert === null) return { changes, reverted: false, refusedBy: null, revertBytes: 0 }
  const revertBytes = (revert as Uint8Array).byteLength
  return { changes: changes === null ? revert : mergeUpdates([changes, revert]), reverted: true, refusedBy, revertBytes }
}

/** One UndoManager per document, made on its first revert, gone with the document. */
const managers = new WeakMap<Y.Doc, Y.UndoManager>()

/**
 * The document's UndoManager for reverts: it captures nothing (its scope is the whole document,
 * but captureTransaction refuses every transaction) and only undoes the stack items it is handed.
 */
function undoManager (doc: Y.Doc): Y.UndoManager {
  let manager = managers.get(doc)
  if (manager === undefined) {
    manager = new Y.UndoManager(doc, { captureTransaction: () => false, trackedOrigins: new Set() })
    managers.set(doc, manager)
  }
  return manager
}

/** The changes to undo: insertions to delete and deletions to copy back. */
interface Plan {
  insertions: DeleteSet
  deletions: DeleteSet
  refusedBy: LockInfo | null
}

/** Every change of the transaction (a read-only session's update). */
function everything (transaction: Y.Transaction): Plan | null {
  const plan = emptyPlan()
  const { store } = transaction.doc
  let any = false
  for (const [client, after] of transaction.afterState) {
    const before = transaction.beforeState.get(client) ?? 0
    if (after <= before) continue
    add(plan.insertions, client, before, after - before)
    any = true
  }
  for (const [client, ranges] of transaction.deleteSet.clients) {
    const before = transaction.beforeState.get(client) ?? 0
    for (const { clock, len } of ranges) {
      // what it inserted and deleted at once is gone either way
      const end = Math.min(clock + len, before)
      if (end > clock && store.clients.has(client)) {
        add(plan.deletions, client, clock, end - clock)
        any = true
      }
    }
  }
  if (!any) return null
  sortPlan(plan)
  return plan
}

/** The changes of the transaction inside types guarded by locks that do not allow them. */
function forbidden (doc: Y.Doc, transaction: Y.Transaction, guards: TypeGuards, sessionId: string | null, decoded: Decoded): Plan | null {
  const guarded = guards.resolve(doc)
  if (guarded.size === 0 || !touches(transaction, guarded)) return null
  const { store } = doc
  const plan = emptyPlan()
  let any = false
  const refuse = (lock: LockInfo): void => {
    any = true
    if (plan.refusedBy === null && lock.sessionId !== sessionId) plan.refusedBy = lock
  }
  const own = ownRanges(decoded)
  /** The holder's own change passes; anything else under a guarded type is refused. */
  const allowed = (lock: LockInfo, owned: boolean): boolean => lock.sessionId === sessionId && sessionId !== null && owned

  for (const [client, after] of transaction.afterState) {
    const before = transaction.beforeState.get(client) ?? 0
    if (after <= before) continue
    const structs = store.clients.get(client) ?? []
    const range = own.get(client)
    for (let i = Y.findIndexSS(structs, before); i < structs.length; i++) {
      const struct = structs[i] as Y.Item | Y.GC
      if (!(struct instanceof Y.Item) || struct.deleted) continue
      const lock = guardOf(struct, guarded)
      if (lock === null) continue
      const owned = range !== undefined && struct.id.clock >= range.from && struct.id.clock + struct.length <= range.to
      if (allowed(lock, owned)) continue
      add(plan.insertions, client, struct.id.clock, struct.length)
      refuse(lock)
    }
  }

  for (const [client, ranges] of transaction.deleteSet.clients) {
    const structs = store.clients.get(client)
    if (structs === undefined) continue
    const before = transaction.beforeState.get(client) ?? 0
    for (const { clock, len } of ranges) {
      const end = Math.min(clock + len, before)
      if (end <= clock) continue
      for (let i = Y.findIndexSS(structs, clock); i < structs.length; i++) {
        const struct = structs[i] as Y.Item | Y.GC
        if (struct.id.clock >= end) break
        if (!(struct instanceof Y.Item)) continue
        const itself = struct.content instanceof Y.ContentType ? guarded.get(struct.content.type) ?? null : null
        const lock = guardOf(struct, guarded) ?? itself
        if (lock === null) continue
        if (allowed(lock, Y.isDeleted(decoded.ds, struct.id))) continue
        const from = Math.max(clock, struct.id.clock)
        add(plan.deletions, client, from, Math.min(end, struct.id.clock + struct.length) - from)
        refuse(lock)
        if (itself !== null) {
          // its item must keep `redone` (the way to its copy): never garbage-collected, nor
          // replaced as the child of a collected container
          struct.keep = true
          // a guarded type deleted with its container: the containers come back with it
          addDeletedAncestors(struct, plan.deletions, transaction)
        }
      }
    }
  }
  if (!any) return null
  sortPlan(plan)
  return plan
}

/**
 * True when the transaction changed something inside a guarded type, or deleted one. Reads
 * `transaction.changed`, not `changedParentTypes`: the server's top-level types are untyped
 * (nobody called getText on them), and untyped types do not fill changedParentTypes.
 */
function touches (transaction: Y.Transaction, guarded: Map<Type, LockInfo>): boolean {
  for (const changed of transaction.changed.keys()) {
    for (let type: Type | null = changed; type !== null; type = (type._item?.parent ?? null) as Type | null) {
      if (guarded.has(type)) return true
    }
  }
  for (const type of guarded.keys()) {
    const item = type._item
    if (item !== null && item.deleted && Y.isDeleted(transaction.deleteSet, item.id)) return true
  }
  return false
}

/** The lock guarding the type an item lives in, at any depth, or null. */
function guardOf (item: Y.Item, guarded: Map<Type, LockInfo>): LockInfo | null {
  let parent = item.parent as Type | null
  while (parent !== null && typeof parent === 'object') {
    const lock = guarded.get(parent)
    if (lock !== undefined) return lock
    parent = (parent._item?.parent ?? null) as Type | null
  }
  return null
}

/** Adds the containers of `item` that the transaction deleted, up to the first one alive. */
function addDeletedAncestors (item: Y.Item, deletions: DeleteSet, transaction: Y.Transaction): void {
  let parent = (item.parent as Type)._item
  while (parent !== null && parent.deleted && Y.isDeleted(transaction.deleteSet, parent.id)) {
    add(deletions, parent.id.client, parent.id.clock, 1)
    parent.keep = true
    parent = (parent.parent as Type)._item
  }
}

/** The clock range each author's structs take in the update (its own content). */
function ownRanges (decoded: Decoded): Map<number, { from: number, to: number }> {
  const ranges = new Map<number, { from: number, to: number }>()
  for (const struct of decoded.structs) {
    if (struct instanceof Y.Skip) continue
    const { client, clock } = struct.id
    const range = ranges.get(client)
    if (range === undefined) ranges.set(client, { from: clock, to: clock + struct.length })
    else {
      range.from = Math.min(range.from, clock)
      range.to = Math.max(range.to, clock + struct.length)
    }
  }
  return ranges
}

function emptyPlan (): Plan {
  return { insertions: Y.createDeleteSet(), deletions: Y.createDeleteSet(), refusedBy: null }
}

/** Adds a range to a delete set (Yjs's own addToDeleteSet is not exported). */
function add (ds: DeleteSet, client: number, clock: number, len: number): void {
  let ranges = ds.clients.get(client)
  if (ranges === undefined) ds.clients.set(client, ranges = [])
  ranges.push({ clock, len } as (typeof ranges)[number])
}

/** Yjs looks ranges up by binary search: each author's must be sorted. */
function sortPlan (plan: Plan): void {
  for (const ds of [plan.insertions, plan.deletions]) {
    for (const ranges of ds.clients.values()) ranges.sort((a, b) => a.clock - b.clock)
  }
}

/**
 * Bytes of reverts one session may cause: a tiny update can delete a large guarded type, and its
 * revert copies all of it back (relayed to everyone and stored), so a session that keeps doing
 * that is stopped. Holds `capacity` bytes and regains `bytesPerSecond`.
 */
export class RevertBudget {
  private left: number
  private updatedAt: number

  constructor (readonly capacity: number, readonly bytesPerSecond: number, now = Date.now()) {
    this.left = capacity
    this.updatedAt = now
  }

  /** Spends `bytes`; false once the budget is overdrawn. */
  spend (bytes: number, now = Date.now()): boolean {
    this.left = Math.min(this.capacity, this.left + Math.max(0, now - this.updatedAt) * this.bytesPerSecond / 1000) - bytes
    this.updatedAt = now
    return this.left >= 0
  }
}
