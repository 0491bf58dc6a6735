/**
 * Batch-norm/ReLU passes in 128-bit WebAssembly SIMD, run in place on
 * tf.js's wasm heap (the module imports the backend's own memory).
 * JavaScript loops over typed arrays ran these at 3-6 ns per element
 * (branchy ReLU, per-channel loads); these run a vector of four per step.
 *
 * Every function walks `nb` blocks of L floats, L a multiple of 4 (four
 * rows of C channels: any C works), and reads per-channel coefficients as
 * arrays of length L (C values repeated four times). Sums go to float64
 * accumulators of length L, which the caller folds to C. Pointers and
 * lengths are in bytes; nb > 0.
 */
import { Body, I32, V128, assemble } from './simd-asm.ts';
import { winograd4Functions } from './simd-winograd.ts';

export interface SimdKernels {
  /** y = max(0, x*a + b). */
  affineRelu(x: number, y: number, a: number, b: number, lb: number, nb: number): void;
  /** acc[0, L) += x, acc[L, 2L) += x² (float64). */
  sums(x: number, lb: number, nb: number, acc: number): void;
  /** d = y > 0 ? dy : 0; acc[0, L) += d, acc[L, 2L) += d*(x - mean) (float64). */
  gradSums(x: number, y: number, dy: number, mean: number, lb: number, nb: number, acc: number): void;
  /** dx = d*k + (x - mean)*p + q with d as above. */
  gradApply(x: number, y: number, dy: number, mean: number, k: number, p: number, q: number, dx: number, lb: number, nb: number): void;
  /** See {@link im2colTap}: all but the pointers and byte strides in elements. */
  im2colTap(
    src: number, dst: number, planes: number, planeBytes: number, oh: number, ow: number,
    rowStepBytes: number, colStepBytes: number, y0: number, y1: number, x0: number, x1: number,
  ): void;
  /** See {@link sgdMomentum}. */
  sgdMomentum(w: number, v: number, g: number, newW: number, newV: number, blocks: number, coef: number): void;
  /** See {@link shortGemm}. */
  shortGemm(a: number, b: number, c: number, tBlocks: number, oBlocks: number, p: number, rowBytes: number, bRowBytes: number): void;
  /** See {@link winogradInput}: pointers and strides in bytes, `groups` = channels / 4. */
  winogradInput(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  /** See {@link winogradOutput}. */
  winogradOutput(src: number, dst: number, count: number, groups: number, planeBytes: number, rowBytes: number): void;
  /** See {@link winogradFilter}. */
  winogradFilter(src: number, dst: number, groups: number, planeBytes: number): void;
  /** See {@link winogradGradOutput}. */
  winogradGradOutput(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  /** See {@link tnGemm}. */
  tnGemm(a: number, b: number, c: number, cBlocks: number, oBlocks: number, count: number, aRowBytes: number, bRowBytes: number, cRowBytes: number): void;
  /** See {@link winogradFilterGrad}. */
  winogradFilterGrad(src: number, dst: number, groups: number, srcPlane: number, dstPlane: number): void;
  /** F(4x4, 3x3) transforms (simd-winograd.ts): `count` tiles of `groups` four-channel groups. */
  winograd4Input(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  winograd4Output(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  winograd4Filter(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  winograd4GradOutput(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
  winograd4FilterGrad(src: number, dst: number, count: number, groups: number, rowBytes: number, planeBytes: number): void;
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

const EVEN_LANES = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];

/**
 * One filter tap of an im2col matrix, transposed: for each of `planes`
 * source planes (row-major, `planeBytes` apart) writes oh rows of ow
 * floats, dst[y][x] = src[y*rowStep + x*colStep] where y0 <= y < y1 and
 * x0 <= x < x1, else 0 (the padding). `src` points at where (0, 0) would
 * be read, which may lie outside the plane; only valid places are read.
 * Strides 1 and 2 copy four floats per step.
 */
function im2colTap(): Body {
  // params src0 dst1 planes2 planeBytes3 oh4 ow5 rowStep6 colStep7 y0_8 y1_9 x0_10 x1_11; locals y12 x13 rp14
  const b = new Body(12, [{ type: I32, count: 3 }]);
  const zeroUntil = (end: number | null): void => {
    b.whileLoop(
      () => { b.get(13); if (end === null) b.get(5); else b.get(end); b.op('i32.lt_s'); },
      () => { b.get(1).f32(0).mem('f32.store').addTo(1, 4).addTo(13, 1); },
    );
  };
  b.whileLoop(
    () => { b.get(2); },
    () => {
      b.i32(0).set(12);
      b.whileLoop(
        () => { b.get(12).get(4).op('i32.lt_s'); },
        () => {
          b.i32(0).set(13);
          b.get(12).get(8).op('i32.lt_s').get(12).get(9).op('i32.ge_s').op('i32.or');
          b.ifElse(
            () => zeroUntil(null),
            () => {
              b.get(0).get(12).get(6).op('i32.mul').op('i32.add').get(10).get(7).op('i32.mul').op('i32.add').set(14);
              zeroUntil(10);
              b.get(7).i32(4).op('i32.eq');
              b.ifElse(
                () => {
                  b.whileLoop(
                    () => { b.get(13).i32(3).op('i32.add').get(11).op('i32.lt_s'); },
                    () => { b.get(1).load(14).store().addTo(1, 16).addTo(14, 16).addTo(13, 4); },
                  );
                },
                () => {
                  b.get(7).i32(8).op('i32.eq');
                  b.ifElse(() => {
                    b.whileLoop(
                      () => { b.get(13).i32(4).op('i32.add').get(11).op('i32.lt_s'); },
                      () => { b.get(1).load(14).load(14, 16).shuffle(EVEN_LANES).store().addTo(1, 16).addTo(14, 32).addTo(13, 4); },
                    );
                  });
                },
              );
              b.whileLoop(
                () => { b.get(13).get(11).op('i32.lt_s'); },
                () => { b.get(1).get(14).mem('f32.load').mem('f32.store').addTo(1, 4).addLocal(14, 7).addTo(13, 1); },
              );
              zeroUntil(null);
            },
          );
          b.addTo(12, 1);
        },
      );
      b.addLocal(0, 3);
      b.get(2).i32(1).op('i32.sub').set(2);
    },
  );
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
 * C[t, o] = sum over p of A[t, p] * B[p, o] for a short A ([4*tBlocks, P],
 * rows `rowBytes` apart) and B ([P, 8*oBlocks] at `bRowBytes` per row):
 * a 4x8 block of C in eight vector accumulators while p runs over the
 * whole inner dimension. For filter gradients of few taps (the first conv
 * layer: 27 rows), where a GEMM library's tiles are mostly padding.
 * C is [4*tBlocks, oBlocks*8] with `bRowBytes` per row.
 */
function shortGemm(): Body {
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
                b.get(11 + r).mem('f32.load').simd('f32x4.splat').set(27);
                b.get(acc(2 * r)).get(27).get(25).simd('f32x4.mul').simd('f32x4.add').set(acc(2 * r));
                b.get(acc(2 * r + 1)).get(27).get(26).simd('f32x4.mul').simd('f32x4.add').set(acc(2 * r + 1));
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

/**
 * Winograd F(2x2, 3x3) input transform, V = Bᵀ·d·B, for `count` tiles along
 * one tile row of a zero-padded NHWC image. A tile is the 4x4 patch at `src`
 * (rows `rowBytes` apart, channels innermost); the next tile starts two
 * pixels to the right. The 16 transformed values of channel c go to
 * dst + ξ*planeBytes + 4*c (planes ξ = 4k + l, tiles 4*Ci bytes apart).
 */
function winogradInput(): Body {
  // params src0 dst1 count2 groups3 rowBytes4 planeBytes5
  // locals i32: t6 g7 r0_8 r1_9 r2_10 r3_11 q12 c1_13 c2_14 c3_15 s16 d17 gq18; v128: t0..t3 19..22
  const b = new Body(6, [{ type: I32, count: 13 }, { type: V128, count: 4 }]);
  const rows = [8, 9, 10, 11];
  const cols = [-1, 13, 14, 15];
  const ld = (a: number, col: number): void => {
    b.get(rows[a] as number);
    if (col > 0) b.get(cols[col] as number).op('i32.add');
    b.simd('v128.load', { align: 2, offset: 0 });
  };
  const combos: [number, number, 'f32x4.sub' | 'f32x4.add'][] = [[0, 2, 'f32x4.sub'], [1, 2, 'f32x4.add'], [2, 1, 'f32x4.sub'], [1, 3, 'f32x4.sub']];
  b.get(3).i32(16).op('i32.mul').tee(13).get(13).op('i32.add').tee(14).get(13).op('i32.add').set(15);
  b.get(0).set(16).get(1).set(17).get(2).set(6);
  b.whileLoop(
    () => { b.get(6); },
    () => {
      b.get(16).tee(8).get(4).op('i32.add').tee(9).get(4).op('i32.add').tee(10).get(4).op('i32.add').set(11);
      b.get(17).set(18).get(3).set(7);
      b.whileLoop(
        () => { b.get(7); },
        () => {
          b.get(18).set(12);
          for (const [ka, kb, kop] of combos) {
            for (let col = 0; col < 4; col++) {
              ld(ka, col);
              ld(kb, col);
              b.simd(kop).set(19 + col);
            }
            for (const [la, lb, lop] of combos) {
              b.get(12).get(19 + la).get(19 + lb).simd(lop).store();
              b.addLocal(12, 5);
            }
          }
          b.addTo(8, 16).addTo(9, 16).addTo(10, 16).addTo(11, 16).addTo(18, 16);
          b.get(7).i32(1).op('i32.sub').set(7);
        },
      );
      b.addLocal(16, 14).addLocal(17, 13);
      b.get(6).i32(1).op('i32.sub').set(6);
    },
  );
  return b;
}

/**
 * Winograd F(2x2, 3x3) output transform, Y = Aᵀ·m·A, for `count` tiles
 * along one tile row: reads the 16 planes at src + ξ*planeBytes (tiles 4*Co
 * bytes apart) and writes each tile's 2x2 outputs at dst (NHWC rows
 * `rowBytes` apart; the next tile two pixels to the right).
 */
function winogradOutput(): Body {
  // params src0 dst1 count2 groups3 planeBytes4 rowBytes5
  // locals i32: t6 g7 q8 s9 y10 cb11 gq12 gy13; v128: m0..m15 14..29, s0..s3 30..33
  const b = new Body(6, [{ type: I32, count: 8 }, { type: V128, count: 20 }]);
  b.get(3).i32(16).op('i32.mul').set(11);
  b.get(0).set(9).get(1).set(10).get(2).set(6);
  b.whileLoop(
    () => { b.get(6); },
    () => {
      b.get(9).set(12).get(10).set(13).get(3).set(7);
      b.whileLoop(
        () => { b.get(7); },
        () => {
          b.get(12).set(8);
          for (let x = 0; x < 16; x++) {
            b.load(8).set(14 + x);
            if (x < 15) b.addLocal(8, 4);
          }
          const m = (k: number, l: number): number => 14 + 4 * k + l;
          for (let r = 0; r < 2; r++) {
            for (let l = 0; l < 4; l++) {
              if (r === 0) b.get(m(0, l)).get(m(1, l)).simd('f32x4.add').get(m(2, l)).simd('f32x4.add');
              else b.get(m(1, l)).get(m(2, l)).simd('f32x4.sub').get(m(3, l)).simd('f32x4.sub');
              b.set(30 + l);
            }
            // Row r of the tile: at gy + r*rowBytes.
            b.get(13);
            if (r === 1) b.get(5).op('i32.add');
            b.get(30).get(31).simd('f32x4.add').get(32).simd('f32x4.add').store();
            b.get(13).get(11).op('i32.add');
            if (r === 1) b.get(5).op('i32.add');
            b.get(31).get(32).simd('f32x4.sub').get(33).simd('f32x4.sub').store();
          }
          b.addTo(12, 16).addTo(13, 16);
          b.get(7).i32(1).op('i32.sub').set(7);
        },
      );
      b.addLocal(9, 11).addLocal(10, 11).addLocal(10, 11);
      b.get(6).i32(1).op('i32.sub').set(6);
    },
  );
  return b;
}

/**
 * Winograd F(2x2, 3x3) filter transform, U = G·g·Gᵀ, over `groups` blocks of
 * four floats: the nine taps of g are planes `planeBytes` apart at src
 * (HWIO, tap-major), the 16 planes of U go to dst the same distance apart.
 */
function winogradFilter(): Body {
  // params src0 dst1 groups2 planeBytes3; locals i32: q4; v128: g0..g8 5..13, t(k,b) 14..25, half 26
  const b = new Body(4, [{ type: I32, count: 1 }, { type: V128, count: 22 }]);
  const g = (a: number, c: number): number => 5 + 3 * a + c;
  const t = (k: number, c: number): number => 14 + 3 * k + c;
  b.f32(0.5).simd('f32x4.splat').set(26);
  // One row of G applied to three values: G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
  const gRow = (k: number, v: (i: number) => number): void => {
    if (k === 0) b.get(v(0));
    else if (k === 3) b.get(v(2));
    else {
      b.get(v(0)).get(v(1)).simd(k === 1 ? 'f32x4.add' : 'f32x4.sub').get(v(2)).simd('f32x4.add').get(26).simd('f32x4.mul');
    }
  };
  b.whileLoop(
    () => { b.get(2); },
    () => {
      b.get(0).set(4);
      for (let i = 0; i < 9; i++) {
        b.load(4).set(5 + i);
        if (i < 8) b.addLocal(4, 3);
      }
      for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) { gRow(k, (a) => g(a, c)); b.set(t(k, c)); }
      b.get(1).set(4);
      for (let k = 0; k < 4; k++) {
        for (let l = 0; l < 4; l++) {
          b.get(4);
          gRow(l, (c) => t(k, c));
          b.store();
          b.addLocal(4, 3);
        }
      }
      b.addTo(0, 16).addTo(1, 16);
      b.get(2).i32(1).op('i32.sub').set(2);
    },
  );
  return b;
}

/**
 * The filter gradient's transform of the output gradient, dM = A·dy·Aᵀ
 * (A = [1 0; 1 1; 1 -1; 0 -1]), for `count` 2x2 tiles along one tile row
 * of dY (NHWC rows `rowBytes` apart): 16 planes per tile at dst, as
 * {@link winogradInput} writes V.
 */
function winogradGradOutput(): Body {
  // params src0 dst1 count2 groups3 rowBytes4 planeBytes5
  // locals i32: t6 g7 s8 d9 gs10 gd11 q12 cb13; v128: y00 14 y01 15 y10 16 y11 17 r0 18 r1 19
  const b = new Body(6, [{ type: I32, count: 8 }, { type: V128, count: 6 }]);
  b.get(3).i32(16).op('i32.mul').set(13);
  b.get(0).set(8).get(1).set(9).get(2).set(6);
  // One row of A applied to (p, q): p, p+q, p-q, -q.
  const aRow = (k: number, p: number, q: number): void => {
    if (k === 0) b.get(p);
    else if (k === 1) b.get(p).get(q).simd('f32x4.add');
    else if (k === 2) b.get(p).get(q).simd('f32x4.sub');
    else b.get(q).simd('f32x4.neg');
  };
  b.whileLoop(
    () => { b.get(6); },
    () => {
      b.get(8).set(10).get(9).set(11).get(3).set(7);
      b.whileLoop(
        () => { b.get(7); },
        () => {
          b.load(10).set(14);
          b.get(10).get(13).op('i32.add').simd('v128.load', { align: 2, offset: 0 }).set(15);
          b.get(10).get(4).op('i32.add').simd('v128.load', { align: 2, offset: 0 }).set(16);
          b.get(10).get(4).op('i32.add').get(13).op('i32.add').simd('v128.load', { align: 2, offset: 0 }).set(17);
          b.get(11).set(12);
          for (let k = 0; k < 4; k++) {
            aRow(k, 14, 16);
            b.set(18);
            aRow(k, 15, 17);
            b.set(19);
            for (let l = 0; l < 4; l++) {
              b.get(12);
              aRow(l, 18, 19);
              b.store();
              b.addLocal(12, 5);
            }
          }
          b.addTo(10, 16).addTo(11, 16);
          b.get(7).i32(1).op('i32.sub').set(7);
        },
      );
      b.addLocal(8, 13).addLocal(8, 13).addLocal(9, 13);
      b.get(6).i32(1).op('i32.sub').set(6);
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
function tnGemm(): Body {
  // params a0 b1 c2 cBlocks3 oBlocks4 count5 aRow6 bRow7 cRow8
  // locals i32: cb9 ob10 t11 pa12 pb13 pc14 q15; v128: acc 16..23, av 24, b0 25, b1 26, lane 27
  const b = new Body(9, [{ type: I32, count: 7 }, { type: V128, count: 12 }]);
  const acc = (i: number): number => 16 + i;
  const splat = (lane: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 4; i++) out.push(4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3);
    return out;
  };
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
              b.load(12).set(24).load(13).set(25).load(13, 16).set(26);
              for (let r = 0; r < 4; r++) {
                b.get(24).get(24).shuffle(splat(r)).set(27);
                b.get(acc(2 * r)).get(27).get(25).simd('f32x4.mul').simd('f32x4.add').set(acc(2 * r));
                b.get(acc(2 * r + 1)).get(27).get(26).simd('f32x4.mul').simd('f32x4.add').set(acc(2 * r + 1));
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
 * The filter gradient back from the Winograd domain, dW = Gᵀ·dU·G, over
 * `groups` blocks of four floats: 16 planes `srcPlane` bytes apart at src,
 * nine taps `dstPlane` bytes apart at dst.
 */
function winogradFilterGrad(): Body {
  // params src0 dst1 groups2 srcPlane3 dstPlane4; locals i32: q5; v128: u 6..21, s(a,l) 22..33, half 34
  const b = new Body(5, [{ type: I32, count: 1 }, { type: V128, count: 29 }]);
  const u = (k: number, l: number): number => 6 + 4 * k + l;
  const sv = (a: number, l: number): number => 22 + 4 * a + l;
  b.f32(0.5).simd('f32x4.splat').set(34);
  // One column of G (a row of Gᵀ) applied to four values: [1 ½ ½ 0], [0 ½ -½ 0], [0 ½ ½ 1].
  const gCol = (a: number, v: (i: number) => number): void => {
    if (a === 1) {
      b.get(v(1)).get(v(2)).simd('f32x4.sub').get(34).simd('f32x4.mul');
      return;
    }
    b.get(v(1)).get(v(2)).simd('f32x4.add').get(34).simd('f32x4.mul').get(v(a === 0 ? 0 : 3)).simd('f32x4.add');
  };
  b.whileLoop(
    () => { b.get(2); },
    () => {
      b.get(0).set(5);
      for (let i = 0; i < 16; i++) {
        b.load(5).set(6 + i);
        if (i < 15) b.addLocal(5, 3);
      }
      for (let a = 0; a < 3; a++) for (let l = 0; l < 4; l++) { gCol(a, (k) => u(k, l)); b.set(sv(a, l)); }
      b.get(1).set(5);
      for (let a = 0; a < 3; a++) {
        for (let c = 0; c < 3; c++) {
          b.get(5);
          gCol(c, (l) => sv(a, l));
          b.store();
          b.addLocal(5, 4);
        }
      }
      b.addTo(0, 16).addTo(1, 16);
      b.get(2).i32(1).op('i32.sub').set(2);
    },
  );
  return b;
}

/** The module's bytes, importing a shared or an unshared memory. */
export function simdModuleBytes(sharedMemory: boolean): Uint8Array<ArrayBuffer> {
  return assemble(
    [
      { name: 'affineRelu', body: affineRelu() },
      { name: 'sums', body: sums() },
      { name: 'gradSums', body: gradSums() },
      { name: 'gradApply', body: gradApply() },
      { name: 'im2colTap', body: im2colTap() },
      { name: 'copyRuns', body: copyRuns() },
      { name: 'sgdMomentum', body: sgdMomentum() },
      { name: 'shortGemm', body: shortGemm() },
      { name: 'winogradInput', body: winogradInput() },
      { name: 'winogradOutput', body: winogradOutput() },
      { name: 'winogradFilter', body: winogradFilter() },
      { name: 'winogradGradOutput', body: winogradGradOutput() },
      { name: 'tnGemm', body: tnGemm() },
      { name: 'winogradFilterGrad', body: winogradFilterGrad() },
      ...winograd4Functions(),
    ],
    sharedMemory,
  );
}

/** The parts of the WebAssembly JS API used here (shared/ is typed without DOM or Node globals). */
export interface WasmMemoryLike {
  readonly buffer: ArrayBufferLike;
}
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => WasmMemoryLike;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
}

/** The WebAssembly API of this runtime, if it has one. */
export const webAssembly = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;

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
    const module = new webAssembly.Module(simdModuleBytes(shared));
    const instance = new webAssembly.Instance(module, { env: { memory } });
    kernels = instance.exports as SimdKernels;
  } catch {
    kernels = null;
  }
  instances.set(memory, kernels);
  return kernels;
}
