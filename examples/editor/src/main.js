// The Tandem editor example: a document in sections, edited together, with presence avatars,
// remote cursors, a lock per section and a save indicator. See the README's "Examples".
import { TandemClient } from 'tandem/client'
import { readSettings } from './settings.js'
import { showPeople } from './people.js'
import { showSaveStatus } from './save-status.js'
import { createBlock } from './block.js'
import { showSessionEnd } from './session-end.js'

const SECTIONS = [
  { id: 'intro', title: 'Introduction', hint: 'What is this document about?' },
  { id: 'plan', title: 'Plan', hint: 'Steps, owners, dates…' },
  { id: 'risks', title: 'Risks', hint: 'What could go wrong?' },
  { id: 'notes', title: 'Notes', hint: 'Anything else. The presence-node bot greets people here.' }
]

const settings = readSettings()
// `npm run example:editor` serves short-lived tokens at ./token (run.js); a page served without
// one connects anonymously. The client calls the function again before each expiry.
const tokenUrl = new URL('./token', window.location.href)
tokenUrl.search = new URLSearchParams({ user: settings.user.id, name: settings.user.name, color: settings.user.color }).toString()
const probe = await fetch(tokenUrl).catch(() => null)
const fetchToken = async () => {
  const response = await fetch(tokenUrl)
  if (!response.ok) throw new Error(`token endpoint answered ${response.status}`)
  return await response.text()
}
const client = new TandemClient({
  url: settings.server,
  document: settings.document,
  user: settings.user,
  token: probe?.ok === true ? fetchToken : undefined,
  // closing the tab while edits are not stored yet asks for confirmation
  warnBeforeUnload: true
})

document.querySelector('#doc-name').textContent = settings.document
document.title = `${settings.document} · Tandem editor`
showPeople(client, document.querySelector('#people'))
showSaveStatus(client, document.querySelector('#save'))
showSessionEnd(client, document.querySelector('#session-end'))
document.querySelector('#blocks').append(...SECTIONS.map(section => createBlock(client, section)))

// presence: `away` while the tab is hidden; the server turns a quiet user `idle` by itself
const updateVisibility = () => client.presence.setStatus(document.visibilityState === 'hidden' ? 'away' : 'active')
document.addEventListener('visibilitychange', updateVisibility)
updateVisibility()

client.on('error', err => console.warn('tandem:', err.code, err.message))

// for the browser tests and for poking around in the console
window.tandem = client
