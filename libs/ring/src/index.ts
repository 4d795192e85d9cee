export { createRing } from './ring.ts';
export type { Ring, RingOptions } from './ring.ts';
export { TOPOLOGY_KEY, TOPOLOGY_CHANNEL, parseTopology, viewOf } from './topology.ts';
export type { Topology, TopologyView } from './topology.ts';
export { balancedPlacements } from './placement.ts';
export type { PlacementCandidate } from './placement.ts';
