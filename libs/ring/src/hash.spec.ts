import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmix64, fnv1a64 } from './hash.ts';

const MASK = (1n << 64n) - 1n;

function referenceFnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK;
  return h;
}

function referenceFmix64(k: bigint): bigint {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & MASK;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & MASK;
  return k ^ (k >> 33n);
}

const toBigInt = (out: Uint32Array) => (BigInt(out[0]!) << 32n) | BigInt(out[1]!);

/** Deterministic pseudo-random strings mixing ASCII, 2-, 3- and 4-byte UTF-8 and lone surrogates. */
function* sampleStrings(count: number): Generator<string> {
  let state = 0x2545f491;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const alphabet = ['a', 'z', '0', '~', '-', 'é', 'ß', '€', '中', '😀', '\ud800', '\udfff', '\u0000', '\u07ff', '\uffff'];
  for (let i = 0; i < count; i++) {
    let s = '';
    const length = next() % 24;
    for (let j = 0; j < length; j++) s += alphabet[next() % alphabet.length];
    yield s;
  }
}

test('fnv1a64 matches the published FNV-1a 64 test vectors', () => {
  const out = new Uint32Array(2);
  for (const [text, expected] of [
    ['', 0xcbf29ce484222325n],
    ['a', 0xaf63dc4c8601ec8cn],
    ['foobar', 0x85944171f73967e8n],
  ] as const) {
    fnv1a64(text, out);
    assert.equal(toBigInt(out), expected, JSON.stringify(text));
  }
});

test('fnv1a64 hashes the UTF-8 bytes TextEncoder produces, lone surrogates included', () => {
  const out = new Uint32Array(2);
  for (const text of sampleStrings(2000)) {
    fnv1a64(text, out);
    assert.equal(toBigInt(out), referenceFnv1a64(text), JSON.stringify(text));
  }
});

test('fmix64 on two 32-bit halves equals the 64-bit reference', () => {
  const out = new Uint32Array(2);
  const inputs = [0n, 1n, MASK, 1n << 63n, 0x0123456789abcdefn];
  for (const text of sampleStrings(2000)) inputs.push(referenceFnv1a64(text));
  for (const k of inputs) {
    fmix64(Number(k >> 32n), Number(k & 0xffffffffn), out);
    assert.equal(toBigInt(out), referenceFmix64(k), k.toString(16));
  }
});
