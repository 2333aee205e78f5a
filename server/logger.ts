import { pino, type Logger } from 'pino'

/**
 * The process logger: JSON lines, or pino-pretty when writing to a terminal. Tokens never reach
 * the logs: the `token` query parameter and authorization headers are redacted.
 */
export function createLogger (level: string, pretty = process.stdout.isTTY === true): Logger {
  return pino({
    level,
    base: { name: 'tandem' },
    redact: ['token', 'req.headers.authorization', 'headers.authorization', 'headers["sec-websocket-protocol"]'],
    transport: pretty ? { target: 'pino-pretty', options: { colorize: true } } : undefined
  })
}
