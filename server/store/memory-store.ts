import type { NewVersion, OutboxEntry, OutboxEvent, Revocation, Store, StoreEntry, Tombstone, VersionInfo, VersionPolicy } from './store.js'
import { mergeUpdates } from '../document/merge.js'
import type { ClientOwner } from '../document/client-owners.js'

interface SavedVersion extends VersionInfo {
  state: Uint8Array
}

interface QueuedEvent extends OutboxEvent {
  retryAt: number
  leaseOwner: string | null
  leaseUntil: number
}

/** A Store that keeps everything in memory: for tests and throw-away demos. */
export class MemoryStore implements Store {
  private readonly docs = new Map<string, Uint8Array[]>()
  private readonly tokens = new Map<string, number>()
  private readonly tombstones = new Map<string, Tombstone>()
  /** Per document: client id to user, in claim order. */
  private readonly owners = new Map<string, Map<number, string>>()
  private readonly revoked = new Map<string, Revocation>()
  /** Per document, its versions oldest first. */
  private readonly saved = new Map<string, SavedVersion[]>()
  /** Per document, the authors since its last version, with when each was first recorded. */
  private readonly authors = new Map<string, Map<string, number>>()
  private readonly outbox: QueuedEvent[] = []
  private nextSeq = 1

  async load (name: string): Promise<Uint8Array[]> {
    return (this.docs.get(name) ?? []).slice()
  }

  async loadOwners (name: string): Promise<ClientOwner[]> {
    return [...this.owners.get(name) ?? []].map(([client, user]) => ({ client, user }))
  }

  async append (entries: readonly StoreEntry[]): Promise<void> {
    const now = Date.now()
    for (const { name, update, author, owners } of entries) {
      let log = this.docs.get(name)
      if (log === undefined) this.docs.set(name, log = [])
      log.push(update)
      let since = this.authors.get(name)
      if (since === undefined) this.authors.set(name, since = new Map())
      if (!since.has(author ?? '')) since.set(author ?? '', now)
      if (owners === undefined || owners.length === 0) continue
      let table = this.owners.get(name)
      if (table === undefined) this.owners.set(name, table = new Map())
      for (const { client, user } of owners) {
        // a claim made again is the newest
        table.delete(client)
        table.set(client, user)
      }
    }
  }

  async compact (name: string, snapshot?: () => Uint8Array): Promise<void> {
    const log = this.docs.get(name)
    if (log === undefined || log.length < 2) return
    this.docs.set(name, [snapshot?.() ?? mergeUpdates(log)])
  }

  async tombstone (name: string): Promise<Tombstone | null> {
    const found = this.tombstones.get(name)
    return found === undefined ? null : { ...found }
  }

  async markDeleted (name: string, at: number): Promise<boolean> {
    const found = this.tombstones.get(name)
    if (found?.deletedAt != null) return false
    this.tombstones.set(name, { deletedAt: at, retired: found?.retired ?? new Uint8Array(0) })
    return true
  }

  async restore (name: string): Promise<boolean> {
    const found = this.tombstones.get(name)
    if (found?.deletedAt == null) return false
    found.deletedAt = null
    return true
  }

  async deletedBefore (before: number, limit: number): Promise<Array<{ name: string, deletedAt: number }>> {
    const rows: Array<{ name: string, deletedAt: number }> = []
    for (const [name, { deletedAt }] of this.tombstones) if (deletedAt !== null && deletedAt < before) rows.push({ name, deletedAt })
    return rows.sort((a, b) => a.deletedAt - b.deletedAt).slice(0, limit)
  }

  async purge (name: string, deletedAt: number, retired: Uint8Array): Promise<boolean> {
    const found = this.tombstones.get(name)
    if (found === undefined || found.deletedAt !== deletedAt) return false
    this.tombstones.set(name, { deletedAt: null, retired })
    this.docs.delete(name)
    this.owners.delete(name)
    return true
  }

  async nextFencingToken (name: string, resource: string): Promise<number> {
    const key = JSON.stringify([name, resource])
    const token = (this.tokens.get(key) ?? 0) + 1
    this.tokens.set(key, token)
    return token
  }

  async saveVersion (name: string, version: NewVersion, policy: VersionPolicy): Promise<VersionInfo | null> {
    const list = this.saved.get(name) ?? []
    const since = this.authors.get(name)
    if (policy.ifOlderThanMs > 0 && !this.due(name, version.createdAt - policy.ifOlderThanMs)) return null
    const info: VersionInfo = {
      id: version.id,
      label: version.label,
      createdAt: version.createdAt,
      authors: [...since?.keys() ?? []].filter(author => author !== '').sort(),
      automatic: version.automatic
    }
    list.push({ ...info, state: version.state })
    this.authors.delete(name)
    let automatic = list.filter(v => v.automatic).length
    const kept = list.filter(v => !v.automatic || automatic-- <= policy.retention)
    this.saved.set(name, kept)
    return info
  }

  async versions (name: string): Promise<VersionInfo[]> {
    return (this.saved.get(name) ?? []).map(({ state: _state, ...info }) => ({ ...info, authors: info.authors.slice() })).reverse()
  }

  async versionState (name: string, id: string): Promise<Uint8Array | null> {
    return this.saved.get(name)?.find(v => v.id === id)?.state ?? null
  }

  async dueForVersion (olderThanMs: number, limit: number): Promise<string[]> {
    const before = Date.now() - olderThanMs
    return [...this.authors.keys()].filter(name => this.due(name, before)).slice(0, limit)
  }

  /** Changed since the last version, which (or the first change since) is older than `before`. */
  private due (name: string, before: number): boolean {
    const since = this.authors.get(name)
    if (since === undefined || since.size === 0) return false
    const last = this.saved.get(name)?.at(-1)?.createdAt ?? Math.min(...since.values())
    return last <= before
  }

  async enqueueEvents (entries: readonly OutboxEntry[]): Promise<void> {
    for (const entry of entries) {
      this.outbox.push({ ...entry, seq: this.nextSeq++, attempts: 0, retryAt: 0, leaseOwner: null, leaseUntil: 0 })
    }
  }

  async claimEvents (owner: string, leaseMs: number, limit: number): Promise<OutboxEvent[]> {
    const now = Date.now()
    const heads = new Set<string>()
    const claimed: OutboxEvent[] = []
    for (const event of this.outbox) {
      if (claimed.length >= limit) break
      const key = JSON.stringify([event.target, event.document])
      if (heads.has(key)) continue
      heads.add(key)
      if (event.retryAt > now || (event.leaseOwner !== null && event.leaseUntil > now)) continue
      event.leaseOwner = owner
      event.leaseUntil = now + leaseMs
      const { retryAt: _r, leaseOwner: _o, leaseUntil: _u, ...claim } = event
      claimed.push(claim)
    }
    return claimed
  }

  async settleEvent (seq: number, retryAt: number | null): Promise<void> {
    const index = this.outbox.findIndex(event => event.seq === seq)
    if (index < 0) return
    if (retryAt === null) {
      this.outbox.splice(index, 1)
      return
    }
    const event = this.outbox[index] as QueuedEvent
    event.attempts++
    event.retryAt = retryAt
    event.leaseOwner = null
    event.leaseUntil = 0
  }

  async pendingEvents (): Promise<number> {
    return this.outbox.length
  }

  async addRevocation (revocation: Revocation): Promise<void> {
    const key = JSON.stringify([revocation.kind, revocation.value])
    const known = this.revoked.get(key)
    this.revoked.set(key, {
      ...revocation,
      revokedAt: Math.max(revocation.revokedAt, known?.revokedAt ?? 0),
      expiresAt: Math.max(revocation.expiresAt, known?.expiresAt ?? 0)
    })
  }

  async revocations (now: number): Promise<Revocation[]> {
    for (const [key, revocation] of this.revoked) if (revocation.expiresAt <= now) this.revoked.delete(key)
    return [...this.revoked.values()].map(revocation => ({ ...revocation }))
  }

  async close (): Promise<void> {}
}
