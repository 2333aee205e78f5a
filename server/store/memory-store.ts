import type { Revocation, Store, StoreEntry, Tombstone } from './store.js'
import { mergeUpdates } from '../document/merge.js'
import type { ClientOwner } from '../document/client-owners.js'

/** A Store that keeps everything in memory: for tests and throw-away demos. */
export class MemoryStore implements Store {
  private readonly docs = new Map<string, Uint8Array[]>()
  private readonly tokens = new Map<string, number>()
  private readonly tombstones = new Map<string, Tombstone>()
  /** Per document: client id to user, in claim order. */
  private readonly owners = new Map<string, Map<number, string>>()
  private readonly revoked = new Map<string, Revocation>()

  async load (name: string): Promise<Uint8Array[]> {
    return (this.docs.get(name) ?? []).slice()
  }

  async loadOwners (name: string): Promise<ClientOwner[]> {
    return [...this.owners.get(name) ?? []].map(([client, user]) => ({ client, user }))
  }

  async append (entries: readonly StoreEntry[]): Promise<void> {
    for (const { name, update, owners } of entries) {
      let log = this.docs.get(name)
      if (log === undefined) this.docs.set(name, log = [])
      log.push(update)
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
