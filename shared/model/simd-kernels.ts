/**
 * Petri's WebAssembly module: loops in 128-bit SIMD that run in place on
 * tf.js's wasm heap (the module imports the backend's own memory), where
 * JavaScript loops over typed arrays ran at 3-6 ns per element. It holds
 * the batch-norm/ReLU passes, the SGD step, gathers and copies for the
 * convolution gradients, small GEMMs, and the Winograd transforms
 * (simd-winograd.ts). Pointers and strides are in bytes.
 *
 * The batch-norm passes walk `nb` blocks of L floats, L a multiple of 4
 * (four rows of C channels: any C works), and read per-channel
 * coefficients as arrays of length L (C values repeated four times). Sums
 * go to float64 accumulators of length L, which the caller folds to C;
 * nb > 0.
 */
import { Body, I32, V128, assemble } from './simd-asm.ts';
import { winogradFunctions } from './simd-winograd.ts';

/** A transform of simd-winograd.ts: (src, dst, count, groups, rowBytes, planeBytes, rows, srcRowStep, dstRowStep). */
type WinogradTransform = (
  src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number,
  rows: number, srcRowStep: number, dstRowStep: number,
) => void;

export interface SimdKernels {
  /** y = max(0, x*a + b). */
  affineRelu(x: number, y: number, a: number, b: number, lb: number, nb: number): void;
  /** acc[0, L) += x, acc[L, 2L) += x² (float64). */
  sums(x: number, lb: number, nb: number, acc: number): void;
  /** d = y > 0 ? dy : 0; acc[0, L) += d, acc[L, 2L) += d*(x - mean) (float64). */
  gradSums(x: number, y: number, dy: number, mean: number, lb: number, nb: number, acc: number): void;
  /** dx = d*k + (x - mean)*p + q with d as above. */
  gradApply(x: number, y: number, dy: number, mean: number, k: number, p: number, q: number, dx: number, lb: number, nb: number): void;
  /** See {@link sgdMomentum}. */
  sgdMomentum(w: number, v: number, g: number, newW: number, newV: number, blocks: number, coef: number): void;
  /** See {@link shortGemm}. */
  shortGemm(a: number, b: number, c: number, tBlocks: number, oBlocks: number, p: number, rowBytes: number, bRowBytes: number): void;
  /** shortGemm over `planes` planes: the pointers move by aPlane, bPlane and cPlane bytes (see {@link planesOf}). */
  shortGemmPlanes(
    a: number, b: number, c: number, tBlocks: number, oBlocks: number, p: number, rowBytes: number, bRowBytes: number,
    planes: number, aPlane: number, bPlane: number, cPlane: number,
  ): void;
  /** tnGemm over `planes` planes, likewise. */
  tnGemmPlanes(
    a: number, b: number, c: number, cBlocks: number, oBlocks: number, count: number, aRowBytes: number, bRowBytes: number, cRowBytes: number,
    planes: number, aPlane: number, bPlane: number, cPlane: number,
  ): void;
  /** See {@link addInto}. */
  addInto(dst: number, src: number, blocks: number): void;
  /** See {@link tnGemm}. */
  tnGemm(a: number, b: number, c: number, cBlocks: number, oBlocks: number, count: number, aRowBytes: number, bRowBytes: number, cRowBytes: number): void;
  /** Winograd transforms (simd-winograd.ts): `count` tiles of `groups` four-channel groups. */
  winograd2Input: WinogradTransform;
  winograd2Output: WinogradTransform;
  winograd2Filter: WinogradTransform;
  winograd2GradOutput: WinogradTransform;
  winograd2FilterGrad: WinogradTransform;
  winograd4Input: WinogradTransform;
  winograd4Output: WinogradTransform;
  winograd4Filter: WinogradTransform;
  winograd4GradOutput: WinogradTransform;
  winograd4FilterGrad: WinogradTransform;
  /** See {@link copyRuns}; strides in bytes. */
  copyRuns(
    src: number, dst: number, rows: number, srcRowBytes: number, dstRowBytes: number,
    runs: number, runBytes: number, srcRunBytes: number, dstRunBytes: number,
  ): void;
}

const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/** acc(ptr, off) += promote(low or high pair of local v). */
function accumulate(b: Body, ptr: number, v: number, high: boolean, square: boolean): void {
  b.get(ptr); // store address
  b.load(ptr, high ? 16 : 0);
  b.get(v);
  if (high) b.get(v).shuffle(HIGH_HALF);
  b.simd('f64x2.promote_low_f32x4');
  if (square) {
    b.get(v);
    if (high) b.get(v).shuffle(HIGH_HALF);
    b.simd('f64x2.promote_low_f32x4').simd('f64x2.mul');
  }
  b.simd('f64x2.add').store(high ? 16 : 0);
}

function affineRelu(): Body {
  // params x0 y1 a2 b3 lb4 nb5; locals pa6 pb7 end8; zero9
  const b = new Body(6, [{ type: I32, count: 3 }, { type: V128, count: 1 }]);
  b.f32(0).simd('f32x4.splat').set(9);
  b.doWhile(() => {
    b.get(2).set(6).get(3).set(7).get(2).get(4).op('i32.add').set(8);
    b.doWhile(() => {
      b.get(1);
      b.load(0).load(6).simd('f32x4.mul').load(7).simd('f32x4.add').get(9).simd('f32x4.pmax');
      b.store();
      b.addTo(0, 16).addTo(1, 16).addTo(6, 16).addTo(7, 16);
      b.get(6).get(8).op('i32.lt_u');
    });
    b.get(5).i32(1).op('i32.sub').tee(5);
  });
  return b;
}

function sums(): Body {
  // params x0 lb1 nb2 acc3; locals p4 q5 end6; v7
  const b = new Body(4, [{ type: I32, count: 3 }, { type: V128, count: 1 }]);
  b.doWhile(() => {
    b.get(3).set(4).get(3).get(1).get(1).op('i32.add').op('i32.add').tee(5).set(6);
    b.doWhile(() => {
      b.load(0).set(7);
      accumulate(b, 4, 7, false, false);
      accumulate(b, 4, 7, true, false);
      accumulate(b, 5, 7, false, true);
      accumulate(b, 5, 7, true, true);
      b.addTo(0, 16).addTo(4, 32).addTo(5, 32);
      b.get(4).get(6).op('i32.lt_u');
    });
    b.get(2).i32(1).op('i32.sub').tee(2);
  });
  return b;
}

/** Pushes d = dy & (y > 0) for the pointers in locals y and dy. */
function masked(b: Body, y: number, dy: number, zero: number): void {
  b.load(dy).load(y).get(zero).simd('f32x4.gt').simd('v128.and');
}

function gradSums(): Body {
  // params x0 y1 dy2 mean3 lb4 nb5 acc6; locals p7 q8 end9 pm10; zero11 d12 t13
  const b = new Body(7, [{ type: I32, count: 4 }, { type: V128, count: 3 }]);
  b.f32(0).simd('f32x4.splat').set(11);
  b.doWhile(() => {
    b.get(6).set(7).get(6).get(4).get(4).op('i32.add').op('i32.add').tee(8).set(9).get(3).set(10);
    b.doWhile(() => {
      masked(b, 1, 2, 11);
      b.tee(12).load(0).load(10).simd('f32x4.sub').simd('f32x4.mul').set(13);
      accumulate(b, 7, 12, false, false);
      accumulate(b, 7, 12, true, false);
      accumulate(b, 8, 13, false, false);
      accumulate(b, 8, 13, true, false);
      b.addTo(0, 16).addTo(1, 16).addTo(2, 16).addTo(10, 16).addTo(7, 32).addTo(8, 32);
      b.get(7).get(9).op('i32.lt_u');
    });
    b.get(5).i32(1).op('i32.sub').tee(5);
  });
  return b;
}

function gradApply(): Body {
  // params x0 y1 dy2 mean3 k4 p5 q6 dx7 lb8 nb9; locals pm10 pk11 pp12 pq13 end14; zero15
  const b = new Body(10, [{ type: I32, count: 5 }, { type: V128, count: 1 }]);
  b.f32(0).simd('f32x4.splat').set(15);
  b.doWhile(() => {
    b.get(3).set(10).get(4).set(11).get(5).set(12).get(6).set(13).get(3).get(8).op('i32.add').set(14);
    b.doWhile(() => {
      b.get(7);
      masked(b, 1, 2, 15);
      b.load(11).simd('f32x4.mul');
      b.load(0).load(10).simd('f32x4.sub').load(12).simd('f32x4.mul').simd('f32x4.add');
      b.load(13).simd('f32x4.add');
      b.store();
      b.addTo(0, 16).addTo(1, 16).addTo(2, 16).addTo(7, 16).addTo(10, 16).addTo(11, 16).addTo(12, 16).addTo(13, 16);
      b.get(10).get(14).op('i32.lt_u');
    });
    b.get(9).i32(1).op('i32.sub').tee(9);
  });
  return b;
}

/**
 * A 2-D grid of runs copied from src to dst: rows x runs, each run
 * `runBytes` long (a multiple of 4), at the given byte strides. Sixteen
 * bytes per step, then floats.
 */
function copyRuns(): Body {
  // params src0 dst1 rows2 srcRow3 dstRow4 runs5 runBytes6 srcRun7 dstRun8; locals r9 s10 d11 k12
  const b = new Body(9, [{ type: I32, count: 4 }]);
  b.whileLoop(
    () => { b.get(2); },
    () => {
      b.get(0).set(10).get(1).set(11).get(5).set(9);
      b.whileLoop(
        () => { b.get(9); },
        () => {
          b.i32(0).set(12);
          b.whileLoop(
            () => { b.get(12).i32(16).op('i32.add').get(6).op('i32.lt_s').get(12).i32(16).op('i32.add').get(6).op('i32.eq').op('i32.or'); },
            () => {
              b.get(11).get(12).op('i32.add').get(10).get(12).op('i32.add').simd('v128.load', { align: 2, offset: 0 }).store();
              b.addTo(12, 16);
            },
          );
          b.whileLoop(
            () => { b.get(12).get(6).op('i32.lt_s'); },
            () => {
              b.get(11).get(12).op('i32.add').get(10).get(12).op('i32.add').mem('f32.load').mem('f32.store');
              b.addTo(12, 4);
            },
          );
          b.addLocal(10, 7).addLocal(11, 8);
          b.get(9).i32(1).op('i32.sub').set(9);
        },
      );
      b.addLocal(0, 3).addLocal(1, 4);
      b.get(2).i32(1).op('i32.sub').set(2);
    },
  );
  return b;
}

/**
 * SGD with momentum and weight decay over `n4` blocks of four floats, in
 * the order and float32 rounding of tf.js ops: g' = g + w*wd,
 * v' = v*momentum + g', w' = w - v'*lr. `coef` points at [lr, momentum, wd].
 */
function sgdMomentum(): Body {
  // params w0 v1 g2 w'3 v'4 n4_5 coef6; locals lr7 mom8 wd9 vel10 (v128)
  const b = new Body(7, [{ type: V128, count: 4 }]);
  b.get(6).mem('f32.load', 0).simd('f32x4.splat').set(7);
  b.get(6).mem('f32.load', 4).simd('f32x4.splat').set(8);
  b.get(6).mem('f32.load', 8).simd('f32x4.splat').set(9);
  b.whileLoop(
    () => { b.get(5); },
    () => {
      // v' = v*momentum + (g + w*wd)
      b.get(4);
      b.load(1).get(8).simd('f32x4.mul');
      b.load(2).load(0).get(9).simd('f32x4.mul').simd('f32x4.add');
      b.simd('f32x4.add').tee(10).store();
      // w' = w - v'*lr
      b.get(3).load(0).get(10).get(7).simd('f32x4.mul').simd('f32x4.sub').store();
      b.addTo(0, 16).addTo(1, 16).addTo(2, 16).addTo(3, 16).addTo(4, 16);
      b.get(5).i32(1).op('i32.sub').set(5);
    },
  );
  return b;
}

/**
 * local acc += local s * local v: a fused multiply-add (relaxed SIMD) in
 * the module built with `fma`, a multiply and an add otherwise.
 */
function madd(b: Body, fma: boolean, acc: number, s: number, v: number): void {
  if (fma) b.get(s).get(v).get(acc).simd('f32x4.relaxed_madd').set(acc);
  else b.get(acc).get(s).get(v).simd('f32x4.mul').simd('f32x4.add').set(acc);
}

/**
 * C[t, o] = sum over p of A[t, p] * B[p, o] for a short A ([4*tBlocks, P],
 * rows `rowBytes` apart) and B ([P, 8*oBlocks] at `bRowBytes` per row):
 * a 4x8 block of C in eight vector accumulators while p runs over the
 * whole inner dimension. For filter gradients of few taps (the first conv
 * layer: 27 rows), where a GEMM library's tiles are mostly padding.
 * C is [4*tBlocks, oBlocks*8] with `bRowBytes` per row.
 */
function shortGemm(fma: boolean): Body {
  // params a0 b1 c2 tBlocks3 oBlocks4 p5 rowBytes6 bRowBytes7
  // locals i32: tb8 ob9 k10 pa0_11 pa1_12 pa2_13 pa3_14 pb15 pc16 ; v128: acc17..24 b0_25 b1_26 s27
  const b = new Body(8, [{ type: I32, count: 9 }, { type: V128, count: 11 }]);
  const acc = (i: number): number => 17 + i;
  b.i32(0).set(8);
  b.whileLoop(
    () => { b.get(8).get(3).op('i32.lt_s'); },
    () => {
      b.i32(0).set(9);
      b.whileLoop(
        () => { b.get(9).get(4).op('i32.lt_s'); },
        () => {
          for (let i = 0; i < 8; i++) b.f32(0).simd('f32x4.splat').set(acc(i));
          // A rows 4*tb .. 4*tb+3, B columns 8*ob .. 8*ob+7.
          b.get(0).get(8).i32(4).op('i32.mul').get(6).op('i32.mul').op('i32.add').set(11);
          b.get(11).get(6).op('i32.add').set(12);
          b.get(12).get(6).op('i32.add').set(13);
          b.get(13).get(6).op('i32.add').set(14);
          b.get(1).get(9).i32(32).op('i32.mul').op('i32.add').set(15);
          b.get(5).set(10);
          b.whileLoop(
            () => { b.get(10); },
            () => {
              b.load(15).set(25).load(15, 16).set(26);
              for (let r = 0; r < 4; r++) {
                b.get(11 + r).simd('v128.load32_splat', { align: 2, offset: 0 }).set(27);
                madd(b, fma, acc(2 * r), 27, 25);
                madd(b, fma, acc(2 * r + 1), 27, 26);
              }
              b.addTo(11, 4).addTo(12, 4).addTo(13, 4).addTo(14, 4).addLocal(15, 7);
              b.get(10).i32(1).op('i32.sub').set(10);
            },
          );
          // C row 4*tb + r, columns 8*ob ..: c + (4*tb + r)*bRowBytes + 32*ob.
          b.get(2).get(8).i32(4).op('i32.mul').get(7).op('i32.mul').op('i32.add').get(9).i32(32).op('i32.mul').op('i32.add').set(16);
          for (let r = 0; r < 4; r++) {
            b.get(16).get(acc(2 * r)).store(0);
            b.get(16).get(acc(2 * r + 1)).store(16);
            b.addLocal(16, 7);
          }
          b.addTo(9, 1);
        },
      );
      b.addTo(8, 1);
    },
  );
  return b;
}

/** dst += src over `blocks` blocks of four floats (the filter gradient's per-thread partial sums). */
function addInto(): Body {
  // params dst0 src1 blocks2
  const b = new Body(3, []);
  b.whileLoop(
    () => { b.get(2); },
    () => {
      b.get(0).load(0).load(1).simd('f32x4.add').store();
      b.addTo(0, 16).addTo(1, 16);
      b.get(2).i32(1).op('i32.sub').set(2);
    },
  );
  return b;
}

/**
 * C += Aᵀ·B: A is [count][4*cBlocks] (rows `aRowBytes` apart), B is
 * [count][8*oBlocks] (rows `bRowBytes` apart), C is [4*cBlocks][8*oBlocks]
 * (rows `cRowBytes` apart). A 4x8 block of C stays in registers while the
 * loop runs over the `count` rows.
 */
function tnGemm(fma: boolean): Body {
  // params a0 b1 c2 cBlocks3 oBlocks4 count5 aRow6 bRow7 cRow8
  // locals i32: cb9 ob10 t11 pa12 pb13 pc14 q15; v128: acc 16..23, av 24, b0 25, b1 26, lane 27
  const b = new Body(9, [{ type: I32, count: 7 }, { type: V128, count: 12 }]);
  const acc = (i: number): number => 16 + i;
  b.i32(0).set(9);
  b.whileLoop(
    () => { b.get(9).get(3).op('i32.lt_s'); },
    () => {
      b.i32(0).set(10);
      b.whileLoop(
        () => { b.get(10).get(4).op('i32.lt_s'); },
        () => {
          // C rows 4*cb .. 4*cb+3, columns 8*ob ..
          b.get(2).get(9).i32(4).op('i32.mul').get(8).op('i32.mul').op('i32.add').get(10).i32(32).op('i32.mul').op('i32.add').set(14);
          b.get(14).set(15);
          for (let r = 0; r < 4; r++) {
            b.load(15).set(acc(2 * r)).load(15, 16).set(acc(2 * r + 1));
            if (r < 3) b.addLocal(15, 8);
          }
          b.get(0).get(9).i32(16).op('i32.mul').op('i32.add').set(12);
          b.get(1).get(10).i32(32).op('i32.mul').op('i32.add').set(13);
          b.get(5).set(11);
          b.whileLoop(
            () => { b.get(11); },
            () => {
              b.load(13).set(25).load(13, 16).set(26);
              for (let r = 0; r < 4; r++) {
                b.get(12).simd('v128.load32_splat', { align: 2, offset: 4 * r }).set(27);
                madd(b, fma, acc(2 * r), 27, 25);
                madd(b, fma, acc(2 * r + 1), 27, 26);
              }
              b.addLocal(12, 6).addLocal(13, 7);
              b.get(11).i32(1).op('i32.sub').set(11);
            },
          );
          b.get(14).set(15);
          for (let r = 0; r < 4; r++) {
            b.get(15).get(acc(2 * r)).store(0);
            b.get(15).get(acc(2 * r + 1)).store(16);
            if (r < 3) b.addLocal(15, 8);
          }
          b.addTo(10, 1);
        },
      );
      b.addTo(9, 1);
    },
  );
  return b;
}

/**
 * `planes` calls of function `inner` (whose first three parameters are the
 * pointers A, B and C), A, B and C moving on by their plane strides after
 * each: the per-plane GEMMs of a Winograd chunk in one call.
 */
function planesOf(inner: number, params: number): Body {
  // params: inner's (0 .. params-1), then planes, aPlane, bPlane, cPlane
  const b = new Body(params + 4, []);
  const planes = params;
  b.whileLoop(
    () => { b.get(planes); },
    () => {
      for (let i = 0; i < params; i++) b.get(i);
      b.call(inner);
      b.addLocal(0, planes + 1).addLocal(1, planes + 2).addLocal(2, planes + 3);
      b.get(planes).i32(1).op('i32.sub').set(planes);
    },
  );
  return b;
}

/**
 * The module's bytes, importing a shared or an unshared memory. With `fma`
 * the GEMMs multiply-add with relaxed SIMD's f32x4.relaxed_madd (Chromium
 * has it; Node 20 behind --experimental-wasm-relaxed-simd), 1.3-1.4x
 * faster here; see {@link relaxedSimd}.
 */
export function simdModuleBytes(sharedMemory: boolean, fma = false): Uint8Array<ArrayBuffer> {
  const functions: { name: string; body: Body }[] = [
    { name: 'affineRelu', body: affineRelu() },
    { name: 'sums', body: sums() },
    { name: 'gradSums', body: gradSums() },
    { name: 'gradApply', body: gradApply() },
    { name: 'copyRuns', body: copyRuns() },
    { name: 'sgdMomentum', body: sgdMomentum() },
    { name: 'shortGemm', body: shortGemm(fma) },
    { name: 'tnGemm', body: tnGemm(fma) },
    { name: 'addInto', body: addInto() },
    ...winogradFunctions(2),
    ...winogradFunctions(4),
  ];
  const index = (name: string): number => functions.findIndex((f) => f.name === name);
  functions.push(
    { name: 'shortGemmPlanes', body: planesOf(index('shortGemm'), 8) },
    { name: 'tnGemmPlanes', body: planesOf(index('tnGemm'), 9) },
  );
  return assemble(functions, sharedMemory);
}

/** The parts of the WebAssembly JS API used here (shared/ is typed without DOM or Node globals). */
export interface WasmMemoryLike {
  readonly buffer: ArrayBufferLike;
}
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Memory: abstract new (...args: never[]) => WasmMemoryLike;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
}

/** The WebAssembly API of this runtime, if it has one. */
export const webAssembly = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;

let relaxedSupported: boolean | undefined;

/** Turned off before the first module is built, the GEMMs keep mul+add where the runtime has relaxed SIMD (PETRI_RELAXED_SIMD=0 in Node). */
export const relaxedSimdSwitch = { allowed: true };

/** Whether the module with `fma` validates in this runtime now (not cached: a Node flag can change it). */
export function relaxedSimdValidates(): boolean {
  if (webAssembly === undefined) return false;
  try {
    return webAssembly.validate(simdModuleBytes(false, true));
  } catch {
    return false;
  }
}

/** Whether the GEMMs use relaxed SIMD: allowed, and the module with `fma` validates in this runtime. */
export function relaxedSimd(): boolean {
  if (webAssembly === undefined || !relaxedSimdSwitch.allowed) return false;
  relaxedSupported ??= relaxedSimdValidates();
  return relaxedSupported;
}

const instances = new WeakMap<WasmMemoryLike, SimdKernels | null>();

/**
 * The kernels bound to a memory (a WebAssembly.Memory), or null where this
 * WebAssembly has no SIMD or the module does not link (then callers use
 * their JavaScript loops).
 */
export function simdKernelsFor(memory: WasmMemoryLike): SimdKernels | null {
  const known = instances.get(memory);
  if (known !== undefined) return known;
  let kernels: SimdKernels | null = null;
  try {
    if (webAssembly === undefined) throw new Error('no WebAssembly');
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new webAssembly.Module(simdModuleBytes(shared, relaxedSimd()));
    const instance = new webAssembly.Instance(module, { env: { memory } });
    kernels = instance.exports as SimdKernels;
  } catch {
    kernels = null;
  }
  instances.set(memory, kernels);
  return kernels;
}
