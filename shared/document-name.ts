import { MAX_DOCUMENT_NAME_LENGTH } from './constants.js'
import { TandemError } from './errors.js'
import { codePointCount } from './code-points.js'

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/**
 * The document name of a WebSocket request path: the percent-decoded path after the first `/`
 * (it may contain `/`). Throws TANDEM_ERR_INVALID_DOCUMENT_NAME for a name that is empty, too
 * long, badly encoded or has control characters.
 */
export function documentNameFromPath (pathname: string): string {
  let name: string
  try {
    name = decodeURIComponent(pathname.startsWith('/') ? pathname.slice(1) : pathname)
  } catch (err) {
    throw new TandemError('TANDEM_ERR_INVALID_DOCUMENT_NAME', 'bad percent-encoding', { cause: err })
  }
  validateDocumentName(name)
  return name
}

/**
 * Throws TANDEM_ERR_INVALID_DOCUMENT_NAME unless `name` is a valid document name: 1 to 512
 * characters counted as code points (an emoji is one), no control characters.
 */
export function validateDocumentName (name: string): void {
  if (name.length === 0) throw new TandemError('TANDEM_ERR_INVALID_DOCUMENT_NAME', 'empty name')
  // no string of at most 512 units has more than 512 code points: count only longer ones
  if (name.length > MAX_DOCUMENT_NAME_LENGTH && codePointCount(name, MAX_DOCUMENT_NAME_LENGTH) > MAX_DOCUMENT_NAME_LENGTH) {
    throw new TandemError('TANDEM_ERR_INVALID_DOCUMENT_NAME', `more than ${MAX_DOCUMENT_NAME_LENGTH} characters`)
  }
  if (CONTROL.test(name)) throw new TandemError('TANDEM_ERR_INVALID_DOCUMENT_NAME', 'control character')
}
