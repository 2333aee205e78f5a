import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import { BEAT } from '../locks/redis-scripts.js'

/**
 * The instances alive now, and the locks each holds, as kept in Redis: a sorted set of instance
 * ids scored by Redis's own clock at their last beat (so skewed clocks do not matter), and one
 * set per instance of the `[doc, resource]` pairs it holds. The lock index is kept outside the
 * lock scripts (it lives on another shard); a stale member is harmless, since releasing an
 * instance's locks checks the holder.
 */
export class LiveInstances {
  constructor (
    private readonly client: () => Redis | Cluster,
    private readonly prefix: string,
    private readonly nodeId: string,
    /** A score older than this means the instance is dead. */
    private readonly deadAfterMs: number,
    private readonly logger: Logger
  ) {}

  /** Defines the beat script on a (new) connection. */
  define (client: Redis | Cluster): void {
    client.defineCommand('tandemNodeBeat', { numberOfKeys: 1, lua: BEAT })
  }

  private get key (): string {
    return `${this.prefix}nodes`
  }

  private locksKey (nodeId: string): string {
    return `${this.prefix}{node:${nodeId}}:locks`
  }

  /** Refreshes this instance's score; resolves with the instances whose score is too old. */
  beat (): Promise<string[]> {
    const client = this.client() as unknown as { tandemNodeBeat: (...args: Array<string | number>) => Promise<string[]> }
    return client.tandemNodeBeat(this.key, this.nodeId, this.deadAfterMs)
  }

  /** True while `nodeId` is in the set (this instance always is). */
  async alive (nodeId: string): Promise<boolean> {
    return nodeId === this.nodeId || await this.client().zscore(this.key, nodeId) !== null
  }

  /** Takes a dead instance out of the set; true for the one caller that did (it cleans up). */
  async claim (nodeId: string): Promise<boolean> {
    return nodeId !== this.nodeId && await this.client().zrem(this.key, nodeId) === 1
  }

  /** This instance leaves the set (graceful shutdown). */
  async leave (): Promise<void> {
    await this.client().zrem(this.key, this.nodeId)
  }

  /** Records that `nodeId` holds (or no longer holds) a lock. Failures only leave a stale member. */
  async index (nodeId: string, doc: string, resource: string, holds: boolean): Promise<void> {
    const member = JSON.stringify([doc, resource])
    try {
      if (holds) await this.client().sadd(this.locksKey(nodeId), member)
      else await this.client().srem(this.locksKey(nodeId), member)
    } catch (err) {
      this.logger.debug({ err }, 'cannot update the lock index of an instance')
    }
  }

  /** The locks an instance was recorded holding. */
  async locks (nodeId: string): Promise<Array<[string, string]>> {
    return (await this.client().smembers(this.locksKey(nodeId))).map(member => JSON.parse(member) as [string, string])
  }

  /** Forgets an instance's lock index (after its locks were released). */
  async forget (nodeId: string): Promise<void> {
    await this.client().del(this.locksKey(nodeId))
  }
}
