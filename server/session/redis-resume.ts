import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import { isClusterNode, redisClient } from '../cluster/redis-client.js'
import { hashSecret } from '../auth/secret.js'

/** What a resume needs to know of a session, kept with its secret's hash. */
export interface ResumeRecord {
  sessionId: string
  doc: string
  userId: string
  /** The session's credentials, for revocations of a token (`jti`) or of older ones (`issuedAt`). */
  issuedAt?: number
  jti?: string
  /** When the user joined the document (presence `joinedAt`): kept by a resume elsewhere. */
  joinedAt?: number
}

/** A record taken over by a claim: `from` is the instance that had it. */
export interface ClaimedRecord extends ResumeRecord {
  from: string
}

/** What a grace that ran out found: still this instance's, gone (expired, voided), or moved on. */
export type GraceEnd = 'mine' | 'gone' | 'moved'

/** Options of {@link RedisResumeRecords}. */
export interface RedisResumeOptions {
  /** `redis://` or `rediss://` URL (any node of a Redis Cluster will do). */
  url: string
  /** Prepended to every key. @default 'tandem:' */
  prefix?: string
  /** This instance's id on the bus: a record names the instance the session is on. */
  nodeId: string
  logger: Logger
}

/** The longest session id and secret looked up: anything longer is no session of ours. */
export const MAX_RESUME_PARAM = 64
/**
 * A live session's record lives this long and is refreshed every quarter of it: a record whose
 * instance died without ending it (SIGKILL) goes by itself.
 */
export const LIVE_RECORD_MS = 24 * 60 * 60_000

/**
 * KEYS 1 the record. ARGV 1 the hash of the presented secret, 2 document, 3 user id, 4 the
 * claiming instance, 5 time to live (ms). The hashes are compared in constant time (every byte,
 * whatever differs); a match of the same document and user moves the record to the claimer and
 * empties its hash, so the secret cannot be used twice (the claimer issues a new one). Returns
 * the record as it was (JSON), or false.
 */
const CLAIM = `
local r = redis.call('HMGET', KEYS[1], 'hash', 'doc', 'userId', 'node', 'issuedAt', 'jti', 'joinedAt')
local stored, given = r[1], ARGV[1]
if not stored or #stored ~= #given or #given == 0 then return false end
local diff = 0
for i = 1, #given do diff = bit.bor(diff, bit.bxor(string.byte(stored, i), string.byte(given, i))) end
if diff ~= 0 or r[2] ~= ARGV[2] or r[3] ~= ARGV[3] then return false end
redis.call('HSET', KEYS[1], 'hash', '', 'node', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return cjson.encode({ from = r[4], issuedAt = r[5] or '', jti = r[6] or '', joinedAt = r[7] or '' })
`

/**
 * KEYS 1 the record. ARGV 1 hash, 2 document, 3 user id, 4 this instance, 5 issuedAt, 6 jti,
 * 7 time to live (ms), 8 joinedAt. Writes the record of a session on this instance, unless another instance
 * claimed it meanwhile (a write retried after an outage must not take it back). 0 when not.
 */
const ISSUE = `
local node = redis.call('HGET', KEYS[1], 'node')
if node and node ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'doc', ARGV[2], 'userId', ARGV[3], 'node', ARGV[4], 'issuedAt', ARGV[5], 'jti', ARGV[6], 'joinedAt', ARGV[8])
return redis.call('PEXPIRE', KEYS[1], ARGV[7])
`

/** KEYS 1 the record. ARGV 1 this instance, 2 time to live (ms). Sets it only while it is ours. */
const HOLD = `
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`

/** KEYS 1 the record. ARGV 1 this instance. Deletes it while it is ours: mine | gone | moved. */
const END = `
local node = redis.call('HGET', KEYS[1], 'node')
if not node then return 'gone' end
if node ~= ARGV[1] then return 'moved' end
redis.call('DEL', KEYS[1])
return 'mine'
`

type Scripts = {
  tandemResumeIssue: (key: string, hash: string, doc: string, userId: string, node: string, issuedAt: string, jti: string, ttl: number, joinedAt: string) => Promise<number>
  tandemResumeClaim: (key: string, hash: string, doc: string, userId: string, node: string, ttl: number) => Promise<string | null>
  tandemResumeHold: (key: string, node: string, ttl: number) => Promise<number>
  tandemResumeEnd: (key: string, node: string) => Promise<GraceEnd>
}

/**
 * The resume records of Tandem sessions, shared by the instances through Redis, so a dropped
 * session resumes on whichever instance its client reaches. One hash per session,
 * `<prefix>{<doc>}:resume:<session id>` (the document is the hash tag, as for its locks):
 * `hash` (SHA-256 of the resume secret), `doc`, `userId`, `node` (the instance the session is
 * on), `issuedAt`, `jti`, `joinedAt` (presence). Written when a secret is issued (time to live LIVE_RECORD_MS,
 * refreshed), given the grace as time to live when the session drops, deleted when the secret is
 * void; a claim (a Lua script) checks the secret and moves the record to the claimer at once.
 * Every other write is made only by the instance the record names (or to a record not there).
 */
export class RedisResumeRecords {
  private client: Redis | Cluster
  private readonly prefix: string
  private readonly logger: Logger

  constructor (private readonly options: RedisResumeOptions) {
    this.prefix = options.prefix ?? 'tandem:'
    this.logger = options.logger.child({ component: 'resume' })
    this.client = this.connection(false)
  }

  /** This instance's id. */
  get nodeId (): string {
    return this.options.nodeId
  }

  private connection (cluster: boolean): Redis | Cluster {
    const client = redisClient({ url: this.options.url, name: `tandem-resume-${this.options.nodeId}`, commandTimeoutMs: 2_000 }, cluster)
    client.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'redis error'))
    client.defineCommand('tandemResumeIssue', { numberOfKeys: 1, lua: ISSUE })
    client.defineCommand('tandemResumeClaim', { numberOfKeys: 1, lua: CLAIM })
    client.defineCommand('tandemResumeHold', { numberOfKeys: 1, lua: HOLD })
    client.defineCommand('tandemResumeEnd', { numberOfKeys: 1, lua: END })
    return client
  }

  /** Connects (as a cluster client when the URL names a node of a Redis Cluster). */
  async start (): Promise<void> {
    await this.client.connect()
    if (await isClusterNode(this.client)) {
      this.client.disconnect()
      this.client = this.connection(true)
      await this.client.connect()
    }
  }

  private key (doc: string, sessionId: string): string {
    return `${this.prefix}{${encodeURIComponent(doc)}}:resume:${sessionId}`
  }

  private get scripts (): Scripts {
    return this.client as unknown as Scripts
  }

  /** A new secret for a session on this instance (its hash replaces the one it had). */
  async issue (record: ResumeRecord, hash: string): Promise<void> {
    await this.scripts.tandemResumeIssue(this.key(record.doc, record.sessionId), hash, record.doc, record.userId, this.nodeId,
      String(record.issuedAt ?? ''), record.jti ?? '', LIVE_RECORD_MS, String(record.joinedAt ?? ''))
  }

  /**
   * Takes a session over if `secret` is its resume secret and it belongs to `userId` and `doc`:
   * the record then names this instance and lives `ttlMs` (until a new secret is issued).
   * Undefined for anything else (no record, a void or used secret, another user or document).
   */
  async claim (doc: string, sessionId: string, secret: string, userId: string, ttlMs: number): Promise<ClaimedRecord | undefined> {
    if (sessionId.length > MAX_RESUME_PARAM || secret.length > MAX_RESUME_PARAM) return undefined
    const raw = await this.scripts.tandemResumeClaim(this.key(doc, sessionId), hashSecret(secret), doc, userId, this.nodeId, ttlMs)
    if (raw === null) return undefined
    const found = JSON.parse(raw) as { from: string, issuedAt: string, jti: string, joinedAt: string }
    const claimed: ClaimedRecord = { sessionId, doc, userId, from: found.from }
    if (found.issuedAt !== '') claimed.issuedAt = Number(found.issuedAt)
    if (found.jti !== '') claimed.jti = found.jti
    if (found.joinedAt !== '') claimed.joinedAt = Number(found.joinedAt)
    return claimed
  }

  /** The session dropped here: its record lives `ttlMs` (the grace), unless it moved on. */
  async hold (doc: string, sessionId: string, ttlMs: number): Promise<void> {
    await this.scripts.tandemResumeHold(this.key(doc, sessionId), this.nodeId, ttlMs)
  }

  /** The session ended here for good, or its grace ran out: its record goes, unless it moved on. */
  async end (doc: string, sessionId: string): Promise<GraceEnd> {
    return await this.scripts.tandemResumeEnd(this.key(doc, sessionId), this.nodeId)
  }

  /** Gives the records of sessions live here their full time to live again. */
  async refresh (sessions: Iterable<{ doc: string, sessionId: string }>): Promise<void> {
    // sent without waiting for each other (not one pipeline: a cluster's keys are on many shards)
    const refreshed: Array<Promise<number>> = []
    for (const { doc, sessionId } of sessions) refreshed.push(this.client.pexpire(this.key(doc, sessionId), LIVE_RECORD_MS))
    await Promise.all(refreshed)
  }

  /** Closes the connection. Safe to call twice. */
  async close (): Promise<void> {
    await this.client.quit().catch(() => {})
    this.client.disconnect()
  }
}
