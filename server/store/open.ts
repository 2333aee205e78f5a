import { TandemError } from '../../shared/errors.js'
import type { ResolvedOptions } from '../config/config.js'
import type { Store } from './store.js'
import { MemoryStore } from './memory-store.js'
import { SqliteStore } from './sqlite-store.js'
import { PostgresStore } from './postgres-store.js'
import { errorMessage, redactUrl } from '../observability/error-text.js'

/** Opens the store the options name; rejects with one clear message if it cannot. */
export async function openStore (options: Pick<ResolvedOptions, 'persistence' | 'dataDir' | 'sqliteDurability'>): Promise<Store> {
  const { persistence } = options
  if (typeof persistence !== 'string') return persistence
  if (/^postgres(ql)?:\/\//.test(persistence)) {
    try {
      return await PostgresStore.open(persistence)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_STORE_UNAVAILABLE', `cannot open postgres store at ${redactUrl(persistence)}: ${errorMessage(err)}`, { cause: err })
    }
  }
  try {
    if (persistence === 'memory') return new MemoryStore()
    if (persistence === 'sqlite') return await SqliteStore.open(options.dataDir, { durability: options.sqliteDurability })
  } catch (err) {
    throw new TandemError('TANDEM_ERR_STORE_UNAVAILABLE', `cannot open ${persistence} store in ${options.dataDir}: ${(err as Error).message}`, { cause: err })
  }
  throw new TandemError('TANDEM_ERR_INVALID_OPTION', `persistence ${persistence} is not supported yet`)
}

