/** A URL without its password, for messages and logs. */
export function redactUrl (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparsable URL)'
  }
}

/** An error's message for one clear line; node's AggregateError (IPv4 and IPv6 both refused) has an empty one. */
export function errorMessage (err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return errorMessage(err.errors[0])
  const message = (err as Error)?.message
  return message === undefined || message === '' ? String((err as { code?: string })?.code ?? err) : message
}
