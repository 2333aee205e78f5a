// The Node examples (examples/presence-node, examples/stock-client) run as a user runs them,
// as child processes against a real server, next to a TandemClient that watches what they do.
import { describe, expect, test, onTestFinished } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { TandemClient, type LockEvent, type PresenceEvent } from '../../client/index.js'
import { startServer, docName, waitFor } from '../support/helpers.js'

interface Script {
  child: ChildProcess
  /** Everything printed so far. */
  output: () => string
  exited: Promise<number | null>
}

/** Runs an example script with node; killed after the test if still running. */
function runExample (path: string, args: string[]): Script {
  const child = spawn(process.execPath, [fileURLToPath(new URL(`../../examples/${path}`, import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', chunk => { output += chunk })
  child.stderr!.on('data', chunk => { output += chunk })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, output: () => output, exited }
}

/** A TandemClient in this process, left after the test. */
function watcher (url: string, document: string, name: string): TandemClient {
  const client = new TandemClient({ url, document, user: { id: name.toLowerCase(), name, color: '#e8590c' }, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
  onTestFinished(() => client.destroy())
  return client
}

describe('examples/presence-node', () => {
  test('the bot joins, greets a newcomer under the notes lock, releases it, and leaves cleanly on SIGINT', async () => {
    const server = await startServer()
    const name = docName('bot')
    const bot = runExample('presence-node/bot.js', [name, '--server', server.url])
    await waitFor(() => bot.output().includes('[bot] joined'), 10_000, `the bot joins (output: ${bot.output()})`)

    const ada = watcher(server.url, name, 'Ada')
    const lockEvents: LockEvent[] = []
    const presenceEvents: PresenceEvent[] = []
    ada.on('locks', event => lockEvents.push(event))
    ada.on('presence', event => presenceEvents.push(event))
    await ada.synced()
    await waitFor(() => ada.doc.getText('block:notes').toString().startsWith('Welcome, Ada!'), 10_000, 'the greeting arrives')
    await waitFor(() => bot.output().includes('greeted Ada'), 10_000, 'the bot reports the greeting')
    await waitFor(() => lockEvents.some(e => e.type === 'released' && e.lock.resource === 'block:notes'), 10_000, 'the bot releases the notes lock')
    const taken = lockEvents.find(e => e.type === 'acquired')
    expect(taken?.type === 'acquired' && taken.lock).toMatchObject({ resource: 'block:notes', name: 'Tandem bot' })
    expect(ada.locks.list()).toEqual([])
    expect(bot.output()).toContain('Ada (active) joined')
    expect(ada.presence.list().map(u => u.name).sort()).toEqual(['Ada', 'Tandem bot'])

    bot.child.kill('SIGINT')
    expect(await bot.exited).toBe(0)
    await waitFor(() => presenceEvents.some(e => e.type === 'left' && e.user.name === 'Tandem bot'), 10_000, 'the bot leaves')
    const left = presenceEvents.find(e => e.type === 'left')
    expect(left?.type === 'left' && left.reason).toBe('leave')
    expect(bot.output()).toContain('[bot] left')
  })
})

describe('examples/stock-client', () => {
  test('the plain y-websocket provider reads, writes and shows up in presence', async () => {
    const server = await startServer()
    const name = docName('stock')
    const ada = watcher(server.url, name, 'Ada')
    await ada.synced()
    ada.doc.getText('block:intro').insert(0, 'Written by a Tandem client.')
    await ada.flushed()

    // one run that writes and exits
    const writer = runExample('stock-client/stock.js', [name, '--server', server.url, '--write', 'Written by the stock client.', '--exit'])
    expect(await writer.exited).toBe(0)
    expect(writer.output(), writer.output()).toContain('block:intro    "Written by a Tandem client."')
    await waitFor(() => ada.doc.getText('block:intro').toString() === 'Written by a Tandem client.\nWritten by the stock client.', 10_000, 'the stock client\'s line arrives')

    // one that stays: it sees Ada in awareness, Ada sees it in presence until it is stopped
    const watching = runExample('stock-client/stock.js', [name, '--server', server.url])
    await waitFor(() => /here: .*Ada/.test(watching.output()), 10_000, `the stock client sees Ada (output: ${watching.output()})`)
    await waitFor(() => ada.presence.list().some(u => u.name === 'Stock client'), 10_000, 'ada sees the stock client')
    ada.doc.getText('block:plan').insert(0, 'Live edit.')
    await waitFor(() => watching.output().includes('block:plan     "Live edit."'), 10_000, 'the stock client prints the live edit')
    watching.child.kill('SIGINT')
    expect(await watching.exited).toBe(0)
    await waitFor(() => !ada.presence.list().some(u => u.name === 'Stock client'), 10_000, 'the stock client is gone')
    expect(watching.output()).not.toMatch(/error/i)
  })
})
