// The stock y-websocket provider against Tandem: no Tandem code at all. Tandem speaks the
// y-websocket protocol, so an existing Yjs app only changes its server URL.
//
//   npm run example:stock-client -- [document] [--server ws://127.0.0.1:1234] [--write "a line"] [--exit]
//
// It prints the document's sections and who is there (from awareness), appends --write's text to
// the "Introduction" section, and keeps watching until Ctrl-C (or leaves at once with --exit).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const args = process.argv.slice(2)
const option = (flag, fallback) => {
  const at = args.indexOf(flag)
  return at === -1 ? fallback : args.splice(at, 2)[1]
}
const exitAfter = args.includes('--exit')
if (exitAfter) args.splice(args.indexOf('--exit'), 1)
const server = option('--server', process.env.TANDEM_URL ?? 'ws://127.0.0.1:1234')
const line = option('--write', undefined)
const documentName = args[0] ?? 'welcome'

const doc = new Y.Doc()
const provider = new WebsocketProvider(server, documentName, doc, {
  WebSocketPolyfill: WebSocket,
  // without an auth secret, Tandem takes the display name and colour from the query string
  params: { name: 'Stock client', color: '#0c8599' }
})
// what cursors and avatars use in the y-websocket world; Tandem relays it unchanged
provider.awareness.setLocalStateField('user', { name: 'Stock client', color: '#0c8599' })

const print = () => {
  for (const name of doc.share.keys()) {
    if (name.startsWith('block:')) console.log(`${name.padEnd(14)} ${JSON.stringify(doc.getText(name).toString())}`)
  }
}
const people = () => [...provider.awareness.getStates().values()].map(state => state.user?.name).filter(Boolean)

provider.on('status', ({ status }) => console.log(`[stock] ${status}`))
provider.once('sync', async () => {
  console.log(`[stock] synced ${documentName} on ${server}`)
  print()
  console.log(`[stock] here: ${people().join(', ')}`)
  if (line !== undefined) {
    const intro = doc.getText('block:intro')
    intro.insert(intro.length, intro.length === 0 ? line : `\n${line}`)
    console.log(`[stock] wrote ${JSON.stringify(line)}`)
  }
  if (exitAfter) stop()
  else {
    doc.on('update', (_update, origin) => { if (origin === provider) print() })
    provider.awareness.on('change', () => console.log(`[stock] here: ${people().join(', ')}`))
  }
})

function stop () {
  // the socket closes after what was sent; Tandem stores updates before it lets a session go
  provider.destroy()
  // the awareness instance is the doc's, not the provider's: its timer would keep Node running
  provider.awareness.destroy()
  doc.destroy()
  console.log('[stock] bye')
}
process.once('SIGINT', () => { stop(); process.exit(0) })
