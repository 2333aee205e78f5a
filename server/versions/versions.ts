import * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Store, VersionInfo } from '../store/store.js'
import type { DocumentRegistry } from '../document/registry.js'
import type { Document, DocumentMember } from '../document/document.js'
import { revertUpdate } from './revert.js'
import { randomId } from '../session/ids.js'

/** Options of {@link Versions}. */
export interface VersionsOptions {
  /** A changed document gets an automatic version when its last one is older than this; 0: never. */
  versionIntervalMs: number
  /** Automatic versions kept per document. */
  versionRetention: number
}

/** What versions report (webhooks); must not throw. */
export interface VersionsHooks {
  created? (name: string, version: VersionInfo): void
}

/** Documents given an automatic version per check, at most. */
const DUE_PER_CHECK = 50

/**
 * The member a restore's update comes from: no socket, no acknowledgement, no author. The update
 * is computed from the document's own state in the same turn, so it never depends on content the
 * document lacks: it is never held, and so never settled or failed later.
 */
const RESTORER: DocumentMember = {
  send () {},
  relay () {},
  acknowledge () {},
  hold: () => ({ done: false }),
  settle () {},
  fail () {},
  // the update is written by a fresh Y.Doc (a new random client id) and claims nothing durably
  clientOwner: 'tandem:restore',
  durableOwner: false
}

/**
 * Versions of documents: taken on request or every `versionIntervalMs` for changed documents,
 * listed, read and restored. A version is the whole state of the document, saved apart from its
 * update log (so compaction never touches it) with the authors of the updates stored since the
 * previous one. Restoring writes a new update that turns the document into the version's content
 * (see revert.ts), relayed and stored like a client's, after saving the state before as a version.
 */
export class Versions {
  private timer: NodeJS.Timeout | undefined
  private checking = false
  private closed = false

  constructor (
    private readonly store: Store,
    private readonly documents: () => DocumentRegistry,
    private readonly options: VersionsOptions,
    private readonly logger: Logger,
    private readonly hooks: VersionsHooks = {}
  ) {}

  /** Starts taking automatic versions (if configured). */
  start (): void {
    const { versionIntervalMs } = this.options
    if (versionIntervalMs === 0 || this.closed) return
    // a version is at most a tenth of the interval late
    const tickMs = Math.min(60_000, Math.max(20, Math.floor(versionIntervalMs / 10)))
    this.timer = setInterval(() => { void this.checkDue() }, tickMs)
    this.timer.unref()
  }

  /** Stops the automatic versions; safe to call twice. */
  close (): void {
    this.closed = true
    clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * Saves a version of the document as it is now, once what was applied to it here is stored (so
   * its authors are in). Null when the document has no stored data and is not loaded.
   */
  async create (name: string, label: string | null): Promise<VersionInfo | null> {
    const state = await this.stateOf(name, true)
    if (state === null) return null
    return await this.save(name, state, label, false)
  }

  /** The versions of a document, newest first. */
  list (name: string): Promise<VersionInfo[]> {
    return this.store.versions(name)
  }

  /** A version's state (Yjs update v1), or null. */
  content (name: string, id: string): Promise<Uint8Array | null> {
    return this.store.versionState(name, id)
  }

  /**
   * Makes the document the version's content for everyone connected, on every instance: the state
   * before is saved as a version, then one update that turns it into the version's content is
   * applied, relayed and stored. Resolves with the version saved before, or null when there is no
   * such version.
   */
  async restore (name: string, id: string): Promise<VersionInfo | null> {
    const target = await this.store.versionState(name, id)
    if (target === null) return null
    const registry = this.documents()
    const { doc, loaded } = registry.open(name)
    try {
      await loaded
      await doc.whenStored()
      const before = await this.save(name, Y.encodeStateAsUpdate(doc.ydoc), `before restoring ${id}`, false)
      // computed and applied in one turn: nothing lands between the state read and the update
      const update = revertUpdate(Y.encodeStateAsUpdate(doc.ydoc), target)
      if (update !== null) doc.applyUpdate(update, RESTORER)
      await doc.whenStored()
      doc.logger.info({ version: id, before: before.id }, 'version restored')
      return before
    } finally {
      registry.release(doc)
    }
  }

  private async save (name: string, state: Uint8Array, label: string | null, automatic: boolean): Promise<VersionInfo> {
    const saved = await this.store.saveVersion(name, { id: randomId(), label, createdAt: Date.now(), automatic, state }, {
      ifOlderThanMs: 0, retention: this.options.versionRetention
    })
    // unconditional saves always save
    const version = saved as VersionInfo
    this.hooks.created?.(name, version)
    return version
  }

  /** The state of a document: from memory when loaded here, else from the store; null if it has none. */
  private async stateOf (name: string, settled: boolean): Promise<Uint8Array | null> {
    const loaded = this.documents().get(name)
    if (loaded !== undefined && loaded.status === 'ready') return await this.memoryState(loaded, settled)
    const updates = await this.store.load(name)
    if (updates.length === 0) return null
    const ydoc = new Y.Doc()
    try {
      Y.transact(ydoc, () => { for (const update of updates) Y.applyUpdate(ydoc, update) })
      return Y.encodeStateAsUpdate(ydoc)
    } finally {
      ydoc.destroy()
    }
  }

  private async memoryState (doc: Document, settled: boolean): Promise<Uint8Array> {
    if (settled) await doc.whenStored()
    return Y.encodeStateAsUpdate(doc.ydoc)
  }

  /** Takes the automatic versions due; one check at a time. */
  private async checkDue (): Promise<void> {
    if (this.checking || this.closed) return
    this.checking = true
    const { versionIntervalMs, versionRetention } = this.options
    try {
      const due = await this.store.dueForVersion(versionIntervalMs, DUE_PER_CHECK)
      for (const name of due) {
        if (this.closed) break
        const state = await this.stateOf(name, false)
        if (state === null) continue
        // conditional: another instance may have taken it meanwhile
        const version = await this.store.saveVersion(name, { id: randomId(), label: null, createdAt: Date.now(), automatic: true, state }, {
          ifOlderThanMs: versionIntervalMs, retention: versionRetention
        })
        if (version !== null) this.hooks.created?.(name, version)
      }
    } catch (err) {
      this.logger.error({ err }, 'automatic versions failed; tried again at the next check')
    } finally {
      this.checking = false
    }
  }
}
