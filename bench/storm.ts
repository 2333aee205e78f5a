import { LoadClient } from './client.js'
import type { Target } from './workloads.js'

/**
 * A connection storm (every client reconnecting after a deploy), one load-generator process's
 * share of it: `count` clients, all opened at `startAt` (an epoch time in ms shared by every
 * generator process, so that their shares start together), each doing what a stock y-websocket
 * client does on open: sync step 1 and its awareness state; done at its sync step 2 (the floor:
 * at the open). Clients stay open until `close`.
 */
export class Storm {
  private readonly clients: LoadClient[] = []

  constructor (private readonly target: Target, private readonly spec: StormSpec) {
    for (let i = 0; i < spec.count; i++) {
      const index = spec.offset + i
      // Yjs client ids only need be distinct within a document; index + 1 is
      this.clients.push(new LoadClient(index, index + 1, target.url, target.dialect, `${spec.prefix}-${Math.floor(index / spec.perDoc)}`, {
        open: client => client.send(client.codec.awareness(client.clientId, 1, {
          user: { name: `User ${client.index}`, color: `#${((client.index * 2_654_435_761) & 0xffffff).toString(16).padStart(6, '0')}` },
          cursor: null
        }))
      }))
    }
  }

  /** Opens every client at `startAt`; resolves once each is synced or failed. */
  async open (): Promise<StormShare> {
    const now = (): number => performance.timeOrigin + performance.now()
    const wait = this.spec.startAt - now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    const first = now()
    let last = first
    let synced = 0
    let failed = 0
    let timedOut = 0
    const errors = new Map<string, number>()
    await Promise.all(this.clients.map(async client => {
      try {
        await client.connect(this.spec.timeoutMs)
        synced++
        last = Math.max(last, now())
      } catch (err) {
        const message = (err as Error).message
        if (message.includes('no handshake within')) timedOut++
        else failed++
        const kind = message.replace(/^ws:\/\/\S+: /, '').slice(0, 60)
        errors.set(kind, (errors.get(kind) ?? 0) + 1)
      }
    }))
    return { first, last, synced, failed, timedOut, errors: Object.fromEntries(errors) }
  }

  async close (): Promise<void> {
    // in batches: 10,000 close handshakes at once would be a storm of their own
    for (let i = 0; i < this.clients.length; i += 500) {
      await Promise.all(this.clients.slice(i, i + 500).map(client => client.close()))
    }
  }
}

/** One generator's share of a storm. */
export interface StormSpec {
  /** Clients of this share. */
  count: number
  /** Index of its first client in the whole storm (documents and ids follow the index). */
  offset: number
  /** Clients per document. */
  perDoc: number
  /** Epoch ms at which every share opens its clients. */
  startAt: number
  /** A client not synced this long after its open counts as timed out. */
  timeoutMs: number
  prefix: string
}

/** What one share reports: epoch ms of its first open and its last sync, and the counts. */
export interface StormShare {
  first: number
  last: number
  synced: number
  failed: number
  timedOut: number
  /** Failures by message. */
  errors: Record<string, number>
}
