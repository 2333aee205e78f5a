import { describe, expect, onTestFinished, test } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../../server/store/open.js'
import { resolveOptions, DEFAULT_OPTIONS } from '../../server/config/config.js'
import { parseCli, FLAGS } from '../../server/config/cli-options.js'

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
  test('--sqlite-durability: normal by default, full on request, anything else refused', async () => {
    expect(resolveOptions({}).sqliteDurability).toBe('normal')
    expect(parseCli(['--sqlite-durability', 'full'], {}).sqliteDurability).toBe('full')
    expect(parseCli([], { TANDEM_SQLITE_DURABILITY: 'full' }).sqliteDurability).toBe('full')
    expect(() => resolveOptions({ sqliteDurability: 'fast' as 'full' })).toThrow(/sqliteDurability/)
    // a store opened with full durability stores and loads like the default one
    const dir = mkdtempSync(join(tmpdir(), 'tandem-durability-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const store = await openStore({ persistence: 'sqlite', dataDir: dir, sqliteDurability: 'full' })
    await store.append([{ name: 'doc', update: Uint8Array.of(1, 2, 3) }])
    expect(await store.load('doc')).toEqual([Uint8Array.of(1, 2, 3)])
    await store.close()
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
})
