import * as Y from 'yjs'

type Decoded = ReturnType<typeof Y.decodeUpdate>
type Struct = Decoded['structs'][number]

/**
 * What an update needs before it integrates whole: for each client, the clock the document's
 * state must reach (`Y.getState(store, client) >= clock`). Empty when it integrates now.
 */
export type Needs = Map<number, number>

/** An update that can never integrate, whatever arrives: its items wait for each other. */
export class CyclicUpdateError extends Error {}

/**
 * What `decoded` needs of the document before Yjs integrates all of it: the content it refers to
 * (neighbours, parents, the author's earlier items, deleted ranges) that neither the document nor
 * the update itself holds. Mirrors Yjs (`integrateStructs`, `Item.getMissing`,
 * `readAndApplyDeleteSet`): an update with needs would leave structs or deletions pending in the
 * Y.Doc, where Yjs merges and retries them on every later update (quadratic); the caller holds it
 * instead, outside Yjs, until the document has what it needs.
 *
 * Throws CyclicUpdateError when items of the update depend on each other in a loop (only a forged
 * update does): Yjs would keep them pending for ever. Cost: O(n log n) in the update's structs.
 */
export function findNeeds (ydoc: Y.Doc, decoded: Decoded): Needs {
  const { store } = ydoc
  const needs: Needs = new Map()
  const need = (client: number, clock: number): void => {
    if ((needs.get(client) ?? -1) < clock) needs.set(client, clock)
  }
  const states = new Map<number, number>()
  const stateOf = (client: number): number => {
    let state = states.get(client)
    if (state === undefined) states.set(client, state = Y.getState(store, client))
    return state
  }

  // the update's structs that integrate (not Skips), per client in clock order
  const nodes: Array<Y.Item | Y.GC> = []
  const byClient = new Map<number, number[]>()
  /** For each node, the node before it in its author's run, or -1 (first of a run). */
  const previous: number[] = []
  let lastClient: number | null = null
  let lastNode = -1
  const seen = new Set<number>()
  for (const struct of decoded.structs as Struct[]) {
    const client = struct.id.client
    if (client !== lastClient) {
      // Yjs reads one run per client and keeps the last: a repeated client is forged
      if (seen.has(client)) throw new CyclicUpdateError(`client ${client} appears twice in the update`)
      seen.add(client)
      lastClient = client
      lastNode = -1
    }
    if (struct instanceof Y.Skip) {
      lastNode = -1
      continue
    }
    const index = nodes.length
    nodes.push(struct)
    previous.push(lastNode)
    let list = byClient.get(client)
    if (list === undefined) byClient.set(client, list = [])
    list.push(index)
    lastNode = index
  }

  /** The node holding `clock` of `client`, by binary search; -1 if the update lacks it. */
  const nodeAt = (client: number, clock: number): number => {
    const list = byClient.get(client)
    if (list === undefined) return -1
    let low = 0
    let high = list.length - 1
    while (low <= high) {
      const middle = (low + high) >>> 1
      const index = list[middle] as number
      const struct = nodes[index] as Y.Item | Y.GC
      if (clock < struct.id.clock) high = middle - 1
      else if (clock >= struct.id.clock + struct.length) low = middle + 1
      else return index
    }
    return -1
  }

  // edges: a node waits for the nodes of the update it refers to
  const waitsFor: number[] = new Array<number>(nodes.length).fill(0)
  const fromNode: number[] = []
  const toNode: number[] = []
  const edge = (from: number, to: number): void => {
    fromNode.push(from)
    toNode.push(to)
    waitsFor[to] = (waitsFor[to] as number) + 1
  }
  const refer = (node: number, owner: number, id: Y.ID | null): void => {
    // Yjs does not wait for the author's own items (they come in clock order)
    if (id === null || id.client === owner || id.clock < stateOf(id.client)) return
    const target = nodeAt(id.client, id.clock)
    if (target === -1) need(id.client, id.clock + 1)
    else edge(target, node)
  }
  for (let node = 0; node < nodes.length; node++) {
    const struct = nodes[node] as Y.Item | Y.GC
    const { client, clock } = struct.id
    const before = previous[node] as number
    if (before !== -1) edge(before, node)
    else if (clock > stateOf(client)) need(client, clock)
    if (struct instanceof Y.Item) {
      refer(node, client, struct.origin)
      refer(node, client, struct.rightOrigin)
      const parent = struct.parent as unknown
      if (parent instanceof Y.ID) refer(node, client, parent)
    }
  }

  // every node must be reachable once the needs are met, or the update waits for itself
  const offsets = new Array<number>(nodes.length + 1).fill(0)
  for (const from of fromNode) offsets[from + 1] = (offsets[from + 1] as number) + 1
  for (let i = 0; i < nodes.length; i++) offsets[i + 1] = (offsets[i + 1] as number) + (offsets[i] as number)
  const targets = new Array<number>(toNode.length)
  const fill = offsets.slice()
  for (let e = 0; e < fromNode.length; e++) {
    const from = fromNode[e] as number
    targets[fill[from] as number] = toNode[e] as number
    fill[from] = (fill[from] as number) + 1
  }
  const ready: number[] = []
  for (let node = 0; node < nodes.length; node++) if (waitsFor[node] === 0) ready.push(node)
  let reached = 0
  while (ready.length > 0) {
    const node = ready.pop() as number
    reached++
    for (let e = offsets[node] as number; e < (offsets[node + 1] as number); e++) {
      const to = targets[e] as number
      waitsFor[to] = (waitsFor[to] as number) - 1
      if (waitsFor[to] === 0) ready.push(to)
    }
  }
  if (reached < nodes.length) throw new CyclicUpdateError('items of the update refer to each other in a loop')

  // deletions apply up to the state reached after the update's structs; the rest would wait
  for (const [client, ranges] of decoded.ds.clients) {
    let end = stateOf(client)
    const list = byClient.get(client)
    if (list !== undefined && list.length > 0) {
      const last = nodes[list[list.length - 1] as number] as Y.Item | Y.GC
      end = Math.max(end, last.id.clock + last.length)
    }
    for (const { clock, len } of ranges) {
      const required = Math.max(clock + 1, clock + len)
      if (required > end) need(client, required)
    }
  }
  return needs
}

/** True when the document's state meets every need. */
export function needsMet (ydoc: Y.Doc, needs: Needs): boolean {
  for (const [client, clock] of needs) if (Y.getState(ydoc.store, client) < clock) return false
  return true
}
