import * as Y from 'yjs'
import type { Document, DocumentMember } from './document.js'
import type { SharedFrame } from '../transport/socket.js'
import type { LockInfo } from '../../shared/tandem.js'
import { readFrame } from '../../shared/messages.js'
import { TandemError } from '../../shared/errors.js'
import { LockedError } from '../../shared/locked-error.js'
import type { AckTicket } from '../session/ack-order.js'

/** Numbers the anonymous server members: each owns its client ids alone, as a connection does. */
let anonymousMembers = 0

/**
 * A member of a document that is not a connection: a request of the document API, or an
 * in-process handle (`tandem.openDocument`). Its updates take the path a session's take
 * (Document.applyUpdate: validation, client id owners, the enforced `y:` locks, relay, storage,
 * replication to other instances) and are attributed to `identity.userId`, as a session's are to
 * its identity. `submit` resolves once the update is stored, as a Tandem client's acknowledgement
 * arrives.
 *
 * Client ids: on a server with authentication (`durable`) the member owns its ids as the user
 * `userId`, like a session of that user, so an API write under an id another user owns is refused
 * (TANDEM_ERR_CLIENT_ID_TAKEN) and the ids it writes under are that user's from then on. On an
 * anonymous server it is an anonymous owner of its own, like a connection: it claims nothing, and
 * an id a live connection holds is refused (TANDEM_ERR_CLIENT_ID_IN_USE). It holds no lock: a change
 * inside a type guarded by a `y:` lock is undone (TANDEM_ERR_LOCKED).
 */
export class ServerMember implements DocumentMember {
  readonly identity: { readonly userId: string }
  readonly clientOwner: string
  readonly durableOwner: boolean
  /** Updates submitted and not yet stored, oldest first: acknowledgements come in order. */
  private readonly waiting: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  private goneWith: Error | null = null

  /**
   * @param durable - the server authenticates its users: the member owns client ids as `userId`
   * @param onUpdate - hears every update the document relays to its members
   */
  constructor (userId: string, durable: boolean, private readonly onUpdate: ((update: Uint8Array) => void) | null = null) {
    this.identity = { userId }
    this.durableOwner = durable
    this.clientOwner = durable ? userId : `server:${++anonymousMembers}`
  }

  /**
   * Applies `update` to `doc` as this member. Throws at once what Document.applyUpdate throws
   * (TANDEM_ERR_INVALID_UPDATE, TANDEM_ERR_DOCUMENT_DELETED, TANDEM_ERR_CLIENT_ID_TAKEN or _IN_USE,
   * and TANDEM_ERR_UPDATE_INCOMPLETE for an update that would be held, see hold), the document
   * untouched; else resolves once it is stored. When part of it touched a type another session
   * locked (`y:`), that part is undone for everyone and the rest applied: the promise rejects with
   * LockedError (TANDEM_ERR_LOCKED, with the holder) once the update and its revert are stored.
   */
  submit (doc: Document, update: Uint8Array): Promise<void> {
    if (this.goneWith !== null) return Promise.reject(this.goneWith)
    const stored = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }))
    let holder: LockInfo | null
    try {
      holder = doc.applyUpdate(update, this)
    } catch (err) {
      this.waiting.pop()
      throw err
    }
    if (holder === null) return stored
    const refusal = new LockedError(holder)
    return stored.then(() => { throw refusal })
  }

  /** The document went away (deleted): every submit waiting fails with `err`, and later ones too. */
  gone (err: Error): void {
    this.goneWith ??= err
    for (const waiter of this.waiting.splice(0)) waiter.reject(err)
  }

  send (): void {
    // only sync replies and awareness are sent to one member: nothing this member needs
  }

  relay (frame: SharedFrame): void {
    if (this.onUpdate === null) return
    const decoded = readFrame(frame.data)
    if (decoded.type === 'sync-update' || decoded.type === 'sync-step2') this.onUpdate(decoded.update)
  }

  acknowledge (count: number): void {
    for (const waiter of this.waiting.splice(0, count)) waiter.resolve()
  }

  /**
   * The document would hold the update (it depends on content the document lacks, update-deps.ts):
   * refused instead with TANDEM_ERR_UPDATE_INCOMPLETE (400), the document untouched, since a
   * server-side writer has nothing more to send and "stored" would be untrue. Thrown before the
   * document keeps anything (see Document.hold).
   */
  hold (): never {
    throw new TandemError('TANDEM_ERR_UPDATE_INCOMPLETE', 'it depends on content the document does not have')
  }

  /** Never held (see hold), so never settled but in order: counts as one acknowledgement. */
  settle (_ticket: AckTicket): void {
    this.acknowledge(1)
  }

  /** A held frame turned out invalid: this member ends, as a session would be closed. */
  fail (error: TandemError): void {
    this.gone(error)
  }
}

/** Marks updates that come from the server's document, so they are not sent back to it. */
const FROM_SERVER = Symbol('from server')

/**
 * A document opened in the server's own process (`tandem.openDocument`): a Y.Doc kept in step
 * with the loaded document, whose local changes are applied like a client's and resolve once
 * stored. Keeps the document loaded until `close()`.
 */
export class DocumentHandle {
  /** The document's content; change it inside `transact`. Other members' changes arrive here. */
  readonly doc = new Y.Doc()
  private readonly member: ServerMember
  private last: Promise<void> = Promise.resolve()
  private closing: Promise<void> | undefined

  /**
   * @param durable - the server authenticates its users: the handle owns client ids as `userId` (see ServerMember)
   * @param release - called once closed: the document may unload
   */
  constructor (private readonly document: Document, userId: string, durable: boolean, private readonly release: (doc: Document) => void) {
    this.member = new ServerMember(userId, durable, update => Y.applyUpdate(this.doc, update, FROM_SERVER))
    Y.applyUpdate(this.doc, Y.encodeStateAsUpdate(document.ydoc), FROM_SERVER)
    this.doc.on('update', this.submitLocal)
    document.addMember(this.member)
  }

  /** The user id its changes are attributed to. */
  get userId (): string {
    return this.member.identity.userId
  }

  /**
   * Runs `fn` in one Yjs transaction on `doc`; resolves once its changes are stored (and relayed
   * to every client on every instance), at once when it changed nothing. Rejects when they are
   * refused (TANDEM_ERR_INVALID_UPDATE, TANDEM_ERR_DOCUMENT_DELETED, TANDEM_ERR_CLIENT_ID_TAKEN),
   * or when the handle is closed. A change inside a type another session locked (`y:`) is undone
   * (here too) and rejects with LockedError (TANDEM_ERR_LOCKED, `holder`), once stored; the rest
   * of the transaction takes effect.
   */
  transact (fn: (doc: Y.Doc) => void): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new TandemError('TANDEM_ERR_DESTROYED', 'the document handle is closed'))
    const before = this.last
    this.doc.transact(() => fn(this.doc))
    return this.last === before ? Promise.resolve() : this.last
  }

  /** The document was deleted: further changes are refused. */
  gone (err: Error): void {
    this.member.gone(err)
  }

  /** Waits for changes made so far to be stored, then leaves the document. Safe to call twice. */
  close (): Promise<void> {
    this.closing ??= this.last.catch(() => {}).then(() => {
      this.doc.off('update', this.submitLocal)
      this.document.removeMember(this.member)
      this.release(this.document)
    })
    return this.closing
  }

  private readonly submitLocal = (update: Uint8Array, origin: unknown): void => {
    if (origin === FROM_SERVER) return
    let stored: Promise<void>
    try {
      stored = this.member.submit(this.document, update)
    } catch (err) {
      stored = Promise.reject(err)
    }
    // a caller that never awaits its transact must not crash the process
    stored.catch(() => {})
    this.last = stored
  }
}

/** True when `member` is a ServerMember (an API request or an in-process handle). */
export function isServerMember (member: DocumentMember): member is ServerMember {
  return member instanceof ServerMember
}
