import { WebSocketServer, type WebSocket } from 'ws'
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
  members.add(socket)
  socket.on('message', (data: Buffer, isBinary: boolean) => {
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
