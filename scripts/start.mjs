#!/usr/bin/env node
console.log('skein: the local cluster (router and shards) is not built yet; `npm test` runs what exists.');
