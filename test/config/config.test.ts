import { describe, expect, test } from 'vitest'
import { readFileSync } from 'node:fs'
import { resolveOptions, DEFAULT_OPTIONS } from '../../server/config/config.js'
import { parseCli, FLAGS } from '../../server/config/cli-options.js'
import { ERRORS } from '../../shared/errors.js'

describe('options', () => {
  test('defaults, and 0 stays 0', () => {
    const options = resolveOptions({ port: 0, reconnectGraceMs: 0 })
    expect(options.port).toBe(0)
    expect(options.reconnectGraceMs).toBe(0)
    expect(options.heartbeatTimeoutMs).toBe(DEFAULT_OPTIONS.heartbeatTimeoutMs)
    expect(Object.isFrozen(options)).toBe(true)
  })
  test('invalid values are refused with a coded error naming the option', () => {
    expect(() => resolveOptions({ heartbeatIntervalMs: 0 })).toThrow(/heartbeatIntervalMs/)
    expect(() => resolveOptions({ port: 1.5 })).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INVALID_OPTION' }))
    expect(() => resolveOptions({ commitDelayMs: -1 })).toThrow(/commitDelayMs/)
    expect(() => resolveOptions({ commitDelayMs: 1_001 })).toThrow(/commitDelayMs/)
    expect(resolveOptions({ commitDelayMs: 0 }).commitDelayMs).toBe(0)
  })
  test('flags win over environment variables', () => {
    const options = parseCli(['--port', '4000'], { PORT: '5000', TANDEM_LOCK_TTL: '1000', TANDEM_ALLOWED_ORIGINS: 'http://a, http://b' })
    expect(options.port).toBe(4000)
    expect(options.lockTtlMs).toBe(1000)
    expect(options.allowedOrigins).toEqual(['http://a', 'http://b'])
  })
})

describe('docs agree with the code', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  test('every flag is in the README flag table with its variable', () => {
    for (const [flag, spec] of Object.entries(FLAGS)) {
      expect(readme).toMatch(new RegExp(`\\| --${flag} \\| ${spec.env} \\|`))
    }
  })
  test('every error code is in the README errors table', () => {
    for (const code of Object.keys(ERRORS)) expect(readme).toContain(`\`${code}\``)
  })
})
