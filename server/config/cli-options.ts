import { parseArgs } from 'node:util'
import { TandemError } from '../../shared/errors.js'
import type { ServerOptions } from './config.js'

type Kind = 'int' | 'string' | 'list'

/** Every flag of the `tandem` binary: its option, its environment variable, its kind. */
export const FLAGS = Object.freeze({
  port: { option: 'port', env: 'PORT', kind: 'int' },
  host: { option: 'host', env: 'HOST', kind: 'string' },
  data: { option: 'dataDir', env: 'TANDEM_DATA', kind: 'string' },
  persistence: { option: 'persistence', env: 'TANDEM_PERSISTENCE', kind: 'string' },
  'sqlite-durability': { option: 'sqliteDurability', env: 'TANDEM_SQLITE_DURABILITY', kind: 'string' },
  redis: { option: 'redis', env: 'REDIS_URL', kind: 'string' },
  'redis-prefix': { option: 'redisPrefix', env: 'TANDEM_REDIS_PREFIX', kind: 'string' },
  'auth-secret': { option: 'authSecret', env: 'TANDEM_AUTH_SECRET', kind: 'string' },
  'admin-token': { option: 'adminToken', env: 'TANDEM_ADMIN_TOKEN', kind: 'string' },
  'heartbeat-interval': { option: 'heartbeatIntervalMs', env: 'TANDEM_HEARTBEAT_INTERVAL', kind: 'int' },
  'heartbeat-timeout': { option: 'heartbeatTimeoutMs', env: 'TANDEM_HEARTBEAT_TIMEOUT', kind: 'int' },
  'reconnect-grace': { option: 'reconnectGraceMs', env: 'TANDEM_RECONNECT_GRACE', kind: 'int' },
  'session-idle-timeout': { option: 'sessionIdleTimeoutMs', env: 'TANDEM_SESSION_IDLE_TIMEOUT', kind: 'int' },
  'revocation-ttl': { option: 'revocationTtlMs', env: 'TANDEM_REVOCATION_TTL', kind: 'int' },
  'idle-after': { option: 'idleAfterMs', env: 'TANDEM_IDLE_AFTER', kind: 'int' },
  'lock-ttl': { option: 'lockTtlMs', env: 'TANDEM_LOCK_TTL', kind: 'int' },
  'lock-min-ttl': { option: 'lockMinTtlMs', env: 'TANDEM_LOCK_MIN_TTL', kind: 'int' },
  'max-locks-per-session': { option: 'maxLocksPerSession', env: 'TANDEM_MAX_LOCKS_PER_SESSION', kind: 'int' },
  'max-message-size': { option: 'maxMessageSize', env: 'TANDEM_MAX_MESSAGE_SIZE', kind: 'int' },
  'max-sync-size': { option: 'maxSyncSize', env: 'TANDEM_MAX_SYNC_SIZE', kind: 'int' },
  'allowed-origins': { option: 'allowedOrigins', env: 'TANDEM_ALLOWED_ORIGINS', kind: 'list' },
  'trust-proxy': { option: 'trustProxy', env: 'TANDEM_TRUST_PROXY', kind: 'list' },
  'auth-timeout': { option: 'authTimeoutMs', env: 'TANDEM_AUTH_TIMEOUT', kind: 'int' },
  'max-messages-per-second': { option: 'maxMessagesPerSecond', env: 'TANDEM_MAX_MESSAGES_PER_SECOND', kind: 'int' },
  'message-burst': { option: 'messageBurst', env: 'TANDEM_MESSAGE_BURST', kind: 'int' },
  'max-connections-per-ip': { option: 'maxConnectionsPerIp', env: 'TANDEM_MAX_CONNECTIONS_PER_IP', kind: 'int' },
  'max-documents': { option: 'maxDocuments', env: 'TANDEM_MAX_DOCUMENTS', kind: 'int' },
  'max-buffered-bytes': { option: 'maxBufferedBytes', env: 'TANDEM_MAX_BUFFERED_BYTES', kind: 'int' },
  'deleted-retention': { option: 'deletedRetentionMs', env: 'TANDEM_DELETED_RETENTION', kind: 'int' },
  'shutdown-timeout': { option: 'shutdownTimeoutMs', env: 'TANDEM_SHUTDOWN_TIMEOUT', kind: 'int' },
  'version-interval': { option: 'versionIntervalMs', env: 'TANDEM_VERSION_INTERVAL', kind: 'int' },
  'version-retention': { option: 'versionRetention', env: 'TANDEM_VERSION_RETENTION', kind: 'int' },
  'webhook-url': { option: 'webhookUrls', env: 'TANDEM_WEBHOOK_URL', kind: 'list' },
  'webhook-secret': { option: 'webhookSecret', env: 'TANDEM_WEBHOOK_SECRET', kind: 'string' },
  'webhook-debounce': { option: 'webhookDebounceMs', env: 'TANDEM_WEBHOOK_DEBOUNCE', kind: 'int' },
  'webhook-backoff': { option: 'webhookBackoffMs', env: 'TANDEM_WEBHOOK_BACKOFF', kind: 'int' },
  'webhook-timeout': { option: 'webhookTimeoutMs', env: 'TANDEM_WEBHOOK_TIMEOUT', kind: 'int' },
  'log-level': { option: 'logLevel', env: 'LOG_LEVEL', kind: 'string' }
} satisfies Record<string, { option: keyof ServerOptions, env: string, kind: Kind }>)

/**
 * Parses argv and the environment into ServerOptions; a flag wins over its variable. Throws a
 * TandemError naming the flag (or variable) for anything unknown or malformed.
 */
export function parseCli (argv: readonly string[], env: NodeJS.ProcessEnv): ServerOptions & { help: boolean } {
  let values: Record<string, string | boolean | undefined>
  try {
    const config = Object.fromEntries(Object.keys(FLAGS).map(flag => [flag, { type: 'string' as const }]))
    ;({ values } = parseArgs({ args: [...argv], options: { ...config, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }))
  } catch (err) {
    throw new TandemError('TANDEM_ERR_INVALID_OPTION', (err as Error).message.split('\n')[0], { cause: err })
  }
  const options: Record<string, unknown> = {}
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const fromFlag = values[flag]
    const raw = typeof fromFlag === 'string' ? fromFlag : env[spec.env]
    if (raw === undefined || (raw === '' && typeof fromFlag !== 'string')) continue
    const source = typeof fromFlag === 'string' ? `--${flag}` : spec.env
    options[spec.option] = convert(raw, spec.kind, source)
  }
  return { ...(options as ServerOptions), help: values.help === true }
}

function convert (raw: string, kind: Kind, source: string): unknown {
  if (kind === 'string') return raw
  if (kind === 'list') return raw.split(',').map(s => s.trim()).filter(s => s !== '')
  if (!/^\d+$/.test(raw)) throw new TandemError('TANDEM_ERR_INVALID_OPTION', `${source} is ${JSON.stringify(raw)}, expected a whole number`)
  return Number(raw)
}

/** The --help text. */
export function usage (): string {
  const lines = Object.entries(FLAGS).map(([flag, spec]) => `  --${flag.padEnd(24)} ${spec.env}`)
  return `Usage: tandem [flags]\n\nFlags (each also read from the environment variable shown; the flag wins):\n${lines.join('\n')}\n`
}
