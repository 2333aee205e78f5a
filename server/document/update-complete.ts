import * as Y from 'yjs'

type Decoded = ReturnType<typeof Y.decodeUpdate>

/**
 * Names the first thing an update refers to that neither the document nor the update has, or
 * returns null when the update would integrate whole. A client over WebSocket may send such an
 * update (Yjs keeps it pending until the rest arrives, and the server does not store it until
 * then), but a request of the document API must not be answered "stored" for content that is not:
 * it is refused instead.
 */
export function findMissingDependency (ydoc: Y.Doc, decoded: Decoded): string | null {
  // clocks covered by the update, per client: [start, end) runs in the order they come
  const runs = new Map<number, Array<[number, number]>>()
  for (const struct of decoded.structs) {
    if (struct instanceof Y.Skip) return `a gap in client ${struct.id.client}'s updates at clock ${struct.id.clock}`
    let list = runs.get(struct.id.client)
    if (list === undefined) runs.set(struct.id.client, list = [])
    list.push([struct.id.clock, struct.id.clock + struct.length])
  }
  const has = (client: number, clock: number): boolean =>
    clock < Y.getState(ydoc.store, client) || (runs.get(client)?.some(([start, end]) => start <= clock && clock < end) ?? false)

  for (const [client, list] of runs) {
    const start = (list[0] as [number, number])[0]
    if (start > Y.getState(ydoc.store, client)) return `client ${client}'s updates before clock ${start}`
  }
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Item)) continue
    const refs = [struct.origin, struct.rightOrigin, struct.parent instanceof Y.ID ? struct.parent : null]
    for (const ref of refs) {
      if (ref !== null && !has(ref.client, ref.clock)) return `item ${ref.client}:${ref.clock}`
    }
  }
  for (const [client, ranges] of decoded.ds.clients) {
    for (const { clock, len } of ranges) {
      if (len > 0 && !has(client, clock + len - 1)) return `item ${client}:${clock + len - 1} (deleted by the update)`
    }
  }
  return null
}
