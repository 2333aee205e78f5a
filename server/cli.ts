#!/usr/bin/env node
import { parseCli, usage } from './config/cli-options.js'
import { createServer, type TandemServer } from './server.js'

/** The `tandem` binary: parse flags, listen, shut down gracefully on SIGTERM and SIGINT. */
async function main (): Promise<void> {
  let server: TandemServer
  try {
    const { help, ...options } = parseCli(process.argv.slice(2), process.env)
    if (help) {
      process.stdout.write(usage())
      return
    }
    server = createServer(options)
    await server.listen()
  } catch (err) {
    process.stderr.write(`tandem: ${(err as Error).message}\n`)
    process.exitCode = 1
    return
  }
  const stop = (signal: string): void => {
    server.logger.info({ signal }, 'shutting down')
    server.close().then(() => process.exit(0), (err: unknown) => {
      server.logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

void main()
