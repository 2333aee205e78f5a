/**
 * Characters in `text` as a person counts them: Unicode code points, so that a character
 * outside the Basic Multilingual Plane (an emoji, a CJK extension ideograph) counts once, where
 * `text.length` counts its two UTF-16 units. A lone surrogate counts once too. Stops counting
 * past `stopAfter`: a limit check never walks more than the limit of a long string.
 */
export function codePointCount (text: string, stopAfter = Infinity): number {
  let count = 0
  for (let i = 0; i < text.length && count <= stopAfter; i++, count++) {
    const unit = text.charCodeAt(i)
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
    }
  }
  return count
}
