import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { createServer as createHttpServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { Dialect } from './wire.js'
import { rssBytes } from './procfs.js'

const here = dirname(fileURLToPath(import.meta.url))
/** The repository root (this file runs from bench/dist/bench/). */
export const ROOT = join(here, '..', '..', '..')

/** One server under test: how to start it and how to talk to it. */
export interface ServerSpec {
  /** Short key, as given to --servers. */
  key: string
  /** Name with version, for the table. */
  label: string
  dialect: Dialect
  /** True for the Yjs peers Tandem is compared against. */
  peer: boolean
  /** Whether documents outlive their last client in durable storage. */
  storage: boolean
  /** What "stored" means for this server, for the storage row's footnote. */
  durability: string
  /** Acknowledges each update to its sender once durably stored (Tandem clients' `ack`). */
  acks?: boolean
  /** Command line and environment, given a free port and a fresh data folder. */
  command (port: number, dataDir: string): { args: string[], env: Record<string, string> }
}

/** The installed version of a package (read from node_modules: some packages do not export package.json). */
function versionOf (pkg: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version
}

/** The servers, in table order. */
export function serverSpecs (): ServerSpec[] {
  const legacyDir = join(ROOT, 'node_modules', 'y-websocket-legacy')
  const tandem: ServerSpec = {
    key: 'tandem',
    label: `Tandem ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}`,
    dialect: 'y-websocket',
    peer: false,
    storage: true,
    durability: 'each update relayed at once, and acknowledged to its sender once committed to SQLite (WAL); the figure counts acknowledgements',
    acks: true,
    command: (port, dataDir) => ({
      // abuse limits the peers do not have are lifted: every load-generator socket comes from
      // 127.0.0.1 (per-address cap), and the storage workload's single writer sends far more
      // than a person types (per-connection message rate); everything else stays at its default
      args: [join(ROOT, 'dist', 'server', 'cli.js'), '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--log-level', 'warn',
        '--max-connections-per-ip', '0', '--max-messages-per-second', '0'],
      env: {}
    })
  }
  return [
    tandem,
    {
      key: 'y-websocket',
      label: `y-websocket ${versionOf('y-websocket-legacy')}`,
      dialect: 'y-websocket',
      peer: true,
      storage: true,
      durability: 'each update queued to LevelDB (y-leveldb) after it is relayed; never awaited',
      command: (port, dataDir) => ({
        args: [join(legacyDir, 'bin', 'server.js')],
        env: { PORT: String(port), HOST: '127.0.0.1', YPERSISTENCE: dataDir }
      })
    },
    {
      key: 'hocuspocus',
      label: `Hocuspocus ${versionOf('@hocuspocus/server')}`,
      dialect: 'hocuspocus',
      peer: true,
      storage: true,
      durability: 'whole document written to SQLite 2-10 s after changes (debounced), relayed at once',
      command: (port, dataDir) => ({
        args: [join(here, 'hocuspocus-server.js')],
        env: { PORT: String(port), HOST: '127.0.0.1', DATA: dataDir }
      })
    },
    // not run by default: Tandem with a webhook receiver attached, and with one that is down
    tandemWithWebhooks(tandem, 'tandem-webhook', 'receiver attached', () => receiverUrl()),
    tandemWithWebhooks(tandem, 'tandem-webhook-down', 'receiver down', () => 'http://127.0.0.1:9/down'),
    floor('floor', 'ws floor', {}),
    // not run by default: another build of Tandem (TANDEM_BASE_CLI=/path/to/dist/server/cli.js),
    // for an A/B of two commits side by side in one sitting
    ...baseBuild(tandem),
    // not run by default: the floor with Tandem's own send path, for the bound on latency
    floor('floor-framed', 'ws floor, framed once', { FRAMED: '1' }),
    // not run by default: the floor keeping each socket's last awareness message (bytes only),
    // the least per connection a y-websocket-compatible server keeps (the idle workload)
    floor('floor-awareness', 'ws floor + awareness', { AWARENESS: '1' })
  ]
}

/** Tandem from another build, when TANDEM_BASE_CLI names its cli.js; same flags as `tandem`. */
function baseBuild (tandem: ServerSpec): ServerSpec[] {
  const cli = process.env.TANDEM_BASE_CLI
  if (cli === undefined || cli === '') return []
  return [{
    ...tandem,
    key: 'tandem-base',
    label: `Tandem, base build (${cli})`,
    command: (port, dataDir) => {
      const own = tandem.command(port, dataDir)
      return { ...own, args: [cli, ...own.args.slice(1)] }
    }
  }]
}

/**
 * Tandem with `--webhook-url`: every stored batch is a document.updated (debounced per document,
 * 2 s), sent to a receiver in this process that answers 204, or to a closed port.
 */
function tandemWithWebhooks (tandem: ServerSpec, key: string, what: string, url: () => string): ServerSpec {
  return {
    ...tandem,
    key,
    label: `${tandem.label}, webhooks (${what})`,
    command: (port, dataDir) => {
      const base = tandem.command(port, dataDir)
      return { args: [...base.args, '--webhook-url', url(), '--webhook-secret', 'bench'], env: base.env }
    }
  }
}

let receiver: { url: string } | undefined

/** A webhook receiver in the runner: reads each event and answers 204. */
function receiverUrl (): string {
  if (receiver !== undefined) return receiver.url
  const server = createHttpServer((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(204).end())
  })
  // a fixed port taken now (synchronously): the spec's command must return at once
  const port = 39_000 + Math.floor(Math.random() * 1_000)
  server.on('error', err => { process.stderr.write(`bench: the webhook receiver cannot listen on ${port}: ${err.message}\n`) })
  server.listen(port, '127.0.0.1')
  server.unref()
  receiver = { url: `http://127.0.0.1:${port}/hook` }
  return receiver.url
}

/** The bare relay (bench/floor-server.ts), with `env` for its variant. */
function floor (key: string, label: string, env: Record<string, string>): ServerSpec {
  return {
    key,
    label,
    dialect: 'raw',
    peer: false,
    storage: false,
    durability: 'none (relays only)',
    command: (port, dataDir) => ({
      args: [join(here, 'floor-server.js')],
      env: { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, ...env }
    })
  }
}

/** A free TCP port on loopback (bound, then released for the server to take). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      probe.close(() => resolve(port))
    })
  })
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A started server process. */
export class RunningServer {
  private output = ''
  private exited = false
  /** The inspector's URL, for a server started with --inspect (as it printed it). */
  inspector: string | undefined

  constructor (
    readonly spec: ServerSpec,
    readonly port: number,
    readonly dataDir: string,
    readonly child: ChildProcess
  ) {
    const keep = (chunk: Buffer): void => {
      const text = chunk.toString()
      this.inspector ??= /Debugger listening on (ws:\/\/\S+)/.exec(text)?.[1]
      this.output = (this.output + text).slice(-4000)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    child.once('exit', () => { this.exited = true })
  }

  /** ws://127.0.0.1:port */
  get url (): string {
    return `ws://127.0.0.1:${this.port}`
  }

  /** Resident set size of the server process in bytes (Linux /proc). */
  rss (): number {
    return rssBytes(this.child.pid as number)
  }

  /** The last lines the server printed, for error messages. */
  tail (): string {
    return this.output.trim().split('\n').slice(-8).join('\n')
  }

  /** SIGTERM, then SIGKILL after 5 s; removes the data folder. */
  async stop (): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGTERM')
      for (let i = 0; i < 100 && !this.exited; i++) await sleep(50)
      if (!this.exited) {
        this.child.kill('SIGKILL')
        for (let i = 0; i < 40 && !this.exited; i++) await sleep(50)
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true })
  }
}

/**
 * Starts a server on a free loopback port with a fresh data folder, and waits until it accepts
 * TCP connections (at most 15 s). `nodeArgs` go before the script (e.g. --cpu-prof); `cpus`
 * (a taskset list, e.g. '0') confines the server, every thread of it, to those CPUs. `prepare`
 * runs first, on the fresh data folder (the big-document workload stores its document there).
 */
export async function startServer (spec: ServerSpec, nodeArgs: string[] = [], cpus?: string, prepare?: (dataDir: string) => Promise<void>): Promise<RunningServer> {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), `bench-${spec.key}-`))
  try {
    await prepare?.(dataDir)
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  }
  const { args, env } = spec.command(port, dataDir)
  const command = [process.execPath, ...nodeArgs, ...args]
  if (cpus !== undefined) command.unshift('taskset', '-c', cpus)
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const server = new RunningServer(spec, port, dataDir, child)
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    if (await accepts(port)) return server
    await sleep(50)
  }
  await server.stop()
  throw new Error(`${spec.label} did not start on port ${port}:\n${server.tail()}`)
}
