export { createRing } from './ring.ts';
export type { Ring, RingOptions } from './ring.ts';
