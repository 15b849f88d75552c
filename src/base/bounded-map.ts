/** The one eviction rule of every cache here (targets, token hashes, nonces, replaced tokens). Internal. */

/**
 * @internal Sets `key` as the newest entry of `map`, then drops the oldest entries beyond
 * `max`: a hostile server or page cannot grow a cache without bound.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > max) map.delete(map.keys().next().value as K)
}
