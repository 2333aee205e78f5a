// One section of the document: its own Y.Text (`block:<id>`), its own CodeMirror editor and an
// edit lock on that Y.Text (resource `y:block:<id>`). The server enforces such a lock: while it is
// held, anyone else's change to the section is undone, stock y-websocket clients included. A
// section locked by someone else is also read-only here, so that nobody types in vain.
import { EditorState, Compartment } from '@codemirror/state'
import { EditorView, keymap, placeholder, drawSelection } from '@codemirror/view'
import { defaultKeymap } from '@codemirror/commands'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { LockDeniedError } from 'tandem/client'

/**
 * @param {import('tandem/client').TandemClient} client
 * @param {{ id: string, title: string, hint: string }} section
 */
export function createBlock (client, section) {
  const text = client.doc.getText(`block:${section.id}`)
  const element = document.createElement('section')
  element.className = 'block'
  element.dataset.block = section.id
  element.innerHTML = `
    <header>
      <h2></h2>
      <span class="owner" data-testid="lock-owner"></span>
      <button type="button" class="lock" data-testid="lock-button"></button>
    </header>
    <div class="editor"></div>`
  element.querySelector('h2').textContent = section.title
  const owner = element.querySelector('.owner')
  const button = element.querySelector('.lock')

  const editable = new Compartment()
  const view = new EditorView({
    parent: element.querySelector('.editor'),
    state: EditorState.create({
      doc: text.toString(),
      extensions: [
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
        drawSelection(),
        EditorView.lineWrapping,
        placeholder(section.hint),
        // binds the editor to the Y.Text and shows everyone's cursor through the client's awareness
        yCollab(text, client.awareness),
        editable.of([])
      ]
    })
  })

  /** @type {import('tandem/client').Lock | undefined} */
  let myLock
  let busy = false
  const render = () => {
    const holder = client.locks.guardOf(text)
    const mine = holder !== undefined && holder.sessionId === client.sessionId
    if (myLock?.released) myLock = undefined
    const lockedOut = holder !== undefined && !mine
    element.dataset.lock = holder === undefined ? 'free' : mine ? 'mine' : 'theirs'
    element.style.setProperty('--holder', holder?.color ?? 'transparent')
    owner.textContent = holder === undefined ? '' : mine ? 'Locked by you' : `${holder.name} is editing`
    if (holder !== undefined) owner.prepend(padlock())
    button.textContent = mine ? 'Unlock' : 'Lock'
    button.disabled = busy || lockedOut || client.status !== 'connected'
    button.title = lockedOut ? `${holder.name} holds this section` : mine ? 'Let others edit again' : 'Keep others out of this section while you edit'
    view.dispatch({
      effects: editable.reconfigure(lockedOut ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : [])
    })
  }

  button.addEventListener('click', async () => {
    busy = true
    render()
    try {
      if (myLock !== undefined && !myLock.released) {
        await myLock.release()
        myLock = undefined
      } else {
        myLock = await client.locks.acquire(text)
        view.focus()
      }
    } catch (err) {
      // someone was quicker: the lock event that follows shows who
      if (!(err instanceof LockDeniedError)) reportError(err)
    } finally {
      busy = false
      render()
    }
  })
  client.on('locks', render)
  client.on('status', render)
  render()
  return element
}

function padlock () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 16 16')
  svg.setAttribute('aria-hidden', 'true')
  svg.innerHTML = '<rect x="3" y="7" width="10" height="7" rx="1.5" fill="currentColor"/><path d="M5.5 7V5a2.5 2.5 0 0 1 5 0v2" fill="none" stroke="currentColor" stroke-width="1.6"/>'
  return svg
}
