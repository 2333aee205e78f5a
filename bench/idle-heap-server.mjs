// The server side of idle-heap.mjs: a Tandem server of the build in argv[2] (its dist/), in this
// process (run with --expose-gc), answering its parent's requests for memory figures. With
// `floor` for the build: the bare relay of floor-server.ts (same `ws`, same options) instead.
import v8 from 'node:v8'
import inspector from 'node:inspector'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [dist, store = 'sqlite'] = process.argv.slice(2)
const bare = /floor(-awareness)?$/.exec(dist)
const port = bare !== null ? await floor(bare[1] !== undefined) : await tandem()

async function tandem () {
  const { createServer } = await import(join(dist, 'server', 'index.js'))
  const options = { port: 0, host: '127.0.0.1', logLevel: 'silent', maxConnectionsPerIp: 0 }
  if (store === 'memory') options.persistence = 'memory'
  else options.dataDir = mkdtempSync(join(tmpdir(), 'idle-heap-'))
  const server = createServer(options)
  await server.listen()
  return server.address.port
}

/**
 * floor-server.ts's relay (without its framed-once variant), for the bare `ws` cost; with
 * `keepAwareness` (`floor-awareness`) as its AWARENESS=1 variant: each socket's last awareness
 * message kept as bytes and sent to joiners.
 */
async function floor (keepAwareness) {
  const { createRequire } = await import('node:module')
  const { WebSocketServer } = createRequire(import.meta.url)('ws')
  const rooms = new Map()
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, clientTracking: false })
  wss.on('connection', (socket, request) => {
    const path = request.url ?? '/'
    let room = rooms.get(path)
    if (room === undefined) rooms.set(path, room = new Set())
    const members = room
    if (keepAwareness) for (const other of members) if (other.lastAwareness !== undefined) socket.send(other.lastAwareness)
    members.add(socket)
    socket.on('message', (data, isBinary) => {
      if (keepAwareness && isBinary && data[0] === 1) socket.lastAwareness = new Uint8Array(data)
      for (const other of members) if (other !== socket && other.readyState === 1) other.send(data, { binary: isBinary })
    })
    socket.on('close', () => {
      members.delete(socket)
      if (members.size === 0) rooms.delete(path)
    })
    socket.on('error', () => socket.terminate())
  })
  await new Promise(resolve => wss.once('listening', resolve))
  return wss.address().port
}

const inspect = new inspector.Session()
inspect.connect()
const post = (method, params) => new Promise((resolve, reject) => inspect.post(method, params, (err, res) => err ? reject(err) : resolve(res)))

/**
 * Heap and RSS as they are (garbage included), then after full collections, with where the
 * collected RSS is: each heap space's pages in memory, and memory outside the heap (`external`:
 * array buffers and other memory V8 was told of).
 */
function memory () {
  const raw = process.memoryUsage()
  for (let i = 0; i < 4; i++) global.gc()
  const collected = process.memoryUsage()
  const spaces = {}
  for (const space of v8.getHeapSpaceStatistics()) spaces[space.space_name] = space.physical_space_size
  return { rawHeap: raw.heapUsed, rawRss: raw.rss, heap: collected.heapUsed, rss: collected.rss, external: collected.external, spaces }
}

process.on('message', async msg => {
  if (msg.cmd === 'memory') process.send(memory())
  if (msg.cmd === 'snapshot') process.send({ file: v8.writeHeapSnapshot(msg.file) })
  // every allocation, also what GC collected since: the garbage each connection makes
  if (msg.cmd === 'sample') process.send(await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }))
  if (msg.cmd === 'sampled') {
    const { profile } = await post('HeapProfiler.stopSampling')
    writeFileSync(msg.file, JSON.stringify(profile))
    process.send({ file: msg.file })
  }
  if (msg.cmd === 'exit') process.exit(0)
})
process.send({ port })
