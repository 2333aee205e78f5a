import { describe, expect, test, onTestFinished } from 'vitest'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { startServer, docName, waitFor } from '../support/helpers.js'
import type { ServerOptions, TandemServer } from '../../server/index.js'

const CHROMIUM = '/usr/bin/chromium'
const available = existsSync(CHROMIUM)
// in CI a missing browser is a failure, not a skip (.ci/run installs it)
const run = available || process.env.CI === 'true' ? test : test.skip

/** Bundles the client for the browser, as an app would. */
async function bundle (): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./browser/entry.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    globalName: 'Tandem',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent'
  })
  return result.outputFiles[0]!.text
}

/** Serves the test page and the bundle from a real http origin (IndexedDB needs one). */
async function servePage (script: string): Promise<string> {
  const http = createServer((req, res) => {
    if (req.url === '/tandem.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      res.end(script)
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<!doctype html><meta charset="utf-8"><title>tandem</title><script src="/tandem.js"></script>')
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  onTestFinished(() => new Promise<void>(resolve => { http.closeAllConnections(); http.close(() => resolve()) }))
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}/`
}

async function launch (): Promise<Browser> {
  if (!available) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  onTestFinished(() => browser.close())
  return browser
}

/** A server, a fresh document name, the test page's origin and a browser: every test's start. */
async function setUp (options: ServerOptions = {}): Promise<{ server: TandemServer, name: string, origin: string, browser: Browser }> {
  const server = await startServer(options)
  const name = docName('browser')
  const origin = await servePage(await bundle())
  return { server, name, origin, browser: await launch() }
}

/** A browser context (its pages share storage and BroadcastChannel, as a browser's tabs do); closed after the test. */
async function newContext (browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext()
  onTestFinished(() => context.close())
  return context
}

interface PageClient { url: string, document: string, user: { id: string, name: string, color: string }, warnBeforeUnload?: boolean, offline?: boolean, connect?: boolean }

/** Opens a page with a TandemClient in `window.client`. */
async function openClient (browser: Browser, origin: string, options: PageClient): Promise<Page> {
  const page = await browser.newPage()
  page.on('pageerror', err => { throw err })
  await page.goto(origin)
  await page.evaluate(async (opts) => {
    const w = window as unknown as { Tandem: typeof import('./browser/entry.js'), client: unknown }
    const client = new w.Tandem.TandemClient(opts)
    w.client = client
    if (opts.connect !== false) await client.synced()
  }, options)
  return page
}

describe('the client in a browser (headless Chromium)', () => {
  run('two pages see each other\'s presence and a lock; pagehide leaves cleanly', async () => {
    const { server, name, origin, browser } = await setUp({ reconnectGraceMs: 60_000 })
    const ada = await openClient(browser, origin, { url: server.url, document: name, user: { id: 'ada', name: 'Ada', color: '#ff8800' } })
    const bob = await openClient(browser, origin, { url: server.url, document: name, user: { id: 'bob', name: 'Bob', color: '#0088ff' } })
    const presenceIn = (page: Page): Promise<string[]> => page.evaluate(() => {
      const client = (window as unknown as { client: { presence: { list: () => Array<{ name: string }> } } }).client
      return client.presence.list().map(u => u.name).sort()
    })
    await waitFor(async () => (await presenceIn(ada)).length === 2 && (await presenceIn(bob)).length === 2, 10_000, 'both pages see both users')
    expect(await presenceIn(ada)).toEqual(['Ada', 'Bob'])

    const token = await ada.evaluate(async () => {
      const client = (window as unknown as { client: { locks: { acquire: (r: string) => Promise<{ token: number }> } } }).client
      return (await client.locks.acquire('block:42')).token
    })
    expect(token).toBeGreaterThan(0)
    const refusal = await bob.evaluate(async () => {
      const w = window as unknown as { client: { locks: { acquire: (r: string) => Promise<unknown> } }, Tandem: { LockDeniedError: new (...a: never[]) => Error } }
      try {
        await w.client.locks.acquire('block:42')
        return null
      } catch (err) {
        const denied = err as { code: string, holder: { name: string } | null }
        return { isDenied: err instanceof w.Tandem.LockDeniedError, code: denied.code, holder: denied.holder?.name }
      }
    })
    expect(refusal).toEqual({ isDenied: true, code: 'TANDEM_ERR_LOCK_HELD', holder: 'Ada' })

    await ada.evaluate(async () => {
      const client = (window as unknown as { client: { doc: { getText: (n: string) => { insert: (i: number, s: string) => void } }, flushed: () => Promise<void> } }).client
      client.doc.getText('t').insert(0, 'from the browser')
      await client.flushed()
    })
    await waitFor(async () => await bob.evaluate(() => (window as unknown as { client: { doc: { getText: (n: string) => { toString: () => string } } } }).client.doc.getText('t').toString()) === 'from the browser', 10_000, 'bob sees ada\'s edit')

    // closing the tab fires pagehide: a clean leave, so the lock goes at once despite the long grace
    await ada.close({ runBeforeUnload: true })
    await waitFor(async () => (await presenceIn(bob)).length === 1, 10_000, 'ada left')
    const released = await bob.evaluate(() => {
      const client = (window as unknown as { client: { locks: { holder: (r: string) => unknown } } }).client
      return client.locks.holder('block:42') === undefined
    })
    expect(released).toBe(true)
    expect(server.collaboration.held).toBe(0)
  })

  run('two tabs of one browser with BroadcastChannel on: each sees the other\'s cursor, and the awareness frames stop', async () => {
    const { server, name, origin, browser } = await setUp()
    // one context: its pages share BroadcastChannel, as a browser's tabs do
    const context = await newContext(browser)
    const open = async (id: string): Promise<Page> => {
      const page = await context.newPage()
      page.on('pageerror', err => { throw err })
      await page.goto(origin)
      await page.evaluate(async (opts) => {
        const w = window as unknown as { Tandem: typeof import('./browser/entry.js'), client: unknown, awarenessFrames: number }
        // counts the awareness frames this tab receives over its socket
        w.awarenessFrames = 0
        const Native = WebSocket
        w.WebSocket = class extends Native {
          constructor (url: string | URL, protocols?: string | string[]) {
            super(url, protocols)
            this.addEventListener('message', event => { if (event.data instanceof ArrayBuffer && new Uint8Array(event.data)[0] === 1) w.awarenessFrames++ })
          }
        } as typeof WebSocket
        const client = new w.Tandem.TandemClient({ ...opts, broadcastChannel: true })
        w.client = client
        await client.synced()
      }, { url: server.url, document: name, user: { id, name: id, color: '#ff8800' } })
      return page
    }
    const [ada, bob] = [await open('ada'), await open('bob')]
    type Win = { client: { awareness: { clientID: number, setLocalStateField: (k: string, v: unknown) => void, getStates: () => Map<number, { cursor?: number }> } }, awarenessFrames: number }
    const clientId = (page: Page): Promise<number> => page.evaluate(() => (window as unknown as Win).client.awareness.clientID)
    const setCursor = (page: Page, at: number): Promise<void> => page.evaluate(n => { (window as unknown as Win).client.awareness.setLocalStateField('cursor', n) }, at)
    const cursorOf = (page: Page, id: number): Promise<number | undefined> => page.evaluate(other => (window as unknown as Win).client.awareness.getStates().get(other)?.cursor, id)
    const frames = async (): Promise<number> => await ada.evaluate(() => (window as unknown as Win).awarenessFrames) + await bob.evaluate(() => (window as unknown as Win).awarenessFrames)
    const [adaId, bobId] = [await clientId(ada), await clientId(bob)]
    await setCursor(ada, 1)
    await setCursor(bob, 2)
    await setCursor(ada, 3)
    await waitFor(async () => await cursorOf(bob, adaId) === 3 && await cursorOf(ada, bobId) === 2, 10_000, 'each tab sees the other\'s cursor')
    const before = await frames()
    await new Promise(resolve => setTimeout(resolve, 1_000)) // an echo runs for as long as it is given: the point of the test
    expect(await frames() - before).toBeLessThan(10)
    expect([await cursorOf(bob, adaId), await cursorOf(ada, bobId)]).toEqual([3, 2])
  })

  run('warnBeforeUnload asks to confirm while changes are unsynced; offline keeps edits in IndexedDB for the next visit', async () => {
    const { server, name, origin, browser } = await setUp()
    const context = await newContext(browser)
    const page = await context.newPage()
    await page.goto(origin)
    await page.evaluate(async (opts) => {
      const w = window as unknown as { Tandem: typeof import('./browser/entry.js'), client: unknown }
      w.client = new w.Tandem.TandemClient({ ...opts, connect: false, warnBeforeUnload: true, offline: true })
      const client = w.client as InstanceType<typeof w.Tandem.TandemClient>
      client.doc.getText('t').insert(0, 'written offline')
      // wait until IndexedDB holds the edit: a fresh doc loaded from it must see it
      for (;;) {
        const probe = new w.Tandem.Y.Doc()
        const idb = new w.Tandem.IndexeddbPersistence(`tandem:${opts.document}`, probe)
        await idb.whenSynced
        const stored = probe.getText('t').toString()
        await idb.destroy()
        if (stored === 'written offline') break
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }, { url: server.url, document: name, user: { id: 'ada', name: 'Ada', color: '#ff8800' } })
    expect(await page.evaluate(() => (window as unknown as { client: { unsyncedChanges: number } }).client.unsyncedChanges)).toBe(1)
    const dialog = new Promise<string>(resolve => page.once('dialog', d => { resolve(d.type()); void d.dismiss() }))
    await page.close({ runBeforeUnload: true })
    expect(await dialog).toBe('beforeunload')
    await page.close()

    // the next visit sends what was written offline
    const next = await context.newPage()
    await next.goto(origin)
    await next.evaluate(async (opts) => {
      const w = window as unknown as { Tandem: typeof import('./browser/entry.js'), client: unknown }
      const client = new w.Tandem.TandemClient({ ...opts, offline: true })
      w.client = client
      await client.synced()
      for (;;) {
        if (client.doc.getText('t').toString() === 'written offline' && client.unsyncedChanges === 0) break
        await new Promise(resolve => setTimeout(resolve, 20))
      }
      await client.flushed()
    }, { url: server.url, document: name, user: { id: 'ada', name: 'Ada', color: '#ff8800' } })
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'written offline', 10_000, 'server has the offline edit')
  })
})
