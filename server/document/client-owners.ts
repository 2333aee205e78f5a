/** One client id and the user who owns it in a document: what stores persist and peers exchange. */
export interface ClientOwner {
  client: number
  user: string
}

/**
 * Client ids one user may own in a document. A stock client picks a new id at each page load,
 * so a user's ids accumulate; past this many, the user's oldest claim is released (only its
 * own: no one else can free it). 256 page loads of one user in one document.
 */
export const MAX_CLIENT_IDS_PER_USER = 256

/**
 * Client ids a document remembers owners for. Past it, the oldest claim of the document is
 * released: freeing a given user's id this way takes this many newer claims, that is at least
 * MAX_CLIENT_OWNERS / MAX_CLIENT_IDS_PER_USER (391) distinct users writing to the document.
 */
export const MAX_CLIENT_OWNERS = 100_000

/**
 * Who owns which client id in one document: the user that first used it, for Yjs structs or
 * awareness states. Yjs trusts whoever sends an id; a writer that sends structs at another
 * client's next clocks makes that client's next edit a no-op everywhere (its ids are taken), and
 * one that sends an awareness state under another's id after that user dropped shows its cursor
 * under their name. The table answers, in one map look-up per id, whether a user may use an id.
 *
 * Claims are kept in claim order (a Map iterates in insertion order), so the bounds release the
 * oldest first; a store keeps the same order, so a document reloaded releases the same ones.
 */
export class ClientOwners {
  /** Each claimed id's user. */
  private readonly claims = new Map<number, string>()
  /**
   * The claims stored (or stored by the instance that made them): never handed to the store
   * again. A set of ids rather than a flag in an object per claim: an idle connection's claim
   * (its awareness id, in memory only) is then one map entry, where the object cost 40 bytes.
   * Made on first use, as is `byUser` (an empty set or map is about 150 bytes: a document of
   * anonymous connections needs neither).
   */
  private durable: Set<number> | undefined
  /**
   * Each user's ids, oldest first: a lone id as it is, a Set from the second on (most users of a
   * document hold one id: a Set each would be most of an idle connection's claim).
   */
  private byUser: Map<string, number | Set<number>> | undefined

  constructor (
    private readonly perUser = MAX_CLIENT_IDS_PER_USER,
    private readonly total = MAX_CLIENT_OWNERS
  ) {}

  /** The user owning `client`, or undefined when nobody does. */
  owner (client: number): string | undefined {
    return this.claims.get(client)
  }

  /** Client ids with an owner. */
  get size (): number {
    return this.claims.size
  }

  /**
   * Gives `client` to `user` when nobody owns it. Returns false when another user owns it (then
   * nothing changes). With `durable`, a claim not yet stored is marked stored and returned in
   * `stored`, for the caller to store with the update that used it.
   */
  claim (client: number, user: string, durable: boolean, stored?: ClientOwner[]): boolean {
    const owner = this.claims.get(client)
    if (owner !== undefined) {
      if (owner !== user) return false
      if (durable && this.durable?.has(client) !== true) {
        (this.durable ??= new Set()).add(client)
        stored?.push({ client, user })
      }
      return true
    }
    this.add(client, user, durable)
    if (durable) stored?.push({ client, user })
    return true
  }

  /**
   * Gives `client` to `key`, a connection's own key (an anonymous connection's), when nobody owns
   * it; false when another does. Kept in memory only, and not listed per user: such a connection
   * claims only its awareness ids, which the awareness registry caps (MAX_CLIENT_IDS_PER_OWNER),
   * and releases them by id when it ends (`releaseClaims`). A list per connection cost an idle
   * one a map entry (about 37 bytes).
   */
  claimOwn (client: number, key: string): boolean {
    const owner = this.claims.get(client)
    if (owner !== undefined) return owner === key
    this.claims.set(client, key)
    if (this.claims.size > this.total) this.release(this.claims.keys().next().value as number)
    return true
  }

  /**
   * Takes claims that are stored already (a document's at load, or a peer instance's): each is
   * taken unless the id has another owner here (two instances claimed it at once; the first
   * claim each heard of stands).
   */
  adopt (records: Iterable<ClientOwner>): void {
    for (const { client, user } of records) {
      const owner = this.claims.get(client)
      if (owner === undefined) this.add(client, user, true)
      else if (owner === user) (this.durable ??= new Set()).add(client)
    }
  }

  /** The stored claims of `clients` (ids without a stored owner are left out). */
  storedOwners (clients: Iterable<number>): ClientOwner[] {
    const records: ClientOwner[] = []
    for (const client of clients) {
      const user = this.claims.get(client)
      if (user !== undefined && this.durable?.has(client) === true) records.push({ client, user })
    }
    return records
  }

  /** Releases those of `clients` that `user` owns (an anonymous connection that ended: its `claimOwn` ids). */
  releaseClaims (user: string, clients: Iterable<number>): void {
    for (const client of clients) if (this.claims.get(client) === user) this.release(client)
  }

  private add (client: number, user: string, durable: boolean): void {
    this.claims.set(client, user)
    if (durable) (this.durable ??= new Set()).add(client)
    const byUser = this.byUser ??= new Map()
    let ids = byUser.get(user)
    if (ids === undefined) {
      byUser.set(user, client)
      if (this.perUser < 1) this.release(client)
    } else {
      if (typeof ids === 'number') byUser.set(user, ids = new Set([ids]))
      ids.add(client)
      if (ids.size > this.perUser) this.release(ids.values().next().value as number)
    }
    if (this.claims.size > this.total) this.release(this.claims.keys().next().value as number)
  }

  private release (client: number): void {
    const user = this.claims.get(client)
    if (user === undefined) return
    this.claims.delete(client)
    this.durable?.delete(client)
    // none for a connection's own key (claimOwn)
    const ids = this.byUser?.get(user)
    if (ids === client) {
      this.byUser?.delete(user)
    } else if (typeof ids === 'object') {
      ids.delete(client)
      // one id left: kept as it is again
      if (ids.size === 1) this.byUser?.set(user, ids.values().next().value as number)
    }
  }

}
