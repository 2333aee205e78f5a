import { describe, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import * as Y from 'yjs'
import type WebSocket from 'ws'
import { PostgresStore } from '../../server/store/postgres-store.js'
import { countAwarenessFrames, docName, stockClient, synced, waitFor, type StockClient } from '../support/helpers.js'
import { POSTGRES_URL, pgSchema, postgresUp, privateRedis, privateRedisCluster, redisPrefix, redisUp, testWith, type PrivateRedis } from '../support/services.js'
import { httpStatus, startTandem, type TandemProcess } from '../support/cli.js'
import { parsePrometheusText, sampleValue } from '../observability/prometheus-text.js'

const it = testWith(postgresUp && redisUp)

/** Short heartbeats, so a killed instance is noticed within 2 s. */
const HEARTBEAT = ['--heartbeat-interval', '500', '--heartbeat-timeout', '2000']

interface Deployment {
  redis: PrivateRedis
  schema: string
  instances: TandemProcess[]
  /** Starts one more instance on the same Redis and PostgreSQL. */
  add (): Promise<TandemProcess>
}

/** `count` tandem processes sharing a private redis-server and a fresh PostgreSQL schema. */
async function deployment (count: number): Promise<Deployment> {
  const redis = await privateRedis()
  const schema = pgSchema()
  const prefix = redisPrefix()
  const add = (): Promise<TandemProcess> => startTandem(['--persistence', `${POSTGRES_URL}?schema=${schema}`, '--redis', redis.url, '--redis-prefix', prefix, ...HEARTBEAT])
  const instances: TandemProcess[] = []
  for (let i = 0; i < count; i++) instances.push(await add())
  return { redis, schema, instances, add }
}

/** Two instances, and one synced stock client on each, on a fresh document. */
async function clientOnEach (): Promise<{ deployment: Deployment, name: string, a: StockClient, b: StockClient }> {
  const found = await deployment(2)
  const [p1, p2] = found.instances
  const name = docName()
  const a = stockClient(p1!.url, name)
  const b = stockClient(p2!.url, name)
  await Promise.all([synced(a.provider), synced(b.provider)])
  return { deployment: found, name, a, b }
}

function others (client: StockClient): Map<number, unknown> {
  const states = new Map(client.provider.awareness.getStates())
  states.delete(client.doc.clientID)
  return states
}

function seesUser (client: StockClient, other: StockClient, name: string): boolean {
  return (others(client).get(other.doc.clientID) as { user?: string } | undefined)?.user === name
}

/** The text of a document as stored in PostgreSQL. */
async function storedText (schema: string, name: string): Promise<string> {
  const store = await PostgresStore.open(POSTGRES_URL, { schema })
  try {
    const doc = new Y.Doc()
    for (const update of await store.load(name)) Y.applyUpdate(doc, update)
    return doc.getText('t').toString()
  } finally {
    await store.close()
  }
}

describe('several tandem processes with Redis and PostgreSQL', () => {
  it('stock clients on three instances converge; a late joiner anywhere gets everything', async () => {
    const { instances: [p1, p2, p3] } = await deployment(3)
    const name = docName()
    const clients = [stockClient(p1!.url, name), stockClient(p2!.url, name), stockClient(p3!.url, name)]
    await Promise.all(clients.map(c => synced(c.provider)))
    clients.forEach((c, i) => c.text.insert(0, String(i)))
    await waitFor(() => clients.every(c => c.text.length === 3), 5_000, 'three edits everywhere')
    const text = clients[0]!.text.toString()
    expect(clients.map(c => c.text.toString())).toEqual([text, text, text])
    const late = stockClient(p3!.url, name)
    await synced(late.provider)
    await waitFor(() => late.text.toString() === text, 5_000, 'late joiner')
  })

  it('awareness crosses instances and is removed within 1 s of a drop', async () => {
    const { deployment: { instances: [, p2] }, name, a, b } = await clientOnEach()
    a.provider.awareness.setLocalStateField('user', 'ada')
    b.provider.awareness.setLocalStateField('user', 'bob')
    await waitFor(() => seesUser(b, a, 'ada') && seesUser(a, b, 'bob'), 5_000, 'both see each other')
    // a drop, not a leave: the TCP connection ends without a closing handshake
    a.provider.shouldConnect = false
    ;(a.provider.ws as unknown as WebSocket).terminate()
    await waitFor(() => !others(b).has(a.doc.clientID), 1_000, 'a removed on the other instance')
    // it comes back on the other instance: seen at once there and here
    const again = stockClient(p2!.url, name, { doc: a.doc })
    again.provider.awareness.setLocalStateField('user', 'ada')
    await synced(again.provider)
    await waitFor(() => seesUser(b, a, 'ada'), 5_000, 'a seen again')
  })

  it('two tabs of one browser on two instances, passing relays to each other over BroadcastChannel, settle at once', async () => {
    const { instances: [p1, p2] } = await deployment(2)
    const name = docName()
    const a = stockClient(p1!.url, name, { broadcastChannel: true })
    const b = stockClient(p2!.url, name, { broadcastChannel: true })
    await Promise.all([synced(a.provider), synced(b.provider)])
    const frames = [countAwarenessFrames(a.provider), countAwarenessFrames(b.provider)]
    a.provider.awareness.setLocalStateField('user', 'ada')
    b.provider.awareness.setLocalStateField('user', 'bob')
    await waitFor(() => seesUser(b, a, 'ada') && seesUser(a, b, 'bob'), 5_000, 'both see each other')
    // a joiner on p2 makes p2 raise the clocks it sends of a's state, which b passes back to a
    const c = stockClient(p2!.url, name)
    await synced(c.provider)
    a.provider.awareness.setLocalStateField('user', 'ada2')
    await waitFor(() => seesUser(b, a, 'ada2') && seesUser(c, a, 'ada2') && seesUser(c, b, 'bob'), 5_000, 'all see the change')
    await new Promise(resolve => setTimeout(resolve, 1_000)) // an echo runs for as long as it is given: the point of the test
    expect(frames[0]!() + frames[1]!()).toBeLessThan(30)
    expect(seesUser(b, a, 'ada2') && seesUser(a, b, 'bob')).toBe(true)
  })

  it('SIGKILL of an instance: its clients\' awareness goes within the heartbeat timeout, its stored edits stay', async () => {
    const { deployment: { instances: [p1, p2] }, name, a, b } = await clientOnEach()
    a.provider.awareness.setLocalStateField('user', 'ada')
    a.text.insert(0, 'kept')
    await waitFor(() => seesUser(b, a, 'ada') && b.text.toString() === 'kept', 5_000, 'b sees a')
    a.provider.shouldConnect = false
    await p1!.stop('SIGKILL')
    await waitFor(() => !others(b).has(a.doc.clientID), 2_000 + 500, 'a removed after its instance died')
    const reader = stockClient(p2!.url, name)
    await synced(reader.provider)
    await waitFor(() => reader.text.toString() === 'kept', 5_000, 'edit survives')
  })

  it('concurrent edits on two instances are all stored', async () => {
    const { deployment: { schema, instances: [p1, p2] }, name, a, b } = await clientOnEach()
    for (let i = 0; i < 100; i++) {
      a.text.insert(a.text.length, 'a')
      b.text.insert(0, 'b')
    }
    await waitFor(() => a.text.length === 200 && b.text.length === 200, 10_000, 'both see 200')
    expect(a.text.toString()).toBe(b.text.toString())
    a.provider.shouldConnect = false
    b.provider.shouldConnect = false
    a.provider.disconnect()
    b.provider.disconnect()
    expect(await Promise.all([p1!.stop(), p2!.stop()])).toEqual([0, 0])
    const stored = await storedText(schema, name)
    expect(stored).toBe(a.text.toString())
  })

  it('Redis outage: both keep serving, readyz is 503, and after Redis returns all clients converge', async () => {
    const { redis, schema, instances: [p1, p2] } = await deployment(2)
    const name = docName()
    const a = stockClient(p1!.url, name)
    const b = stockClient(p2!.url, name)
    const a2 = stockClient(p1!.url, name)
    const ghost = stockClient(p1!.url, name)
    await Promise.all([synced(a.provider), synced(b.provider), synced(a2.provider), synced(ghost.provider)])
    a.text.insert(0, 'before ')
    a.provider.awareness.setLocalStateField('user', 'ada')
    ghost.provider.awareness.setLocalStateField('user', 'ghost')
    await waitFor(() => b.text.toString() === 'before ' && seesUser(b, a, 'ada') && seesUser(b, ghost, 'ghost'), 5_000, 'b sees a before the outage')
    expect(await httpStatus(p1!.http, '/readyz')).toBe(200)

    await redis.stop()
    await waitFor(async () => await httpStatus(p1!.http, '/readyz') === 503 && await httpStatus(p2!.http, '/readyz') === 503, 5_000, 'readyz 503')
    a.text.insert(a.text.length, 'A')
    b.text.insert(0, 'B')
    b.provider.awareness.setLocalStateField('user', 'bob')
    // a client that leaves during the outage: its removal cannot cross now
    ghost.provider.shouldConnect = false
    ;(ghost.provider.ws as unknown as WebSocket).terminate()
    // clients of one instance still reach each other
    await waitFor(() => a2.text.toString() === a.text.toString(), 5_000, 'a2 sees a during the outage')
    expect(a2.text.toString()).not.toContain('B')
    // a document first opened during the outage loads on both instances
    const fresh = docName()
    const [c1, c2] = [stockClient(p1!.url, fresh), stockClient(p2!.url, fresh)]
    await Promise.all([synced(c1.provider), synced(c2.provider)])
    c1.text.insert(0, 'one')
    c2.text.insert(0, 'two')

    await redis.start()
    await waitFor(async () => await httpStatus(p1!.http, '/readyz') === 200 && await httpStatus(p2!.http, '/readyz') === 200, 10_000, 'readyz 200 again')
    await waitFor(() => a.text.length === 9 && b.text.length === 9 && a2.text.length === 9, 10_000, 'all converge after the outage')
    expect(new Set([a.text.toString(), b.text.toString(), a2.text.toString()]).size).toBe(1)
    await waitFor(() => c1.text.length === 6 && c2.text.toString() === c1.text.toString(), 10_000, 'the fresh document converges')
    await waitFor(() => seesUser(a, b, 'bob') && seesUser(b, a, 'ada') && !others(b).has(ghost.doc.clientID), 10_000, 'awareness converges')
    // and the bus works again for new edits
    b.text.insert(0, '!')
    await waitFor(() => a.text.toString().startsWith('!'), 5_000, 'new edit crosses')
    // the outage shows in the metrics: one reconnect each, bus traffic both ways, lag observed
    for (const p of [p1!, p2!]) {
      const metrics = parsePrometheusText(await (await fetch(`${p.http}/metrics`)).text())
      expect(sampleValue(metrics, 'tandem_bus_reconnects_total')).toBeGreaterThanOrEqual(1)
      expect(sampleValue(metrics, 'tandem_bus_messages_total', { direction: 'out' })).toBeGreaterThan(0)
      expect(sampleValue(metrics, 'tandem_bus_messages_total', { direction: 'in' })).toBeGreaterThan(0)
      expect(sampleValue(metrics, 'tandem_bus_lag_seconds_count')).toBe(sampleValue(metrics, 'tandem_bus_messages_total', { direction: 'in' }))
    }
    // nothing lost: the store holds what every client shows
    for (const c of [a, b, a2, c1, c2]) c.provider.shouldConnect = false
    expect(await Promise.all([p1!.stop(), p2!.stop()])).toEqual([0, 0])
    expect(await storedText(schema, name)).toBe(a.text.toString())
  })

  it('a Redis Cluster works too, given any of its nodes', async () => {
    const url = await privateRedisCluster()
    const schema = pgSchema()
    const args = ['--persistence', `${POSTGRES_URL}?schema=${schema}`, '--redis', url, ...HEARTBEAT]
    const [p1, p2] = [await startTandem(args), await startTandem(args)]
    expect(p1.logs.some(line => line.includes('redis is a cluster'))).toBe(true)
    const name = docName()
    const a = stockClient(p1.url, name)
    const b = stockClient(p2.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'cluster')
    a.provider.awareness.setLocalStateField('user', 'ada')
    await waitFor(() => b.text.toString() === 'cluster' && seesUser(b, a, 'ada'), 5_000, 'b sees a through the cluster')
    a.provider.shouldConnect = false
    ;(a.provider.ws as unknown as WebSocket).terminate()
    await waitFor(() => !others(b).has(a.doc.clientID), 1_000, 'a removed on the other instance')
  })

  it('a Redis it cannot reach at start: exit 1 with one line', async () => {
    const schema = pgSchema()
    const result = spawnSync(process.execPath, ['dist/server/cli.js', '--port', '0', '--persistence', `${POSTGRES_URL}?schema=${schema}`, '--redis', 'redis://127.0.0.1:1'], { encoding: 'utf8', timeout: 20_000 })
    expect(result.status).toBe(1)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toMatch(/^tandem: Redis cannot be reached \(--redis\): cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/)
  })
})
