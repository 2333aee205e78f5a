import { describe, expect, test } from 'vitest'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as prng from 'lib0/prng'
import {
  readTandemMessage, writeTandemMessage, LEAVE_REASONS, LOCK_RELEASE_REASONS, PRESENCE_STATUSES,
  type TandemMessage, type PresenceEntry, type LockInfo
} from '../../shared/tandem.js'
import { readFrame, writeTandem } from '../../shared/messages.js'
import { isTandemError } from '../../shared/errors.js'

function encode (message: TandemMessage): Uint8Array {
  const encoder = encoding.createEncoder()
  writeTandemMessage(encoder, message)
  return encoding.toUint8Array(encoder)
}

function decode (bytes: Uint8Array): TandemMessage {
  const decoder = decoding.createDecoder(bytes)
  const message = readTandemMessage(decoder)
  if (decoding.hasContent(decoder)) throw new Error('trailing bytes')
  return message
}

const user: PresenceEntry = { userId: 'u', name: 'N', color: '#f80', status: 'idle', connections: 2, joinedAt: 1, lastActiveAt: 300 }
const lock: LockInfo = { resource: 'r', token: 5, sessionId: 's', userId: 'u', name: 'N', color: 'c', acquiredAt: 1, expiresAt: 2 }

/** One example of every message, with its exact bytes (PROTOCOL.md shows the same). */
const VECTORS: Array<[TandemMessage, number[]]> = [
  [{ type: 'ack', count: 3 }, [0, 3]],
  [{ type: 'ack', count: 300 }, [0, 0xac, 0x02]],
  [{ type: 'refused', count: 1, code: 'RO' }, [1, 1, 2, 0x52, 0x4f]],
  [{ type: 'welcome', sessionId: 's', secret: 'k', resumed: true, userId: 'u', name: 'N', color: 'c', access: 'read' },
    [2, 1, 0x73, 1, 0x6b, 1, 1, 0x75, 1, 0x4e, 1, 0x63, 4, 0x72, 0x65, 0x61, 0x64]],
  [{ type: 'presence', users: [user] },
    [3, 1, 1, 0x75, 1, 0x4e, 4, 0x23, 0x66, 0x38, 0x30, 4, 0x69, 0x64, 0x6c, 0x65, 2, 1, 0xac, 0x02]],
  [{ type: 'presence-event', event: 'left', user: { ...user, status: 'away' }, reason: 'timeout' },
    [4, 2, 1, 0x75, 1, 0x4e, 4, 0x23, 0x66, 0x38, 0x30, 4, 0x61, 0x77, 0x61, 0x79, 2, 1, 0xac, 0x02,
      7, 0x74, 0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74]],
  [{ type: 'set-status', status: 'away' }, [5, 4, 0x61, 0x77, 0x61, 0x79]],
  [{ type: 'leave' }, [6]],
  [{ type: 'lock-acquire', id: 1, resource: 'r', ttlMs: 1000, waitMs: 0 }, [7, 1, 1, 0x72, 0xe8, 0x07, 0]],
  [{ type: 'lock-release', id: 2, resource: 'r' }, [8, 2, 1, 0x72]],
  [{ type: 'lock-reply', id: 1, code: '', lock: null }, [9, 1, 0, 0]],
  [{ type: 'lock-reply', id: 1, code: '', lock }, [9, 1, 0, 1, 1, 0x72, 5, 1, 0x73, 1, 0x75, 1, 0x4e, 1, 0x63, 1, 2]],
  [{ type: 'locks', locks: [] }, [10, 0]],
  [{ type: 'lock-event', event: 'acquired', lock }, [11, 0, 1, 0x72, 5, 1, 0x73, 1, 0x75, 1, 0x4e, 1, 0x63, 1, 2, 0]],
  [{ type: 'lock-event', event: 'released', lock, reason: 'admin' },
    [11, 1, 1, 0x72, 5, 1, 0x73, 1, 0x75, 1, 0x4e, 1, 0x63, 1, 2, 5, 0x61, 0x64, 0x6d, 0x69, 0x6e]],
  [{ type: 'token-expiring', expiresAt: 300 }, [12, 0xac, 0x02]],
  [{ type: 'refresh', token: 'tk' }, [13, 2, 0x74, 0x6b]],
  [{ type: 'refreshed', expiresAt: 0, access: 'read', name: 'N', color: 'c' }, [14, 0, 4, 0x72, 0x65, 0x61, 0x64, 1, 0x4e, 1, 0x63]],
  [{ type: 'presence-event', event: 'left', user: { ...user, status: 'away' }, reason: 'expired' },
    [4, 2, 1, 0x75, 1, 0x4e, 4, 0x23, 0x66, 0x38, 0x30, 4, 0x61, 0x77, 0x61, 0x79, 2, 1, 0xac, 0x02,
      7, 0x65, 0x78, 0x70, 0x69, 0x72, 0x65, 0x64]],
  [{ type: 'locked', holder: lock }, [15, 1, 0x72, 5, 1, 0x73, 1, 0x75, 1, 0x4e, 1, 0x63, 1, 2]]
]

describe('Tandem messages', () => {
  test.each(VECTORS.map(([m, b]) => [m.type, m, b] as const))('%s: fixed bytes both ways', (_type, message, bytes) => {
    expect([...encode(message)]).toEqual(bytes)
    expect(decode(Uint8Array.from(bytes))).toEqual(message)
  })

  test('sub-types 0 and 1 are ack and refused, as the server core and the security work use them', () => {
    expect([...encode({ type: 'ack', count: 1 })]).toEqual([0, 1])
    expect([...encode({ type: 'refused', count: 2, code: 'TANDEM_ERR_READ_ONLY' })].slice(0, 3)).toEqual([1, 2, 20])
  })

  test('a Tandem frame is message type 100 around the sub-message', () => {
    const frame = writeTandem({ type: 'leave' })
    expect([...frame]).toEqual([100, 6])
    expect(readFrame(frame)).toEqual({ type: 'tandem', message: { type: 'leave' } })
  })

  test('seeded random messages round-trip', () => {
    const seed = Number(process.env.TANDEM_SEED ?? Date.now() % 1_000_000)
    const gen = prng.create(seed)
    try {
      for (let i = 0; i < 2_000; i++) {
        const message = randomMessage(gen)
        expect(decode(encode(message))).toEqual(message)
        expect(readFrame(writeTandem(message))).toEqual({ type: 'tandem', message })
      }
    } catch (err) {
      throw new Error(`failed with TANDEM_SEED=${seed}: ${(err as Error).message}`, { cause: err })
    }
  })

  test('bad bytes give TANDEM_ERR_MALFORMED_MESSAGE, never a partial message', () => {
    const bad: number[][] = [
      [100, 12], // unknown sub-type
      [100, 0], // truncated ack
      [100, 5, 3, 0x66, 0x6f, 0x6f], // status "foo"
      [100, 4, 7, 1, 0x75, 1, 0x4e, 1, 0x63, 6, 0x61, 0x63, 0x74, 0x69, 0x76, 0x65, 1, 1, 1, 0], // event 7
      [100, 4, 0, 1, 0x75, 1, 0x4e, 1, 0x63, 6, 0x61, 0x63, 0x74, 0x69, 0x76, 0x65, 1, 1, 1, 1, 0x78], // joined with a reason
      [100, 9, 1, 0, 2], // boolean 2
      [100, 10, 0x80, 0x80, 0x80, 0x01], // absurd count
      [100, 2, 1, 0x73, 1, 0x6b, 0, 1, 0x75, 1, 0x4e, 1, 0x63, 5, 0x61, 0x64, 0x6d, 0x69, 0x6e], // access "admin"
      [100, 6, 0] // trailing byte
    ]
    for (const bytes of bad) {
      let caught: unknown
      try {
        readFrame(Uint8Array.from(bytes))
      } catch (err) {
        caught = err
      }
      expect(isTandemError(caught, 'TANDEM_ERR_MALFORMED_MESSAGE'), JSON.stringify(bytes)).toBe(true)
    }
  })

  test('seeded random bytes never decode to garbage silently', () => {
    const seed = Number(process.env.TANDEM_SEED ?? Date.now() % 1_000_000)
    const gen = prng.create(seed)
    for (let i = 0; i < 5_000; i++) {
      const bytes = Uint8Array.from([100, ...Array.from({ length: prng.int32(gen, 0, 24) }, () => prng.uint32(gen, 0, 255))])
      try {
        const frame = readFrame(bytes)
        // whatever decodes is a whole message: encoding it again gives the same message
        expect(readFrame(writeTandem((frame as { message: TandemMessage }).message)), `TANDEM_SEED=${seed}`).toEqual(frame)
      } catch (err) {
        if (!isTandemError(err, 'TANDEM_ERR_MALFORMED_MESSAGE')) throw new Error(`TANDEM_SEED=${seed}: ${String(err)}`)
      }
    }
  })
})

function randomMessage (gen: prng.PRNG): TandemMessage {
  const str = (): string => prng.utf16String(gen, prng.int32(gen, 0, 12))
  const uint = (): number => prng.int32(gen, 0, 2) === 0 ? prng.uint32(gen, 0, 200) : prng.int53(gen, 0, Number.MAX_SAFE_INTEGER)
  const pick = <T>(values: readonly T[]): T => prng.oneOf(gen, values as T[])
  const entry = (): PresenceEntry => ({ userId: str(), name: str(), color: str(), status: pick(PRESENCE_STATUSES), connections: uint(), joinedAt: uint(), lastActiveAt: uint() })
  const info = (): LockInfo => ({ resource: str(), token: uint(), sessionId: str(), userId: str(), name: str(), color: str(), acquiredAt: uint(), expiresAt: uint() })
  const list = <T>(make: () => T): T[] => Array.from({ length: prng.int32(gen, 0, 4) }, make)
  switch (prng.int32(gen, 0, 17)) {
    case 0: return { type: 'ack', count: uint() }
    case 1: return { type: 'refused', count: uint(), code: str() }
    case 2: return { type: 'welcome', sessionId: str(), secret: str(), resumed: prng.bool(gen), userId: str(), name: str(), color: str(), access: pick(['read', 'write'] as const) }
    case 3: return { type: 'presence', users: list(entry) }
    case 4: return { type: 'presence-event', event: pick(['joined', 'updated'] as const), user: entry() }
    case 5: return { type: 'presence-event', event: 'left', user: entry(), reason: pick(LEAVE_REASONS) }
    case 6: return { type: 'set-status', status: pick(['active', 'away'] as const) }
    case 7: return { type: 'leave' }
    case 8: return { type: 'lock-acquire', id: uint(), resource: str(), ttlMs: uint(), waitMs: uint() }
    case 9: return { type: 'lock-release', id: uint(), resource: str() }
    case 10: return { type: 'lock-reply', id: uint(), code: str(), lock: prng.bool(gen) ? info() : null }
    case 11: return { type: 'locks', locks: list(info) }
    case 12: return { type: 'lock-event', event: 'acquired', lock: info() }
    case 13: return { type: 'token-expiring', expiresAt: uint() }
    case 14: return { type: 'refresh', token: str() }
    case 15: return { type: 'refreshed', expiresAt: uint(), access: pick(['read', 'write'] as const), name: str(), color: str() }
    case 16: return { type: 'locked', holder: info() }
    default: return { type: 'lock-event', event: 'released', lock: info(), reason: pick(LOCK_RELEASE_REASONS) }
  }
}
