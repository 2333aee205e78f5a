import { describe, expect, onTestFinished } from 'vitest'
import { startBalancer, type Balancer } from '../../bench/balancer.js'
import { docName, opened, rawClient, stockClient, synced, waitFor } from '../support/helpers.js'
import { POSTGRES_URL, REDIS_URL, pgSchema, postgresUp, redisPrefix, redisUp, testWith } from '../support/services.js'
import { startTandem, type TandemProcess } from '../support/cli.js'

const it = testWith(postgresUp && redisUp)

/** Two tandem processes on one Redis and one PostgreSQL schema, behind a balancer. */
async function behindBalancer (): Promise<{ instances: TandemProcess[], balancer: Balancer }> {
  const args = ['--persistence', `${POSTGRES_URL}?schema=${pgSchema()}`, '--redis', REDIS_URL, '--redis-prefix', redisPrefix()]
  const instances = [await startTandem(args), await startTandem(args)]
  const balancer = await startBalancer(instances.map(p => p.http))
  onTestFinished(() => balancer.close())
  return { instances, balancer }
}

/** Sessions of `name` open on one instance, from its own /api/documents. */
async function sessionsOn (instance: TandemProcess, name: string): Promise<number> {
  const documents = await (await fetch(`${instance.http}/api/documents`)).json() as Array<{ name: string, sessions: number }>
  return documents.find(d => d.name === name)?.sessions ?? 0
}

describe('the balancer in front of two instances', () => {
  it('a stock client through the balancer edits, a client on the other instance sees it, and back', async () => {
    const { instances: [p1, p2], balancer } = await behindBalancer()
    const name = docName()
    balancer.pick(p1!.http)
    const through = stockClient(balancer.url, name)
    const direct = stockClient(p2!.url, name)
    await Promise.all([synced(through.provider), synced(direct.provider)])
    expect(await sessionsOn(p1!, name)).toBe(1)
    expect(await sessionsOn(p2!, name)).toBe(1)
    through.text.insert(0, 'through the balancer')
    await waitFor(() => direct.text.toString() === 'through the balancer', 5_000, 'the edit on the other instance')
    direct.text.insert(0, '> ')
    await waitFor(() => through.text.toString() === '> through the balancer', 5_000, 'the answer through the balancer')
    // plain HTTP goes through as well
    expect((await fetch(`${balancer.http}/healthz`)).status).toBe(200)
    expect(await (await fetch(`${balancer.http}/api/documents`)).json()).toEqual(expect.any(Array))
  })

  it('new connections take turns; dropAll cuts them without a close and stock clients come back', async () => {
    const { instances: [p1, p2], balancer } = await behindBalancer()
    const name = docName()
    const sockets = [0, 1, 2, 3].map(() => rawClient(`${balancer.url}/${name}`))
    await Promise.all(sockets.map(opened))
    expect([...balancer.routed.values()]).toEqual([2, 2])
    await waitFor(async () => await sessionsOn(p1!, name) === 2 && await sessionsOn(p2!, name) === 2, 5_000, 'two sessions on each instance')
    expect(balancer.connections).toBe(4)

    const a = stockClient(balancer.url, name)
    const b = stockClient(balancer.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    const codes: number[] = []
    for (const ws of sockets) ws.on('close', code => codes.push(code))
    expect(balancer.dropAll()).toBe(6)
    await waitFor(() => codes.length === 4, 5_000, 'raw sockets closed')
    // no closing handshake reached them: 1006, abnormal closure
    expect(codes).toEqual([1006, 1006, 1006, 1006])
    await waitFor(async () => await sessionsOn(p1!, name) + await sessionsOn(p2!, name) <= 2, 10_000, 'dropped sessions ended on the instances')
    // the stock clients reconnect on their own (y-websocket's backoff) and edits flow again
    await Promise.all([synced(a.provider, 10_000), synced(b.provider, 10_000)])
    await waitFor(() => a.provider.wsconnected && b.provider.wsconnected, 10_000, 'stock clients back')
    a.text.insert(0, 'after the drop')
    await waitFor(() => b.text.toString() === 'after the drop', 5_000, 'an edit after the drop')
  })

  it('a target that is down answers 502 for HTTP, and the next one serves', async () => {
    const { instances: [p1], balancer } = await behindBalancer()
    await p1!.stop()
    const statuses = [await fetch(`${balancer.http}/healthz`), await fetch(`${balancer.http}/healthz`)].map(r => r.status).sort()
    expect(statuses).toEqual([200, 502])
  })
})
