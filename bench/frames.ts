import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, WebSocket } from 'ws'
import { sendFramedOnce } from '../server/transport/ws-frame.js'
import { SharedFrame } from '../server/transport/socket.js'

/**
 * `npm run bench:frames -- [SOCKETS] [BROADCASTS] [ROUNDS]`: the server's CPU per delivery for a
 * broadcast sent with `ws`'s `send` to every socket against one framed once (server/ws-frame.ts),
 * in alternating rounds in one process; the receiving sockets live in a child process. Defaults
 * 50 sockets, 4,000 broadcasts of 40 bytes a round, 12 rounds.
 */

async function receiver (count: number, url: string): Promise<void> {
  let received = 0
  for (let i = 0; i < count; i++) new WebSocket(url).on('message', () => { received++ })
  process.on('message', () => process.send?.(received))
}

async function main (): Promise<void> {
  const [socketsArg = '50', broadcastsArg = '4000', roundsArg = '12'] = process.argv.slice(2)
  const [count, broadcasts, rounds] = [Number(socketsArg), Number(broadcastsArg), Number(roundsArg)]
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  await new Promise(resolve => wss.once('listening', resolve))
  const child = fork(fileURLToPath(import.meta.url), ['--receiver', String(count), `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`])
  while (wss.clients.size < count) await new Promise(resolve => setTimeout(resolve, 20))
  const sockets = [...wss.clients]
  const variants: Array<[string, (data: Buffer) => void]> = [
    ['send', data => { for (const socket of sockets) socket.send(data) }],
    ['framed once', data => {
      const frame = new SharedFrame(data)
      for (const socket of sockets) sendFramedOnce(socket, frame)
    }]
  ]
  const results = new Map<string, number[]>(variants.map(([name]) => [name, []]))
  for (let round = 0; round < rounds; round++) {
    for (const [name, broadcast] of round % 2 === 0 ? variants : [...variants].reverse()) {
      const start = process.cpuUsage()
      for (let i = 0; i < broadcasts; i++) {
        broadcast(Buffer.alloc(40, i))
        // let the writes go out now and then, as a server's event loop would
        if (i % 20 === 19) await new Promise(resolve => setTimeout(resolve, 1))
      }
      const used = process.cpuUsage(start)
      results.get(name)?.push((used.user + used.system) / (broadcasts * count))
    }
  }
  const received = await new Promise<number>(resolve => { child.once('message', resolve); child.send('count') })
  child.kill()
  wss.close()
  console.log(`${count} sockets, ${broadcasts} broadcasts of 40 bytes a round, ${rounds} rounds; ${received} of ${rounds * 2 * broadcasts * count} frames received`)
  for (const [name, figures] of results) {
    const sorted = [...figures].sort((a, b) => a - b)
    console.log(`${name.padEnd(12)} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} µs/delivery (min ${sorted[0]!.toFixed(2)}, max ${sorted[sorted.length - 1]!.toFixed(2)})`)
  }
}

if (process.argv[2] === '--receiver') await receiver(Number(process.argv[3]), process.argv[4]!)
else await main()
