import type { ClientOwner } from './client-owners.js'

/** An update another instance relayed before its store commit. */
export interface UnconfirmedUpdate {
  /** The instance that applied it first, and will store it. */
  readonly node: string
  /** Its number in that instance's relays (grows across all its documents). */
  readonly seq: number
  readonly update: Uint8Array
  readonly owners: readonly ClientOwner[]
  /** Stored: by its instance (confirmed), or here (taken, then stored). */
  confirmed: boolean
  /** Handed to this instance's writer (its instance is gone, or the bus missed messages). */
  taken: boolean
}

/**
 * The updates other instances relayed to a document before storing them, in the order they were
 * applied here, until each is known stored. Positions count every update ever added: the
 * position of "now" is a barrier that whatever this instance acknowledges after it must wait
 * for (an acknowledged update may build on, or repeat, one of them), and `confirmedThrough` is
 * the position before which everything is stored.
 */
export class UnconfirmedUpdates {
  private entries: UnconfirmedUpdate[] = []
  /** Position of entries[0]: every update before it is stored. */
  private base = 0

  /** The position after the last update added. */
  get position (): number {
    return this.base + this.entries.length
  }

  /** Every update before this position is stored. */
  get confirmedThrough (): number {
    return this.base
  }

  get size (): number {
    return this.entries.length
  }

  add (node: string, seq: number, update: Uint8Array, owners: readonly ClientOwner[]): void {
    this.entries.push({ node, seq, update, owners, confirmed: false, taken: false })
  }

  /** `node` stored every update of its up to `seq`. True when `confirmedThrough` moved. */
  confirm (node: string, seq: number): boolean {
    for (const entry of this.entries) if (entry.node === node && entry.seq <= seq) entry.confirmed = true
    return this.trim()
  }

  /** The updates of `node` (of every node when null) not confirmed nor taken yet, marked taken. */
  take (node: string | null): UnconfirmedUpdate[] {
    const taken: UnconfirmedUpdate[] = []
    for (const entry of this.entries) {
      if (entry.confirmed || entry.taken || (node !== null && entry.node !== node)) continue
      entry.taken = true
      taken.push(entry)
    }
    return taken
  }

  /** Taken updates are stored here: confirmed. True when `confirmedThrough` moved. */
  storedHere (entries: readonly UnconfirmedUpdate[]): boolean {
    for (const entry of entries) entry.confirmed = true
    return this.trim()
  }

  private trim (): boolean {
    let k = 0
    while (k < this.entries.length && (this.entries[k] as UnconfirmedUpdate).confirmed) k++
    if (k === 0) return false
    this.entries = this.entries.slice(k)
    this.base += k
    return true
  }

  clear (): void {
    this.base += this.entries.length
    this.entries = []
  }
}
