import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * A check of the cluster secret a request presents (`CLUSTER_SECRET_HEADER`). Both sides
 * are hashed first so that `timingSafeEqual` compares equal lengths: the time taken
 * depends on the presented value's length only, never on how much of it matches.
 */
export function createSecretCheck(secret: string): (presented: string | string[] | undefined) => boolean {
  const expected = digest(secret);
  return (presented) => typeof presented === 'string' && timingSafeEqual(digest(presented), expected);
}
