import { pino, type DestinationStream, type Logger } from 'pino'

/**
 * The process logger: JSON lines, or pino-pretty when writing to a terminal. Tokens never reach
 * the logs: the `token` query parameter and authorization headers are redacted (a second line of
 * defence: no code logs them; test/log-secrets.test.ts checks both). `destination` replaces stdout.
 */
export function createLogger (level: string, pretty = process.stdout.isTTY === true, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { name: 'tandem' },
    redact: ['token', 'req.headers.authorization', 'headers.authorization', 'headers["sec-websocket-protocol"]'],
    transport: pretty && destination === undefined ? { target: 'pino-pretty', options: { colorize: true } } : undefined
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}
