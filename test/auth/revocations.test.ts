import { describe, expect, test } from 'vitest'
import { Revocations } from '../../server/auth/revocations.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { testLogger } from '../support/helpers.js'
import type { Identity } from '../../server/auth/auth.js'

const ada = (fields: Partial<Identity> = {}): Identity => ({ userId: 'ada', name: 'Ada', color: '#000', access: 'write', ...fields })

describe('Revocations', () => {
  test('a user revocation covers credentials issued before it (none without iat), not after', async () => {
    const list = new Revocations(new MemoryStore(), 60_000, testLogger)
    await list.start()
    const now = Date.now()
    const { revokedAt } = await list.revoke({ kind: 'user', value: 'ada' }, now)
    expect(revokedAt).toBe(now)
    expect(list.covering(ada({ issuedAt: now - 1 }))).toBeDefined()
    expect(list.covering(ada({ issuedAt: 0 }))).toBeDefined()
    expect(list.covering(ada())).toBeDefined()
    expect(list.covering(ada({ issuedAt: now }))).toBeUndefined()
    expect(list.covering(ada({ userId: 'bob', issuedAt: 0 }))).toBeUndefined()
    list.close()
  })

  test('session and jti revocations match exactly; expired ones are forgotten, also in the store', async () => {
    const store = new MemoryStore()
    const list = new Revocations(store, 1_000, testLogger)
    await list.start()
    const now = Date.now()
    await list.revoke({ kind: 'session', value: 's1' }, now)
    await list.revoke({ kind: 'jti', value: 'j1' }, now - 5_000)
    expect(list.covering(ada(), 's1')).toMatchObject({ kind: 'session' })
    expect(list.covering(ada(), 's2')).toBeUndefined()
    // kept 1 s: the jti one made 5 s ago has expired
    expect(list.covering(ada({ jti: 'j1' }))).toBeUndefined()
    expect((await store.revocations(now)).map(r => r.value)).toEqual(['s1'])
    // a restart reads what the store kept
    const again = new Revocations(store, 1_000, testLogger)
    await again.start()
    expect(again.covering(ada(), 's1')).toBeDefined()
    list.close()
    again.close()
  })

  test('a peer\'s revocation is in force at once and stored here too', async () => {
    const store = new MemoryStore()
    const list = new Revocations(store, 60_000, testLogger)
    await list.start()
    const now = Date.now()
    list.received({ kind: 'jti', value: 'j9', revokedAt: now, expiresAt: now + 60_000 })
    expect(list.covering(ada({ jti: 'j9' }))).toBeDefined()
    expect((await store.revocations(now)).map(r => r.value)).toEqual(['j9'])
    list.close()
  })
})
