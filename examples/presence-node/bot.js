// A bot that joins a Tandem document from Node: it watches who comes and goes, and greets each
// newcomer in the "Notes" section of the editor example, holding that section's lock while it
// writes so nobody types into the middle of its line.
//
//   npm run example:presence-node -- [document] [--server ws://127.0.0.1:1234]
import WebSocket from 'ws'
import { TandemClient, LockDeniedError } from 'tandem/client'

const args = process.argv.slice(2)
const option = (flag, fallback) => {
  const at = args.indexOf(flag)
  return at === -1 ? fallback : args.splice(at, 2)[1]
}
const server = option('--server', process.env.TANDEM_URL ?? 'ws://127.0.0.1:1234')
const documentName = args[0] ?? 'welcome'
const NOTES = 'block:notes'

const client = new TandemClient({
  url: server,
  document: documentName,
  user: { id: 'presence-bot', name: 'Tandem bot', color: '#5f3dc4' },
  // Node has no WebSocket the client can use: pass ws
  WebSocketPolyfill: WebSocket
})
const log = (message) => console.log(`[bot] ${message}`)

client.on('status', status => log(`connection ${status}`))
client.on('error', err => log(`error ${err.code}: ${err.message}`))
client.on('locks', event => {
  if (event.type === 'acquired') log(`lock ${event.lock.resource} taken by ${event.lock.name} (token ${event.lock.token})`)
  if (event.type === 'released') log(`lock ${event.lock.resource} released by ${event.lock.name} (${event.reason})`)
})
client.on('presence', event => {
  if (event.type === 'snapshot') log(`here now: ${event.users.map(describe).join(', ')}`)
  if (event.type === 'updated') log(`${describe(event.user)}`)
  if (event.type === 'left') log(`${event.user.name} left (${event.reason})`)
  if (event.type === 'joined') {
    log(`${describe(event.user)} joined`)
    if (event.user.userId !== client.presence.self?.userId) void greet(event.user.name)
  }
})

/** Appends a greeting to the notes under their lock; waits a little if someone holds it. */
async function greet (name) {
  let lock
  try {
    // the section's Y.Text itself: a y: lock the server enforces, as the editor's section locks are
    lock = await client.locks.acquire(client.doc.getText(NOTES), { waitMs: 5_000 })
  } catch (err) {
    if (err instanceof LockDeniedError) return log(`could not greet ${name}: ${err.holder?.name ?? 'someone'} holds the ${NOTES} section`)
    throw err
  }
  try {
    const notes = client.doc.getText(NOTES)
    const line = `Welcome, ${name}! (the bot, at ${new Date().toISOString().slice(11, 16)} UTC)`
    notes.insert(notes.length, notes.length === 0 ? line : `\n${line}`)
    // wait until the server has stored the line before giving the section back
    await client.flushed()
    log(`greeted ${name}`)
  } finally {
    await lock.release()
  }
}

function describe (user) {
  const tabs = user.connections > 1 ? `, ${user.connections} connections` : ''
  return `${user.name} (${user.status}${tabs})`
}

await client.synced()
log(`joined ${documentName} on ${server}; Ctrl-C to leave`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    // a clean leave: pending changes stored, locks released, presence removed at once
    await client.leave()
    log('left')
    process.exit(0)
  })
}
