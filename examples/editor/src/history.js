// The History panel: the document's versions with their authors and times, a preview of each,
// "Save version" and "Restore". It talks to Tandem's versions API under /api, served from the
// page's own origin (`npm run example:editor` proxies /api to the Tandem server; in an app, your
// backend would call the API with the admin token and never hand that token to a browser).

/**
 * @param {import('tandem/client').TandemClient} client
 * @param {{ document: string, api: string }} settings
 * @param {{ toggle: HTMLButtonElement, panel: HTMLElement }} elements
 */
export function showHistory (client, settings, { toggle, panel }) {
  const base = `${settings.api}/api/documents/${encodeURIComponent(settings.document)}/versions`
  panel.innerHTML = `
    <header>
      <h2>History</h2>
      <button type="button" class="save-version" data-testid="save-version">Save version</button>
    </header>
    <p class="status" data-testid="history-status"></p>
    <ol class="versions" data-testid="versions"></ol>
    <section class="preview" data-testid="preview" hidden>
      <h3></h3>
      <div class="preview-body"></div>
      <button type="button" class="restore" data-testid="restore">Restore this version</button>
    </section>`
  const list = panel.querySelector('.versions')
  const status = panel.querySelector('.status')
  const preview = panel.querySelector('.preview')
  let selected = null

  const say = (text) => { status.textContent = text }
  /** A user id as a name, when that user is here (presence); else the id. */
  const nameOf = (userId) => client.presence.list().find(user => user.userId === userId)?.name ?? userId

  async function call (path, options) {
    const response = await fetch(base + path, options)
    const body = await response.json()
    if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`)
    return body
  }

  async function refresh () {
    try {
      const versions = await call('')
      list.replaceChildren(...versions.map(version => {
        const item = document.createElement('li')
        item.dataset.version = version.id
        item.dataset.testid = 'version'
        const title = document.createElement('button')
        title.type = 'button'
        title.className = 'version'
        title.textContent = version.label ?? (version.automatic ? 'Automatic version' : 'Version')
        const meta = document.createElement('small')
        const who = version.authors.length === 0 ? 'no edits' : version.authors.map(nameOf).join(', ')
        meta.textContent = `${new Date(version.createdAt).toLocaleString()} · ${who}`
        title.append(document.createElement('br'), meta)
        title.addEventListener('click', () => void show(version))
        item.append(title)
        if (selected?.id === version.id) item.classList.add('selected')
        return item
      }))
      if (versions.length === 0) say('No versions yet.')
      else say('')
    } catch (err) {
      say(`History unavailable: ${err.message}`)
    }
  }

  async function show (version) {
    selected = version
    for (const item of list.children) item.classList.toggle('selected', item.dataset.version === version.id)
    const content = await call(`/${encodeURIComponent(version.id)}/content?format=json`)
    preview.hidden = false
    preview.querySelector('h3').textContent = version.label ?? 'Automatic version'
    const body = preview.querySelector('.preview-body')
    body.replaceChildren(...Object.entries(content)
      .filter(([name, value]) => name.startsWith('block:') && typeof value === 'string' && value !== '')
      .map(([name, value]) => {
        const block = document.createElement('div')
        const title = document.createElement('strong')
        title.textContent = name.slice('block:'.length)
        const text = document.createElement('p')
        text.textContent = value
        block.append(title, text)
        return block
      }))
    if (body.children.length === 0) body.textContent = 'This version is empty.'
  }

  panel.querySelector('.save-version').addEventListener('click', async () => {
    const label = `Saved by ${settings.user?.name ?? 'someone'}`
    try {
      // the version holds what the server stored: wait for this tab's edits first
      await client.flushed()
      await call('', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ label }) })
      await refresh()
    } catch (err) {
      say(`Could not save: ${err.message}`)
    }
  })

  preview.querySelector('.restore').addEventListener('click', async () => {
    if (selected === null) return
    try {
      // the server turns the document into the version for everyone; the editors follow by
      // themselves, and the state before is kept as a version of its own
      await call(`/${encodeURIComponent(selected.id)}/restore`, { method: 'POST' })
      say('Restored. The state before is kept as a version.')
      await refresh()
    } catch (err) {
      say(`Could not restore: ${err.message}`)
    }
  })

  toggle.addEventListener('click', () => {
    panel.hidden = !panel.hidden
    toggle.setAttribute('aria-expanded', String(!panel.hidden))
    if (!panel.hidden) void refresh()
  })
}
