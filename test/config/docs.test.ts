// The README's error table is generated from the registry (shared/errors.ts) and checked whole:
// `npm run docs:errors` rewrites it (UPDATE_DOCS=1), as `vitest -u` rewrites a snapshot.
import { describe, expect, test } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { ERRORS } from '../../shared/errors.js'
import { CloseCode } from '../../shared/constants.js'

const README = new URL('../../README.md', import.meta.url)
const START = '<!-- errors:start -->'
const END = '<!-- errors:end -->'

/** The table as the registry says it. */
function errorTable (): string {
  const rows = Object.entries(ERRORS).map(([code, spec]) =>
    `| \`${code}\` | ${spec.closeCode ?? ''} | ${spec.httpStatus} | ${spec.message.replaceAll('|', '\\|')} |`)
  return ['| code | close code | HTTP status | message |', '|---|---|---|---|', ...rows].join('\n')
}

describe('docs generated from the registries', () => {
  test('the README error table is the registry, whole', () => {
    const readme = readFileSync(README, 'utf8')
    const start = readme.indexOf(START)
    const end = readme.indexOf(END)
    expect(start, 'README has the error table markers').toBeGreaterThan(-1)
    const generated = `${START}\n${errorTable()}\n${END}`
    if (process.env.UPDATE_DOCS === '1') {
      writeFileSync(README, readme.slice(0, start) + generated + readme.slice(end + END.length))
      return
    }
    expect(readme.slice(start, end + END.length)).toBe(generated)
  })

  test('every close code in the registry is in the README close-code table', () => {
    const readme = readFileSync(README, 'utf8')
    for (const code of new Set(Object.values(CloseCode))) expect(readme).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'))
  })
})
