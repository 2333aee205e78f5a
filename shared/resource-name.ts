import { MAX_RESOURCE_NAME_LENGTH } from './constants.js'
import { TandemError } from './errors.js'

/**
 * Checks a lock resource name: 1 to MAX_RESOURCE_NAME_LENGTH characters. The one check, used by
 * the client before it asks and by every lock table before it grants.
 * @throws TandemError TANDEM_ERR_INVALID_RESOURCE
 */
export function validateResourceName (resource: string): void {
  if (typeof resource !== 'string' || resource.length === 0 || resource.length > MAX_RESOURCE_NAME_LENGTH) {
    throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', typeof resource === 'string' ? `${resource.length} characters` : `a ${typeof resource}`)
  }
}
