/**
 * `tandem/protocol`: the wire, defined once. The server and the client both import it.
 * @packageDocumentation
 */
export * from './constants.js'
export * from './errors.js'
export * from './document-name.js'
export * from './awareness.js'
export * from './messages.js'
export * from './tandem.js'
export * from './lock-denied-error.js'
export * from './locked-error.js'
export * from './type-resource.js'
export * from './frame-kind.js'
export { END_REASONS, DROP_REASONS, leaveReason, isDrop, type EndReason, type DropReason } from './reasons.js'
export * from './resource-name.js'
