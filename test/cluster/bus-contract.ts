import { describe, expect, onTestFinished, test } from 'vitest'
import type { Bus, BusHandlers, BusMessage } from '../../server/cluster/bus.js'
import { docName, waitFor } from '../support/helpers.js'

/** A bus under test with what it reported. */
interface Probe {
  bus: Bus
  messages: BusMessage[]
  down: string[]
  readyCount: number
}

/** Makes, for one test, buses that can hear each other (same hub, same Redis prefix). */
export type BusFactory = () => Promise<() => Bus>

async function started (make: () => Bus): Promise<Probe> {
  const probe: Probe = { bus: make(), messages: [], down: [], readyCount: 0 }
  const handlers: BusHandlers = {
    message: m => probe.messages.push(m),
    ready: () => { probe.readyCount++ },
    nodeDown: id => probe.down.push(id)
  }
  await probe.bus.start(handlers)
  onTestFinished(() => probe.bus.close())
  return probe
}

/** The Bus contract, run against every implementation. */
export function busContract (kind: string, factory: BusFactory, enabled = true): void {
  const it = enabled ? test : test.skip
  describe(`Bus contract: ${kind}`, () => {
    it('delivers to subscribed peers, in order, never back to the sender', async () => {
      const make = await factory()
      const [a, b, c] = [await started(make), await started(make), await started(make)]
      expect(a.bus.ready && b.bus.ready && c.bus.ready).toBe(true)
      expect(new Set([a.bus.nodeId, b.bus.nodeId, c.bus.nodeId]).size).toBe(3)
      const doc = docName()
      await Promise.all([a.bus.subscribe(doc), b.bus.subscribe(doc)])
      for (let i = 0; i < 20; i++) a.bus.publish({ type: 'update', from: a.bus.nodeId, doc, update: Uint8Array.of(i) })
      a.bus.publish({ type: 'sync', from: a.bus.nodeId, doc, to: '', stateVector: Uint8Array.of(0) })
      await waitFor(() => b.messages.length === 21, 5_000, 'b hears all')
      expect(b.messages.slice(0, 20).map(m => m.type === 'update' ? m.update[0] : -1)).toEqual([...Array(20).keys()])
      expect(b.messages[20]).toEqual({ type: 'sync', from: a.bus.nodeId, doc, to: '', stateVector: Uint8Array.of(0) })
      // c did not subscribe; a must not hear its own echo: a marker from b proves delivery is done
      b.bus.publish({ type: 'awareness', from: b.bus.nodeId, doc, update: Uint8Array.of(9) })
      await waitFor(() => a.messages.length === 1, 5_000, 'a hears b')
      expect(a.messages[0]?.from).toBe(b.bus.nodeId)
      expect(c.messages).toEqual([])
    })

    it('stops delivering after unsubscribe', async () => {
      const make = await factory()
      const [a, b] = [await started(make), await started(make)]
      const [doc, other] = [docName(), docName()]
      await Promise.all([b.bus.subscribe(doc), b.bus.subscribe(other)])
      b.bus.unsubscribe(doc)
      await b.bus.subscribe(other) // a round trip after the unsubscribe
      a.bus.publish({ type: 'update', from: a.bus.nodeId, doc, update: Uint8Array.of(1) })
      a.bus.publish({ type: 'update', from: a.bus.nodeId, doc: other, update: Uint8Array.of(2) })
      await waitFor(() => b.messages.length > 0, 5_000, 'b hears the other doc')
      expect(b.messages.map(m => m.doc)).toEqual([other])
    })

    it('reports a peer it heard from as down once that peer is gone', async () => {
      const make = await factory()
      const [a, b] = [await started(make), await started(make)]
      const doc = docName()
      await b.bus.subscribe(doc)
      a.bus.publish({ type: 'awareness', from: a.bus.nodeId, doc, update: Uint8Array.of(0) })
      await waitFor(() => b.messages.length === 1, 5_000, 'b hears a')
      await a.bus.close()
      await waitFor(() => b.down.includes(a.bus.nodeId), 5_000, 'b reports a down')
      expect(b.down).toEqual([a.bus.nodeId])
    })

    it('close is safe to call twice; a closed bus publishes nothing', async () => {
      const make = await factory()
      const [a, b] = [await started(make), await started(make)]
      const doc = docName()
      await b.bus.subscribe(doc)
      await a.bus.close()
      await a.bus.close()
      expect(a.bus.ready).toBe(false)
      a.bus.publish({ type: 'update', from: a.bus.nodeId, doc, update: Uint8Array.of(1) })
      const marker = await started(make)
      marker.bus.publish({ type: 'update', from: marker.bus.nodeId, doc, update: Uint8Array.of(2) })
      await waitFor(() => b.messages.length > 0, 5_000, 'marker')
      expect(b.messages.map(m => m.from)).toEqual([marker.bus.nodeId])
    })
  })
}
