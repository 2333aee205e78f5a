import { WebSocketServer, type WebSocket } from 'ws'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as encoding from 'lib0/encoding'
import { SharedFrame } from '../server/transport/socket.js'
import { sendFramedOnce } from '../server/transport/ws-frame.js'

/**
 * The floor: a bare `ws` server that relays every binary frame to the other sockets on the same
 * path, with no Yjs, no storage and no protocol. Whatever a real server costs above this is the
 * price of being a collaboration server. PORT and HOST from the environment; with FRAMED=1 each
 * frame is framed once for all its recipients, as Tandem sends its broadcasts (the cheapest send
 * path `ws` allows), instead of by `send` for each.
 */
const framedOnce = process.env.FRAMED === '1'
/**
 * With AWARENESS=1, the floor also keeps each socket's last awareness message (a copy of its
 * bytes, nothing parsed) and sends those of the others to a socket when it opens: the least a
 * server keeps per idle connection to be wire-compatible with y-websocket's awareness (a joiner
 * must learn who is there). What it costs above the bare floor is the protocol's own price.
 */
const keepAwareness = process.env.AWARENESS === '1'
const lastAwareness = Symbol('lastAwareness')
type Kept = WebSocket & { [lastAwareness]?: Uint8Array }
/**
 * The big-document workload's floor (bench/big.ts): a document stored in DATA_DIR as
 * `<name>.pieces` (causal pieces of about 256 KiB, as Tandem sends a big document, each after its
 * 4-byte length) answers a client's sync step 1 with those pieces as sync updates, then an empty
 * step 2: the least any server does to hand a stock client a big document, with no Yjs at all.
 */
const dataDir = process.env.DATA_DIR
const stored = new Map<string, Uint8Array[] | null>()
function piecesOf (path: string): Uint8Array[] | null {
  if (dataDir === undefined) return null
  let pieces = stored.get(path)
  if (pieces !== undefined) return pieces
  const file = join(dataDir, `${decodeURIComponent(path.slice(1))}.pieces`)
  pieces = null
  if (existsSync(file)) {
    const bytes = readFileSync(file)
    pieces = []
    for (let at = 0; at < bytes.length;) {
      const length = bytes.readUInt32LE(at)
      pieces.push(frameOf(2, bytes.subarray(at + 4, at + 4 + length)))
      at += 4 + length
    }
    pieces.push(frameOf(1, Uint8Array.of(0, 0)))
  }
  stored.set(path, pieces)
  return pieces
}
function frameOf (syncType: number, update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0)
  encoding.writeVarUint(encoder, syncType)
  encoding.writeVarUint8Array(encoder, update)
  return encoding.toUint8Array(encoder)
}
const rooms = new Map<string, Set<WebSocket>>()
const wss = new WebSocketServer({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0), perMessageDeflate: false, clientTracking: false })

wss.on('connection', (socket, request) => {
  const path = request.url ?? '/'
  let room = rooms.get(path)
  if (room === undefined) {
    room = new Set()
    rooms.set(path, room)
  }
  const members = room
  if (keepAwareness) {
    for (const other of members as Set<Kept>) {
      const kept = other[lastAwareness]
      if (kept !== undefined) socket.send(kept)
    }
  }
  members.add(socket)
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (keepAwareness && isBinary && data[0] === 1) (socket as Kept)[lastAwareness] = new Uint8Array(data)
    // a sync step 1 to a stored big document: its pieces
    if (isBinary && data[0] === 0 && data[1] === 0) for (const piece of piecesOf(path) ?? []) socket.send(piece)
    if (framedOnce && isBinary) {
      const frame = new SharedFrame(data)
      for (const other of members) if (other !== socket && other.readyState === 1) sendFramedOnce(other, frame)
      return
    }
    for (const other of members) if (other !== socket && other.readyState === 1) other.send(data, { binary: isBinary })
  })
  socket.on('close', () => {
    members.delete(socket)
    if (members.size === 0) rooms.delete(path)
  })
  socket.on('error', () => socket.terminate())
})
wss.on('listening', () => console.log(`floor listening on ${JSON.stringify(wss.address())}`))
process.once('SIGTERM', () => wss.close(() => process.exit(0)))
