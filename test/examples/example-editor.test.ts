// The editor example (examples/editor) in headless Chromium, built with Vite as a user would,
// against a real Tandem server: two pages, their text, avatars, locks, leaving, going offline.
import { describe, expect, test, beforeAll, afterAll, onTestFinished } from 'vitest'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import { chromium, type Browser, type Page } from 'playwright-core'
import * as Y from 'yjs'
import { startServer, stockClient, synced, tempDir, waitFor } from '../support/helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const available = existsSync(CHROMIUM)
// in CI a missing browser is a failure, not a skip (.ci/run installs it)
const run = available || process.env.CI === 'true' ? test : test.skip
const EXAMPLE = fileURLToPath(new URL('../../examples/editor', import.meta.url))
// for a person to look at after a run: test-results/ (ignored by git); with
// TANDEM_UPDATE_SCREENSHOTS=1, the copies the README shows are replaced instead
const SCREENSHOTS = process.env.TANDEM_UPDATE_SCREENSHOTS === '1'
  ? join(EXAMPLE, 'screenshots')
  : fileURLToPath(new URL('../../test-results/screenshots', import.meta.url))
const ADA = { name: 'Ada', color: '#e8590c' }
const BOB = { name: 'Bob', color: '#1c7ed6' }

let outDir = ''
let http: Server | undefined
let origin = ''
let browser: Browser | undefined

beforeAll(async () => {
  if (!available && process.env.CI !== 'true') return
  if (!existsSync(fileURLToPath(new URL('../../dist/client/index.js', import.meta.url)))) {
    throw new Error('dist/ is missing: run `npm run build` first (`npm test` does)')
  }
  // build the page exactly as `vite build` would, into a private folder
  outDir = mkdtempSync(join(tmpdir(), 'tandem-editor-'))
  await build({ configFile: join(EXAMPLE, 'vite.config.js'), logLevel: 'silent', build: { outDir, emptyOutDir: true } })
  http = serveStatic(outDir)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`
  if (!available) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`)
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}, 60_000)

afterAll(async () => {
  await browser?.close()
  if (http !== undefined) {
    http.closeAllConnections()
    await new Promise(resolve => http!.close(resolve))
  }
  if (outDir !== '') rmSync(outDir, { recursive: true, force: true })
})

/** Serves the built page (and its assets) from a real http origin. */
function serveStatic (root: string): Server {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }
  return createHttpServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '')
    const file = join(root, path.endsWith('/') ? `${path}index.html` : path)
    if (!file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' })
    res.end(readFileSync(file))
  })
}

/** Opens the editor as `user` on `document`; waits until it shows "Saved". */
async function openEditor (serverUrl: string, document: string, user: { name: string, color: string }, prepare?: (page: Page) => Promise<void>): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width: 1180, height: 640 }, deviceScaleFactor: 1 })
  onTestFinished(() => context.close())
  const page = await context.newPage()
  const errors: Error[] = []
  page.on('pageerror', err => errors.push(err))
  onTestFinished(() => { if (errors.length > 0) throw errors[0] })
  await prepare?.(page)
  const query = new URLSearchParams({ doc: document, server: serverUrl, name: user.name, color: user.color })
  await page.goto(`${origin}?${query}`)
  await waitForSaveState(page, 'Saved')
  return page
}

function saveState (page: Page): Promise<string> {
  return page.locator('[data-testid=save-status] .label').innerText()
}

async function waitForSaveState (page: Page, expected: string | RegExp, timeoutMs = 10_000): Promise<string> {
  let seen = ''
  await waitFor(async () => {
    seen = await saveState(page)
    return typeof expected === 'string' ? seen === expected : expected.test(seen)
  }, timeoutMs, `save indicator "${expected}" (last seen "${seen}")`)
  return seen
}

/** The names on the avatars of a page, in order. */
function avatars (page: Page): Promise<string[]> {
  return page.locator('[data-testid=avatar]').evaluateAll(items => items.map(item => (item as HTMLElement).dataset.user!))
}

/** The text of a section as the page shows it: the editor's lines without widgets (placeholder, remote carets' names). */
function blockText (page: Page, block: string): Promise<string> {
  return page.locator(`.block[data-block=${block}] .cm-line`).evaluateAll(lines => lines.map(line => {
    const copy = line.cloneNode(true) as HTMLElement
    for (const widget of copy.querySelectorAll('[contenteditable=false]')) widget.remove()
    return copy.textContent ?? ''
  }).join('\n'))
}

async function typeInto (page: Page, block: string, text: string): Promise<void> {
  await page.locator(`.block[data-block=${block}] .cm-content`).click()
  await page.keyboard.press('End')
  await page.keyboard.type(text)
}

describe('examples/editor in a browser (headless Chromium)', { timeout: 60_000 }, () => {
  run('two pages edit together, see each other\'s avatars and locks; closing one removes its avatar at once', async () => {
    // a long grace: only the page's clean leave can make the avatar go at once
    const server = await startServer({ reconnectGraceMs: 60_000 })
    // the server is this test's own: a fixed, readable name keeps the screenshots stable between runs
    const name = 'roadmap'
    const ada = await openEditor(server.url, name, ADA)
    const bob = await openEditor(server.url, name, BOB)

    await waitFor(async () => (await avatars(ada)).length === 2 && (await avatars(bob)).length === 2, 10_000, 'both pages show both avatars')
    expect(await avatars(ada)).toEqual(['Ada', 'Bob'])
    expect(await ada.locator('[data-testid=avatar][data-user=Bob]').getAttribute('data-status')).toBe('active')

    await typeInto(ada, 'intro', 'Tandem keeps documents in sync. Ada wrote this line.')
    await typeInto(bob, 'plan', 'Ship the editor example, then write the docs.')
    await waitFor(async () => (await blockText(bob, 'intro')).includes('Ada wrote this line.'), 10_000, 'bob sees ada\'s text')
    await waitFor(async () => (await blockText(ada, 'plan')).includes('then write the docs.'), 10_000, 'ada sees bob\'s text')

    // Ada locks "risks": Bob sees her name on it and cannot type there
    await ada.locator('.block[data-block=risks] [data-testid=lock-button]').click()
    await waitFor(async () => await ada.locator('.block[data-block=risks]').getAttribute('data-lock') === 'mine', 10_000, 'ada holds the lock')
    await waitFor(async () => (await bob.locator('.block[data-block=risks] [data-testid=lock-owner]').innerText()).includes('Ada is editing'), 10_000, 'bob sees the lock')
    expect(await ada.locator('.block[data-block=risks] [data-testid=lock-owner]').innerText()).toBe('Locked by you')
    expect(await bob.locator('.block[data-block=risks] [data-testid=lock-button]').isDisabled()).toBe(true)
    expect(await bob.locator('.block[data-block=risks] .cm-content').getAttribute('contenteditable')).toBe('false')
    await typeInto(ada, 'risks', 'Only Ada edits this section while she holds the lock.')
    await waitFor(async () => (await blockText(bob, 'risks')).includes('holds the lock.'), 10_000, 'bob sees the locked section\'s text')
    await bob.locator('.block[data-block=risks] .cm-content').click({ force: true })
    await bob.keyboard.type('Bob was here')
    const risks = await bob.evaluate(() => (window as unknown as { tandem: { doc: Y.Doc } }).tandem.doc.getText('block:risks').toString())
    expect(risks).toBe('Only Ada edits this section while she holds the lock.')
    expect(await blockText(bob, 'risks')).not.toContain('Bob was here')
    // the server enforces the lock: a stock y-websocket client typing there sees its text vanish
    const stock = stockClient(server.url, name)
    await synced(stock.provider)
    stock.doc.getText('block:risks').insert(0, 'Stock was here. ')
    stock.doc.getText('block:plan').insert(0, 'Free. ')
    await waitFor(() => stock.doc.getText('block:risks').toString() === risks, 10_000, 'the stock client\'s text undone on its own screen')
    await waitFor(async () => (await blockText(ada, 'plan')).startsWith('Free. '), 10_000, 'its edit of a free section kept')
    expect(await blockText(ada, 'risks')).toBe(risks)
    expect(await blockText(bob, 'risks')).toBe(risks)
    stock.provider.destroy()
    await waitFor(async () => (await avatars(ada)).length === 2, 10_000, 'the stock client gone from the avatars')

    // Bob selects a word in the plan: Ada sees his selection, Bob sees Ada's caret in "risks"
    await bob.locator('.block[data-block=plan] .cm-content').dblclick({ position: { x: 20, y: 12 } })
    await waitFor(async () => await ada.locator('.block[data-block=plan] .cm-ySelection').count() > 0, 10_000, 'ada sees bob\'s selection')
    await waitFor(async () => await bob.locator('.block[data-block=risks] .cm-ySelectionCaret').count() > 0, 10_000, 'bob sees ada\'s caret')
    await waitForSaveState(ada, 'Saved')
    await waitForSaveState(bob, 'Saved')
    mkdirSync(SCREENSHOTS, { recursive: true })
    await ada.screenshot({ path: join(SCREENSHOTS, 'ada.png'), animations: 'disabled' })
    await bob.screenshot({ path: join(SCREENSHOTS, 'bob.png'), animations: 'disabled' })

    // Bob hides his tab: his avatar turns "away" on Ada's page, and "active" when he is back
    const setHidden = (hidden: boolean): Promise<void> => bob.evaluate((value) => {
      Object.defineProperty(document, 'visibilityState', { value: value ? 'hidden' : 'visible', configurable: true })
      document.dispatchEvent(new Event('visibilitychange'))
    }, hidden)
    const bobStatus = (): Promise<string | null> => ada.locator('[data-testid=avatar][data-user=Bob]').getAttribute('data-status')
    await setHidden(true)
    await waitFor(async () => await bobStatus() === 'away', 10_000, 'bob is away')
    expect(await ada.locator('[data-testid=avatar][data-user=Bob] small').innerText()).toBe('away')
    await setHidden(false)
    await waitFor(async () => await bobStatus() === 'active', 10_000, 'bob is back')

    // unlocking gives the section back to everyone
    await ada.locator('.block[data-block=risks] [data-testid=lock-button]').click()
    await waitFor(async () => await bob.locator('.block[data-block=risks]').getAttribute('data-lock') === 'free', 10_000, 'bob sees the lock released')
    expect(await bob.locator('.block[data-block=risks] .cm-content').getAttribute('contenteditable')).toBe('true')

    // closing Bob's tab (pagehide: a clean leave) removes his avatar from Ada's page at once
    await bob.close({ runBeforeUnload: true })
    await waitFor(async () => (await avatars(ada)).length === 1, 5_000, 'bob\'s avatar is gone')
    expect(await avatars(ada)).toEqual(['Ada'])
  })

  run('offline: the indicator shows pending changes, then "Saved" after the server is back, nothing lost', async () => {
    const dataDir = tempDir()
    const first = await startServer({ persistence: 'sqlite', dataDir })
    const { port } = first.address
    const name = 'roadmap'
    const ada = await openEditor(first.url, name, ADA)
    const bob = await openEditor(first.url, name, BOB)
    await typeInto(ada, 'intro', 'Written online.')
    await waitFor(async () => (await blockText(bob, 'intro')) === 'Written online.', 10_000, 'bob sees the first line')
    await waitForSaveState(ada, 'Saved')

    await first.close()
    await waitForSaveState(ada, /^Offline/)
    await typeInto(ada, 'intro', ' Written offline.')
    await typeInto(ada, 'notes', 'Also offline.')
    const pending = await waitForSaveState(ada, /^Offline, \d+ changes? pending$/)
    expect(Number(/\d+/.exec(pending)![0])).toBeGreaterThan(0)
    await typeInto(bob, 'plan', 'Bob, offline too.')
    await waitForSaveState(bob, /^Offline, \d+ changes? pending$/)
    await ada.screenshot({ path: join(SCREENSHOTS, 'offline.png'), animations: 'disabled' })

    // the page asks before closing while changes are pending (warnBeforeUnload); Bob stays
    const dialog = new Promise<string>(resolve => bob.once('dialog', d => { resolve(d.type()); void d.dismiss() }))
    await bob.close({ runBeforeUnload: true })
    expect(await dialog).toBe('beforeunload')
    expect(bob.isClosed()).toBe(false)

    // the same port and data folder: the pages reconnect by themselves
    const second = await startServer({ persistence: 'sqlite', dataDir, port })
    await waitForSaveState(ada, 'Saved', 20_000)
    await waitForSaveState(bob, 'Saved', 20_000)
    await waitFor(async () => (await blockText(bob, 'intro')) === 'Written online. Written offline.', 10_000, 'bob sees ada\'s offline edit')
    await waitFor(async () => (await blockText(ada, 'plan')) === 'Bob, offline too.', 10_000, 'ada sees bob\'s offline edit')

    // what the server stored, read by a fresh stock client
    const reader = stockClient(second.url, name)
    await synced(reader.provider)
    expect(reader.doc.getText('block:intro').toString()).toBe('Written online. Written offline.')
    expect(reader.doc.getText('block:notes').toString()).toBe('Also offline.')
    expect(reader.doc.getText('block:plan').toString()).toBe('Bob, offline too.')
  })

  run('`npm run example:editor` starts the server and the dev server; the URL it prints opens a working editor', async () => {
    // ports 0: the script then prints the real ones; ./data goes to a private folder
    const child = spawn(process.execPath, [join(EXAMPLE, 'run.js')], {
      cwd: tempDir(),
      // 2 s tokens: the page refreshes them in band from the script's token endpoint
      env: { ...process.env, TANDEM_PORT: '0', EDITOR_PORT: '0', LOG_LEVEL: 'warn', TOKEN_LIFETIME: '2' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', chunk => { output += chunk })
    child.stderr.on('data', chunk => { output += chunk })
    const exited = once(child, 'exit')
    onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    await waitFor(() => /Editor\s+http:\S+/.test(output), 20_000, `the script prints the URL (output: ${output})`)
    const url = /Editor\s+(http:\S+)/.exec(output)![1]!
    expect(url).toContain('server=ws')

    const context = await browser!.newContext()
    onTestFinished(() => context.close())
    const page = await context.newPage()
    const messages: string[] = []
    page.on('console', message => messages.push(message.text()))
    let tokens = 0
    page.on('requestfinished', request => { if (new URL(request.url()).pathname.endsWith('/token')) tokens++ })
    await page.goto(url)
    await waitForSaveState(page, 'Saved', 20_000)
    const sessionId = await page.evaluate(() => (window as unknown as { tandem: { sessionId: string } }).tandem.sessionId)
    await typeInto(page, 'intro', 'Hello from the dev server.')
    await waitForSaveState(page, 'Saved')
    expect(await avatars(page)).toHaveLength(1)
    // the probe, the first token, then two refreshes on the same session
    await waitFor(() => tokens >= 4, 15_000, 'two token refreshes')
    await typeInto(page, 'intro', ' Still here.')
    await waitForSaveState(page, 'Saved')
    expect(await page.evaluate(() => (window as unknown as { tandem: { sessionId: string } }).tandem.sessionId)).toBe(sessionId)
    expect(await page.locator('[data-testid=session-end]').isHidden()).toBe(true)
    // one copy of Yjs in the dev server's pre-bundled dependencies, as in the build
    expect(messages.filter(text => /already imported/i.test(text))).toEqual([])
    await context.close()

    child.kill('SIGINT')
    const [code] = await exited
    expect(code).toBe(0)
  })

  run('a session the server ends shows "You were away" (idle) or "Signed out" (revoked); continuing connects again', async () => {
    const server = await startServer({ sessionIdleTimeoutMs: 3_000 })
    const page = await openEditor(server.url, 'ended', ADA)
    const banner = page.locator('[data-testid=session-end]')
    await waitFor(async () => await banner.isVisible(), 10_000, 'the idle banner')
    expect(await banner.getAttribute('data-state')).toBe('away')
    expect(await banner.locator('.title').innerText()).toBe('You were away')
    await banner.locator('button').click()
    await waitForSaveState(page, 'Saved')
    await typeInto(page, 'intro', 'Back again.')
    await waitForSaveState(page, 'Saved')
    const userId = await page.evaluate(() => (window as unknown as { tandem: { presence: { self: { userId: string } } } }).tandem.presence.self.userId)
    await server.revoke({ kind: 'user', value: userId })
    await waitFor(async () => await banner.getAttribute('data-state') === 'signed-out' && await banner.isVisible(), 10_000, 'the signed-out banner')
    expect(await banner.locator('.title').innerText()).toBe('Signed out')
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, 'signed-out.png'), animations: 'disabled' })
  })

  run('avatars show "idle" after a quiet spell and "reconnecting" while a page\'s connection is blocked; its edits arrive after', async () => {
    const server = await startServer({ idleAfterMs: 1_500, reconnectGraceMs: 60_000 })
    const name = 'statuses'
    // Bob's WebSocket goes through a route that can cut it, like a network that drops
    let blocked = false
    let cut = (): void => {}
    const bob = await openEditor(server.url, name, BOB, page => page.routeWebSocket(/.*/, ws => {
      if (blocked) return ws.close({ code: 1011, reason: 'blocked by the test' })
      const toServer = ws.connectToServer()
      cut = () => toServer.close({ code: 4000, reason: 'cut by the test' })
    }))
    const ada = await openEditor(server.url, name, ADA)
    const bobOnAda = ada.locator('[data-testid=avatar][data-user=Bob]')
    await waitFor(async () => await bobOnAda.getAttribute('data-status') === 'idle', 10_000, 'bob turns idle')
    await typeInto(bob, 'intro', 'Bob is back.')
    await waitFor(async () => await bobOnAda.getAttribute('data-status') === 'active', 10_000, 'bob is active again')

    blocked = true
    cut()
    await waitFor(async () => await bobOnAda.getAttribute('data-status') === 'reconnecting', 10_000, 'bob shows as reconnecting')
    expect(await bobOnAda.locator('small').innerText()).toBe('reconnecting…')
    await waitForSaveState(bob, /^Offline/)
    await typeInto(bob, 'intro', ' Typed while cut off.')
    await waitForSaveState(bob, /^Offline, \d+ changes? pending$/)

    blocked = false
    await waitForSaveState(bob, 'Saved', 20_000)
    await waitFor(async () => await bobOnAda.getAttribute('data-status') === 'active', 10_000, 'bob resumed')
    await waitFor(async () => (await blockText(ada, 'intro')) === 'Bob is back. Typed while cut off.', 10_000, 'ada gets bob\'s offline edit')
    // the session resumed within the grace: Bob never left
    expect(await avatars(ada)).toEqual(['Bob', 'Ada'])
  })
})
