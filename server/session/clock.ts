/**
 * The clock of the times a connection keeps (its last frame in and out, its ping phase, its
 * activity, its message budget): ms since a day before this module loaded. Date.now() (about
 * 1.7e12) is not a small integer in V8, so every such field of every connection held a 16-byte
 * heap number; these stay small integers (Smis: up to 2^31 - 1 on 64-bit Node without pointer
 * compression) for the first 23 days of the process, and are exact numbers after (only bigger).
 * The day ahead keeps them positive and above any interval a time is taken back by (a session's
 * ping phase, 0 meaning none yet). Never sent nor stored: `wallTime` makes one a Date.now() time.
 */
const EPOCH = Date.now() - 86_400_000

/** Now, in ms since EPOCH (Date.now()'s clock: tests that fake Date move it too). */
export function ticks (): number {
  return asSmall(Date.now() - EPOCH)
}

/**
 * `value`, as a small integer when it is one: the difference of two Date.now() times is a heap
 * number in V8's interpreter even when it fits a small integer, and a field that was given one
 * keeps every value boxed. Any other value as it is.
 */
export function asSmall (value: number): number {
  const small = value | 0
  return small === value ? small : value
}

/** The Date.now() time of `at`, a time of `ticks`. */
export function wallTime (at: number): number {
  return at + EPOCH
}
