// Seeded randomness for the fuzzers in this folder: the mulberry32 generator of
// src/directory/generate.ts (prng), with the helpers every harness needs, and the
// per-iteration seed derivation (so a failure names one iteration seed to replay).
import { prng } from '../../src/directory/generate.js';

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** 0 <= n < max */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(arr: readonly T[]): T {
    return arr[this.int(arr.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** The seed of iteration i of a run with `seed`. */
export function iterationSeed(seed: number, i: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77)) >>> 0;
}

export class FuzzFailure extends Error {
  constructor(
    message: string,
    readonly iterationSeed: number,
  ) {
    super(`${message} (iteration seed ${iterationSeed})`);
  }
}

/** The run seed of a test: FUZZ_SEED when set, else the test's fixed default. */
export function testSeed(fallback: number): number {
  return process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : fallback;
}

/** Generic byte-level mutations (flip, insert, delete, duplicate, truncate, NUL, 8-bit, line ends). */
export function mutateBytes(rng: Rng, input: Buffer, rounds = rng.range(1, 4)): Buffer {
  let b = input;
  for (let k = 0; k < rounds; k++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(10)) {
      case 0: {
        if (b.length === 0) break;
        const c = Buffer.from(b);
        c[Math.min(at, c.length - 1)] ^= 1 << rng.int(8);
        b = c;
        break;
      }
      case 1:
        b = b.subarray(0, at);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16)))]);
        break;
      case 3: {
        const len = rng.range(1, 64);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 4:
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(rng.range(1, 4), 0), b.subarray(at)]);
        break;
      case 5:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 8)).map((x) => x | 0x80), b.subarray(at)]);
        break;
      case 6:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(['\r', '\n', '\r\n', '\n\r', '\r\r\n'])), b.subarray(at)]);
        break;
      case 7:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 32)), b.subarray(at)]);
        break;
      case 8: {
        const from = rng.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + rng.range(1, 200)), b.subarray(at)]);
        break;
      }
      default:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(['=', '\\', '"', ',', ';', '<', '>', '(', ')', '\x01', '=?', '?=', ':', ' ', '\t'])), b.subarray(at)]);
    }
  }
  return b;
}
