import { MAX_RESOURCE_NAME_LENGTH } from './constants.js'
import { codePointCount } from './code-points.js'
import { TandemError } from './errors.js'

/**
 * Checks a lock resource name: 1 to MAX_RESOURCE_NAME_LENGTH characters, counted as code points
 * (an emoji is one), as document names are. The one check, used by the client before it asks and
 * by every lock table before it grants.
 * @throws TandemError TANDEM_ERR_INVALID_RESOURCE
 */
export function validateResourceName (resource: string): void {
  if (typeof resource !== 'string') throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', `a ${typeof resource}`)
  if (resource.length === 0) throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', 'empty name')
  // no string of at most 256 units has more than 256 code points: count only longer ones
  if (resource.length > MAX_RESOURCE_NAME_LENGTH && codePointCount(resource, MAX_RESOURCE_NAME_LENGTH) > MAX_RESOURCE_NAME_LENGTH) {
    throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', `more than ${MAX_RESOURCE_NAME_LENGTH} characters`)
  }
}
