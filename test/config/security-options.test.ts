import { describe, expect, test } from 'vitest'
import { parseCli, usage } from '../../server/config/cli-options.js'
import { resolveOptions, DEFAULT_OPTIONS, type ServerOptions } from '../../server/config/config.js'

describe('limit options', () => {
  test('have production defaults', () => {
    const options = resolveOptions()
    expect(options).toMatchObject({
      maxMessageSize: 16 * 1024 * 1024,
      maxMessagesPerSecond: 100,
      messageBurst: 1_000,
      maxConnectionsPerIp: 100,
      maxDocuments: 10_000,
      maxBufferedBytes: 16 * 1024 * 1024,
      authTimeoutMs: 10_000
    })
    expect(DEFAULT_OPTIONS.maxMessagesPerSecond).toBe(100)
  })

  test('every limit has a flag and an environment variable; the flag wins', () => {
    const options = parseCli(
      ['--max-messages-per-second', '5', '--message-burst', '50', '--max-connections-per-ip', '0', '--auth-timeout', '250', '--max-documents', '3'],
      { TANDEM_MAX_DOCUMENTS: '7', TANDEM_MAX_BUFFERED_BYTES: '65536', TANDEM_ADMIN_TOKEN: 'tok-123', TANDEM_ALLOWED_ORIGINS: 'https://a.example, https://b.example' }
    )
    expect(options).toMatchObject({
      maxMessagesPerSecond: 5, messageBurst: 50, maxConnectionsPerIp: 0, authTimeoutMs: 250, maxDocuments: 3,
      maxBufferedBytes: 65_536, adminToken: 'tok-123', allowedOrigins: ['https://a.example', 'https://b.example']
    })
    for (const flag of ['--max-messages-per-second', '--message-burst', '--max-connections-per-ip', '--max-documents', '--max-buffered-bytes', '--auth-timeout']) {
      expect(usage()).toContain(flag)
    }
  })

  test('bad values are refused with TANDEM_ERR_INVALID_OPTION', () => {
    expect(() => parseCli(['--max-documents', 'many'], {})).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INVALID_OPTION' }))
    const bad: ServerOptions[] = [
      { messageBurst: 0 }, { maxMessagesPerSecond: -1 }, { maxBufferedBytes: 10 }, { authTimeoutMs: 1.5 },
      { adminToken: '' }, { authenticate: 'yes' as unknown as ServerOptions['authenticate'] }
    ]
    for (const options of bad) {
      expect(() => resolveOptions(options), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INVALID_OPTION' }))
    }
  })
})
