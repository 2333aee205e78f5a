// The browser test's bundle: the client library, plus what the test pages use to look into
// IndexedDB and Yjs directly.
export * from '../../../client/index.js'
export * as Y from 'yjs'
export { IndexeddbPersistence } from 'y-indexeddb'
