// The document API from a backend: no WebSocket, no Tandem code, only fetch and Yjs. It exports a
// document as JSON (what a search indexer or an email renderer needs), then appends a line to one
// of its texts by sending a Yjs update, the way a backend job or an assistant writes into it.
//
//   npm run example:document-api -- [document] [--server http://127.0.0.1:1234] [--token <admin token>]
//                                   [--text block:intro] [--append "a line"] [--user <user id>]
//
// Every client connected to the document sees the line at once, on every instance.
import * as Y from 'yjs'

const args = process.argv.slice(2)
const option = (flag, fallback) => {
  const at = args.indexOf(flag)
  return at === -1 ? fallback : args.splice(at, 2)[1]
}
const server = option('--server', process.env.TANDEM_HTTP ?? 'http://127.0.0.1:1234').replace(/^ws/, 'http')
const token = option('--token', process.env.TANDEM_ADMIN_TOKEN)
const textName = option('--text', 'block:intro')
const line = option('--append', `Appended by the document API at ${new Date().toISOString()}`)
const user = option('--user', 'export-append-example')
const documentName = args[0] ?? 'welcome'

const base = `${server}/api/documents/${encodeURIComponent(documentName)}`
const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }

/** Fails with the server's one-line error. */
async function check (response) {
  if (response.ok) return response
  const body = await response.text()
  throw new Error(`${response.status} ${response.statusText}: ${body}`)
}

// 1. export: each top-level type by its kind (text as a string, map as an object, ...); 404 while
// the document has never been written
const response = await fetch(`${base}/content?format=json`, { headers })
const exported = response.status === 404 ? {} : await (await check(response)).json()
console.log(`[api] ${documentName} as JSON${response.status === 404 ? ' (no such document yet)' : ''}:`)
console.log(JSON.stringify(exported, null, 2))

// 2. append a line: load the current state, make the change on a local Y.Doc, send only the change
const doc = new Y.Doc()
const state = await fetch(`${base}/content`, { headers })
if (state.status !== 404) Y.applyUpdate(doc, new Uint8Array(await (await check(state)).arrayBuffer()))
const before = Y.encodeStateVector(doc)
const text = doc.getText(textName)
text.insert(text.length, text.length === 0 ? line : `\n${line}`)
const update = Y.encodeStateAsUpdate(doc, before)
const stored = await check(await fetch(`${base}/updates?userId=${encodeURIComponent(user)}`, {
  method: 'POST',
  headers: { ...headers, 'content-type': 'application/octet-stream' },
  body: update
}))
console.log(`[api] appended ${JSON.stringify(line)} to ${textName}: ${JSON.stringify(await stored.json())}`)

// 3. read it back
const after = await (await check(await fetch(`${base}/content?format=json`, { headers }))).json()
console.log(`[api] ${textName} now: ${JSON.stringify(after[textName])}`)
