/**
 * Reads the rows of one bytea column that `COPY ... TO STDOUT (FORMAT binary)` sends, chunk by
 * chunk as they come off the socket: each value arrives as its bytes. pg's ordinary results send a
 * bytea as hex text that pg decodes on the event loop in one piece (a 50 MiB document held it
 * 260-310 ms); here no chunk costs more than its copy.
 *
 * The format (PostgreSQL's COPY binary): an 11-byte signature, a 32-bit flags field and a 32-bit
 * header extension length (and that many bytes); then each row as a 16-bit field count (-1 ends
 * the data), and each field as a 32-bit length (-1 for NULL) and its bytes. All big-endian.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

export class BinaryCopyReader {
  /** The rows' values, whole, in order. */
  readonly values: Uint8Array[] = []
  private pending: Buffer[] = []
  private pendingBytes = 0
  private headerRead = false
  private ended = false
  /** The value being filled: its bytes so far, and where the next chunk goes. */
  private value: Uint8Array | null = null
  private filled = 0

  /** Takes the next chunk of the stream. Throws on anything the format does not allow. */
  push (chunk: Buffer): void {
    if (this.ended) {
      if (chunk.byteLength > 0) throw new Error('COPY binary: data after its end')
      return
    }
    let at = 0
    if (this.value !== null) at = this.fill(chunk, 0)
    if (at < chunk.byteLength) {
      this.pending.push(at === 0 ? chunk : chunk.subarray(at))
      this.pendingBytes += chunk.byteLength - at
    }
    this.parse()
  }

  /** The stream ended: throws unless it ended where the format does. */
  end (): Uint8Array[] {
    if (!this.ended) throw new Error('COPY binary: the data ended early')
    return this.values
  }

  /** Copies what `chunk` holds of the value being filled from `at`; returns where it stopped. */
  private fill (chunk: Buffer, at: number): number {
    const value = this.value as Uint8Array
    const take = Math.min(value.byteLength - this.filled, chunk.byteLength - at)
    value.set(chunk.subarray(at, at + take), this.filled)
    this.filled += take
    if (this.filled === value.byteLength) {
      this.values.push(value)
      this.value = null
    }
    return at + take
  }

  /** Reads headers and row starts from the pending bytes while they are whole. */
  private parse (): void {
    for (;;) {
      if (this.value !== null) {
        if (this.pendingBytes === 0) return
        const joined = this.take(this.pendingBytes)
        const at = this.fill(joined, 0)
        if (at < joined.byteLength) this.unshift(joined.subarray(at))
        continue
      }
      if (this.ended) {
        if (this.pendingBytes > 0) throw new Error('COPY binary: data after its end')
        return
      }
      if (!this.headerRead) {
        if (this.pendingBytes < 19) return
        const head = this.peek(19)
        if (!head.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary: not a binary COPY stream')
        const extension = head.readUInt32BE(15)
        if (this.pendingBytes < 19 + extension) return
        this.take(19 + extension)
        this.headerRead = true
        continue
      }
      if (this.pendingBytes < 2) return
      const fields = this.peek(2).readInt16BE(0)
      if (fields === -1) {
        this.take(2)
        this.ended = true
        continue
      }
      if (fields !== 1) throw new Error(`COPY binary: a row of ${fields} fields, where one was asked for`)
      if (this.pendingBytes < 6) return
      const length = this.take(6).readInt32BE(2)
      if (length < 0) throw new Error('COPY binary: a NULL value')
      this.value = new Uint8Array(length)
      this.filled = 0
      if (length === 0) {
        this.values.push(this.value)
        this.value = null
      }
    }
  }

  /** The first `n` pending bytes, left pending. */
  private peek (n: number): Buffer {
    const first = this.pending[0] as Buffer
    if (first.byteLength >= n) return first.subarray(0, n)
    const joined = Buffer.concat(this.pending, this.pendingBytes)
    this.pending = [joined]
    return joined.subarray(0, n)
  }

  /** Removes and returns the first `n` pending bytes. */
  private take (n: number): Buffer {
    const out = this.peek(n)
    const first = this.pending[0] as Buffer
    if (first.byteLength === n) this.pending.shift()
    else this.pending[0] = first.subarray(n)
    this.pendingBytes -= n
    return out
  }

  private unshift (bytes: Buffer): void {
    this.pending.unshift(bytes)
    this.pendingBytes += bytes.byteLength
  }
}
