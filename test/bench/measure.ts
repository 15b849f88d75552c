/**
 * Timing loops shared by the bench pages (page.ts in Chromium, engines-page.ts in every engine).
 * Times are `performance.now()` differences, in µs per operation; pages are served cross-origin
 * isolated so that Firefox and WebKit do not coarsen the clock to 20 µs steps or more.
 */

/** One operation to time. */
export type Op = () => Promise<unknown>

/** µs per operation for `n` operations one after another. */
export async function seq(op: Op, n: number): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await op()
  return ((performance.now() - t0) * 1000) / n
}

/** µs per operation for `waves` waves of `width` operations in flight at once. */
export async function inflight(op: Op, width: number, waves: number): Promise<number> {
  const t0 = performance.now()
  for (let w = 0; w < waves; w++) await Promise.all(Array.from({ length: width }, op))
  return ((performance.now() - t0) * 1000) / (width * waves)
}

/**
 * The case and its baseline in alternating blocks, ABBA ABBA … (BAAB … on odd rounds):
 * this machine's noise comes in bursts (other processes share the two cores), and a burst
 * then lands on both sides of the pair instead of on whichever case ran at that moment.
 */
export async function pairedBlocks(
  measure: (op: Op) => Promise<number>,
  base: Op,
  op: Op,
  blocks: number,
  round: number,
) {
  let sumBase = 0
  let sumCase = 0
  for (let i = 0; i < blocks; i++) {
    const isCase = ((i + 1) >> 1) % 2 === 1 // blocks 0..7: A B B A A B B A
    if (isCase !== (round % 2 === 1)) sumCase += await measure(op)
    else sumBase += await measure(base)
  }
  return { value: sumCase / (blocks / 2), base: sumBase / (blocks / 2) }
}
