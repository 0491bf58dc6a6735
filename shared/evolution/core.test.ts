import { describe, expect, it } from 'vitest';
import { canonicalDna, dnaId } from './canonical.ts';
import { initialDna, type Dna } from './dna.ts';
import { convChain, referenceDnas } from './fixtures.ts';
import { flopsReport, forwardFlopsPerImage } from './flops.ts';
import { createRng } from './rng.ts';
import { parameterCount, tensorSpecs } from './tensors.ts';
import { DnaError, parseDna } from './validate.ts';
import { sha256Hex } from '../util/sha256.ts';

describe('rng', () => {
  it('gives the same stream for the same seed and different streams for different seeds', () => {
    const a = createRng('seed-1');
    const b = createRng('seed-1');
    const c = createRng('seed-2');
    const xs = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(xs);
  });

  it('pins the stream of a known seed (regression: must match browsers)', () => {
    const r = createRng(42);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toMatchInlineSnapshot(`
      [
        2837322924,
        544945897,
        479756282,
      ]
    `);
  });

  it('draws integers uniformly within bounds', () => {
    const r = createRng(7);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 50_000; i++) counts[r.int(0, 4)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(() => r.int(3, 2)).toThrow(RangeError);
  });
});

describe('sha256', () => {
  it('matches the standard test vectors', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('a'.repeat(1000))).toBe('41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3');
  });
});

describe('DNA validation', () => {
  const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(referenceDnas()[2]?.dna));
  const faultOf = (mutate: (d: Record<string, unknown> & { edges: Record<string, unknown>[]; vertices: Record<string, unknown>[] }) => void): string => {
    const d = good() as Record<string, unknown> & { edges: Record<string, unknown>[]; vertices: Record<string, unknown>[] };
    mutate(d);
    try {
      parseDna(d);
    } catch (err) {
      expect(err).toBeInstanceOf(DnaError);
      return (err as Error).message;
    }
    throw new Error('expected the DNA to be rejected');
  };

  it('accepts the reference DNAs and round-trips them through JSON', () => {
    for (const { dna } of referenceDnas()) expect(parseDna(JSON.parse(JSON.stringify(dna)))).toEqual(dna);
  });

  it('names each fault', () => {
    expect(faultOf((d) => ((d.edges[0] as Record<string, unknown>).filterHeight = 4))).toMatch(/even filter height 4/);
    expect(faultOf((d) => ((d.edges[0] as Record<string, unknown>).stride = 3))).toMatch(/stride 3 is not a power of two/);
    expect(faultOf((d) => ((d.edges[0] as Record<string, unknown>).channels = 0))).toMatch(/channels 0 out of range/);
    expect(faultOf((d) => ((d.edges[0] as Record<string, unknown>).channels = 5000))).toMatch(/channels 5000 out of range/);
    expect(faultOf((d) => ((d.edges[0] as Record<string, unknown>).to = 'v99'))).toMatch(/dangling edge e2: no vertex v99/);
    expect(faultOf((d) => (d.extra = 1))).toMatch(/extra/);
    expect(faultOf((d) => ((d.vertices[1] as Record<string, unknown>).color = 'red'))).toMatch(/color/);
    expect(faultOf((d) => (d.output = 'v77'))).toMatch(/missing output vertex v77/);
    expect(faultOf((d) => (d.input = 'v55'))).toMatch(/missing input vertex v55/);
    expect(faultOf((d) => (d.learningRate = Number.NaN))).toMatch(/learningRate/);
    expect(faultOf((d) => (d.learningRate = -1))).toMatch(/learning rate -1 is outside/);
    expect(
      faultOf((d) => d.edges.push({ id: 'e0', from: 'v5', to: 'v1', role: 'skip', type: 'identity' })),
    ).toMatch(/cycle through v1 -> v3 -> v5 -> v1/);
    expect(faultOf((d) => delete (d as Record<string, unknown>).edges)).toMatch(/edges/);
  });

  it('refuses prototype keys and non-objects', () => {
    expect(() => parseDna(JSON.parse('{"__proto__": {"x": 1}}'))).toThrow(DnaError);
    expect(() => parseDna(null)).toThrow(DnaError);
    expect(() => parseDna('dna')).toThrow(DnaError);
  });
});

describe('canonical form and content id', () => {
  it('does not depend on key or array order', () => {
    const dna = referenceDnas()[2]?.dna as Dna;
    const shuffled: Dna = {
      ...dna,
      edges: [...dna.edges].reverse(),
      vertices: [...dna.vertices].reverse(),
    };
    const reKeyed = JSON.parse(JSON.stringify(shuffled, Object.keys(shuffled).reverse().concat(['id', 'type', 'to', 'from', 'role', 'activation', 'stride', 'channels', 'filterWidth', 'filterHeight'])));
    expect(canonicalDna(shuffled)).toBe(canonicalDna(dna));
    expect(dnaId(reKeyed)).toBe(dnaId(dna));
    expect(dnaId(dna)).toMatch(/^dna-[0-9a-f]{24}$/);
    expect(dnaId({ ...dna, learningRate: 0.2 })).not.toBe(dnaId(dna));
  });
});

describe('tensors and FLOPs', () => {
  it('lists the tensors of the initial DNA: only the classifier', () => {
    const specs = tensorSpecs(initialDna([32, 32, 3], 10));
    expect(specs.map((s) => [s.key, s.shape])).toEqual([
      ['classifier/kernel', [3, 10]],
      ['classifier/bias', [10]],
    ]);
    expect(parameterCount(initialDna([32, 32, 3], 10))).toBe(40);
  });

  it('counts the 3-conv reference net as the machine facts do (about 20.6 MFLOPs forward)', () => {
    const dna = referenceDnas()[1]?.dna as Dna;
    const forward = forwardFlopsPerImage(dna);
    // Convolutions alone: 2*9*(3*32*32*32 + 32*64*16*16 + 64*128*8*8) = 20.64M; BN, pooling and the classifier add a little.
    expect(forward).toBeGreaterThan(20.64e6);
    expect(forward).toBeLessThan(21e6);
    const report = flopsReport(dna, 50, 5000);
    expect(report.trainingPerStep).toBe(3 * forward * 50);
    expect(report.validation).toBe(forward * 5000);
    // Kernels 3*3*(3*32+32*64+64*128) + BN 2*(32+64+128) + classifier 128*10+10.
    expect(report.params).toBe(9 * (96 + 2048 + 8192) + 2 * 224 + 1290);
  });

  it('derives shapes through strides with ceil division (28 -> 14 -> 7 -> 4)', () => {
    const dna = convChain([28, 28, 1], 10, [{ channels: 8, stride: 2 }, { channels: 8, stride: 2 }, { channels: 8, stride: 2 }], [[0, 3]]);
    expect(tensorSpecs(dna).find((s) => s.key === 'classifier/kernel')?.shape).toEqual([8, 10]);
    expect(forwardFlopsPerImage(dna)).toBeGreaterThan(0);
  });
});
