/** What the page lifecycle tells the client. */
export interface PageHandlers {
  /** The page is being hidden for good or put in the back-forward cache: leave cleanly. */
  hide (): void
  /** The page came back from the back-forward cache: connect again. */
  show (): void
  /** True when closing the page now would lose changes (then the browser asks to confirm). */
  unsaved (): boolean
}

/**
 * Listens to the page's lifecycle in a browser; does nothing elsewhere (Node). Returns the
 * function that removes every listener it added. `pagehide`, not `unload`: unload also fires on
 * downloads in some browsers, and blocks the back-forward cache.
 */
export function watchPage (handlers: PageHandlers): () => void {
  const target = globalThis as unknown as { addEventListener?: EventTarget['addEventListener'], removeEventListener?: EventTarget['removeEventListener'], document?: unknown }
  if (typeof target.addEventListener !== 'function' || typeof target.removeEventListener !== 'function' || target.document === undefined) return () => {}
  const add = target.addEventListener.bind(target)
  const remove = target.removeEventListener.bind(target)
  const onPageHide = (): void => handlers.hide()
  const onPageShow = (event: Event): void => {
    if ((event as PageTransitionEvent).persisted) handlers.show()
  }
  const onBeforeUnload = (event: Event): void => {
    if (!handlers.unsaved()) return
    event.preventDefault()
    ;(event as BeforeUnloadEvent).returnValue = ''
  }
  add('pagehide', onPageHide)
  add('pageshow', onPageShow)
  add('beforeunload', onBeforeUnload)
  return () => {
    remove('pagehide', onPageHide)
    remove('pageshow', onPageShow)
    remove('beforeunload', onBeforeUnload)
  }
}
