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

interface Claim {
  user: string
  /** Stored (or stored by the instance that made it): never handed to the store again. */
  durable: boolean
}

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
  private readonly claims = new Map<number, Claim>()
  /**
   * Each user's ids, oldest first: a lone id as it is, a Set from the second on (most users of a
   * document hold one id: a Set each would be most of an idle connection's claim).
   */
  private readonly byUser = new Map<string, number | Set<number>>()

  constructor (
    private readonly perUser = MAX_CLIENT_IDS_PER_USER,
    private readonly total = MAX_CLIENT_OWNERS
  ) {}

  /** The user owning `client`, or undefined when nobody does. */
  owner (client: number): string | undefined {
    return this.claims.get(client)?.user
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
    const known = this.claims.get(client)
    if (known !== undefined) {
      if (known.user !== user) return false
      if (durable && !known.durable) {
        known.durable = true
        stored?.push({ client, user })
      }
      return true
    }
    this.add(client, user, durable)
    if (durable) stored?.push({ client, user })
    return true
  }

  /**
   * Takes claims that are stored already (a document's at load, or a peer instance's): each is
   * taken unless the id has another owner here (two instances claimed it at once; the first
   * claim each heard of stands).
   */
  adopt (records: Iterable<ClientOwner>): void {
    for (const { client, user } of records) {
      const known = this.claims.get(client)
      if (known === undefined) this.add(client, user, true)
      else if (known.user === user) known.durable = true
    }
  }

  /** The stored claims of `clients` (ids without a stored owner are left out). */
  storedOwners (clients: Iterable<number>): ClientOwner[] {
    const records: ClientOwner[] = []
    for (const client of clients) {
      const known = this.claims.get(client)
      if (known?.durable === true) records.push({ client, user: known.user })
    }
    return records
  }

  /** Releases every id `user` owns (an anonymous connection that ended). */
  releaseUser (user: string): void {
    const ids = this.byUser.get(user)
    if (ids === undefined) return
    if (typeof ids === 'number') this.claims.delete(ids)
    else for (const client of ids) this.claims.delete(client)
    this.byUser.delete(user)
  }

  private add (client: number, user: string, durable: boolean): void {
    this.claims.set(client, { user, durable })
    let ids = this.byUser.get(user)
    if (ids === undefined) {
      this.byUser.set(user, client)
      if (this.perUser < 1) this.release(client)
    } else {
      if (typeof ids === 'number') this.byUser.set(user, ids = new Set([ids]))
      ids.add(client)
      if (ids.size > this.perUser) this.release(ids.values().next().value as number)
    }
    if (this.claims.size > this.total) this.release(this.claims.keys().next().value as number)
  }

  private release (client: number): void {
    const known = this.claims.get(client)
    if (known === undefined) return
    this.claims.delete(client)
    const ids = this.byUser.get(known.user)
    if (ids === client) {
      this.byUser.delete(known.user)
    } else if (typeof ids === 'object') {
      ids.delete(client)
      // one id left: kept as it is again
      if (ids.size === 1) this.byUser.set(known.user, ids.values().next().value as number)
    }
  }
}
