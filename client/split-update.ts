// the server splits big stored documents the same way when it loads them (build-worker.ts)
export { splitUpdate } from '../shared/split-update.js'
