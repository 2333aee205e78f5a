import { describe, expect, test } from 'vitest'
import type WebSocket from 'ws'
import { docName, rawClient, startServer, waitFor } from '../support/helpers.js'
import { LocalBus, LocalHub } from '../../server/cluster/local-bus.js'
import type { HookIdentity } from '../../server/auth/auth.js'
import { POSTGRES_URL, pgSchema, postgresUp, privateRedis, redisPrefix, redisUp, testWith } from '../support/services.js'
import { startTandem, type TandemProcess } from '../support/cli.js'
import { signToken, upgrade, docUrl, collectFrames } from '../support/security-helpers.js'
import { tandemClient, record } from '../support/tandem-helpers.js'
import { isTandemError } from '../../client/index.js'

const it = testWith(postgresUp && redisUp)
const SECRET = 'live-scaleout-secret'
const ADMIN = 'live-admin'

/** Two instances sharing a private Redis and a fresh PostgreSQL schema; `restart` replaces both. */
async function pair (): Promise<{ instances: TandemProcess[], restart (): Promise<void> }> {
  const redis = await privateRedis()
  const schema = pgSchema()
  const prefix = redisPrefix()
  const add = (): Promise<TandemProcess> => startTandem([
    '--persistence', `${POSTGRES_URL}?schema=${schema}`, '--redis', redis.url, '--redis-prefix', prefix,
    '--auth-secret', SECRET, '--admin-token', ADMIN, '--heartbeat-interval', '500', '--heartbeat-timeout', '2000'
  ])
  const instances = [await add(), await add()]
  return {
    instances,
    async restart () {
      await Promise.all(instances.map(async p => await p.stop()))
      instances.splice(0, 2, await add(), await add())
    }
  }
}

/** A raw Tandem session: resolves once welcomed, with the time it closed and how. */
async function session (url: string): Promise<{ ws: WebSocket, sessionId: string, closed: Promise<{ code: number, reason: string, at: number }> }> {
  const ws = rawClient(url)
  const frames = collectFrames(ws)
  const closed = new Promise<{ code: number, reason: string, at: number }>(resolve => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }))
  })
  for (;;) {
    const frame = await frames.next()
    if (frame.type === 'tandem' && frame.message.type === 'welcome') return { ws, sessionId: frame.message.sessionId, closed }
  }
}

async function revoke (instance: TandemProcess, body: Record<string, string>): Promise<number> {
  const response = await fetch(`${instance.http}/api/revocations`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  await response.body?.cancel()
  return response.status
}

describe('revocation on two instances sharing Redis and PostgreSQL', () => {
  it('by user, session and jti: sessions end on both within a second; the tokens are refused at the upgrade, at refresh, and after a restart', async () => {
    const deployment = await pair()
    const [one, two] = deployment.instances as [TandemProcess, TandemProcess]
    const name = docName()
    const tokens = {
      mallory: await signToken(SECRET, { sub: 'mallory' }),
      bob: await signToken(SECRET, { sub: 'bob', jti: 'bob-token' }),
      carol: await signToken(SECRET, { sub: 'carol' })
    }
    const on = (instance: TandemProcess, token: string): ReturnType<typeof session> => session(docUrl(instance.url, name, { tandem: '1', token }))
    const spread: Record<'mallory' | 'bob' | 'carol', Array<Awaited<ReturnType<typeof session>>>> = {
      mallory: [await on(one, tokens.mallory), await on(two, tokens.mallory)],
      bob: [await on(one, tokens.bob), await on(two, tokens.bob)],
      carol: [await on(one, tokens.carol), await on(two, tokens.carol)]
    }
    const latencies: number[] = []
    const targets: Array<[keyof typeof spread, Record<string, string>]> = [
      ['mallory', { userId: 'mallory' }],
      ['bob', { jti: 'bob-token' }],
      ['carol', { sessionId: spread.carol[1]!.sessionId }]
    ]
    for (const [who, body] of targets) {
      // made on the first instance; a session revocation names the session on the second
      const sent = Date.now()
      expect(await revoke(one, body)).toBe(200)
      const sessions = who === 'carol' ? [spread.carol[1]!] : spread[who]
      const ends = await Promise.all(sessions.map(async s => await s.closed))
      for (const end of ends) {
        expect(end, who).toMatchObject({ code: 4401, reason: 'TANDEM_ERR_REVOKED' })
        latencies.push(end.at - sent)
      }
    }
    if (process.env.TANDEM_TEST_FIGURES === '1') process.stdout.write(`revocation latencies (ms): ${latencies.join(' ')}\n`)
    // the contract: within one second, on every instance
    expect(Math.max(...latencies)).toBeLessThan(1_000)
    // carol's other session was not revoked
    expect(spread.carol[0]!.ws.readyState).toBe(1)

    for (const instance of [one, two]) {
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.mallory }))).status).toBe(401)
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.bob }))).status).toBe(401)
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.carol }))).status).toBe('open')
    }

    // at refresh, on the other instance: the second token was revoked on the first
    const first = await signToken(SECRET, { sub: 'dave', jti: 'dave-1' }, 2)
    const second = await signToken(SECRET, { sub: 'dave', jti: 'dave-2' }, 60)
    expect(await revoke(one, { jti: 'dave-2' })).toBe(200)
    let calls = 0
    const dave = tandemClient(two.url, name, { token: () => calls++ === 0 ? first : second })
    const errors = record(dave).errors
    await dave.synced()
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_REVOKED')), 5_000, 'refresh refused')
    dave.destroy()

    await deployment.restart()
    for (const instance of deployment.instances) {
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.mallory }))).status).toBe(401)
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.bob }))).status).toBe(401)
      expect((await upgrade(docUrl(instance.url, name, { token: second }))).status).toBe(401)
      expect((await upgrade(docUrl(instance.url, name, { token: tokens.carol }))).status).toBe('open')
    }
  })

})

describe('recheck across instances', () => {
  test('reaches the sessions of the document on every instance (in-process bus)', async () => {
    const hub = new LocalHub()
    const grants = new Map<string, HookIdentity | null>([['ada', { userId: 'ada' }], ['bob', { userId: 'bob' }]])
    const options = { authenticate: ({ token }: { token: string | undefined }) => grants.get(token ?? '') ?? null }
    const one = await startServer({ ...options, bus: new LocalBus(hub) })
    const two = await startServer({ ...options, bus: new LocalBus(hub) })
    const name = docName()
    const ada = await session(docUrl(one.url, name, { tandem: '1', token: 'ada' }))
    const bob = await session(docUrl(two.url, name, { tandem: '1', token: 'bob' }))
    grants.set('ada', null)
    grants.set('bob', null)
    expect(await one.recheck(name)).toBe(1)
    expect(await ada.closed).toMatchObject({ code: 4401, reason: 'TANDEM_ERR_UNAUTHENTICATED' })
    expect(await bob.closed).toMatchObject({ code: 4401, reason: 'TANDEM_ERR_UNAUTHENTICATED' })
  })
})
