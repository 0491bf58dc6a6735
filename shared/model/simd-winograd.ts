/**
 * Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms for Petri's SIMD module
 * (Lavin & Gray 2016): each is out = L·in·Lᵀ with a constant matrix L,
 * applied to four channels at a time, so one generator writes all ten. A
 * side of a transform is either "pixels" (an NHWC patch: rows `rowBytes`
 * apart, pixels 4·channels bytes apart, the next tile m pixels to the
 * right for m outputs per tile side) or "planes" (values `planeBytes`
 * apart in index order, the next tile 4·channels bytes on).
 *
 * Every generated function takes (src, dst, count, groups, rowBytes,
 * planeBytes, rows, srcRowStep, dstRowStep): `rows` runs of `count` tiles
 * of `groups` four-channel groups, each run starting srcRowStep and
 * dstRowStep bytes after the one before (a row of tiles of an image, or an
 * image).
 */
import { Body, I32, V128 } from './simd-asm.ts';

/** F(2x2, 3x3): V = Bᵀ·d·B for a 4x4 patch d, U = G·g·Gᵀ, Y = Aᵀ·M·A. */
export const F2_BT = [
  [1, 0, -1, 0],
  [0, 1, 1, 0],
  [0, -1, 1, 0],
  [0, 1, 0, -1],
];
export const F2_G = [
  [1, 0, 0],
  [1 / 2, 1 / 2, 1 / 2],
  [1 / 2, -1 / 2, 1 / 2],
  [0, 0, 1],
];
export const F2_AT = [
  [1, 1, 1, 0],
  [0, 1, -1, -1],
];

/** F(4x4, 3x3), Bᵀ: V = Bᵀ·d·B for a 6x6 input patch d. */
export const F4_BT = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
/** G: U = G·g·Gᵀ for a 3x3 filter g. */
export const F4_G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];
/** Aᵀ: Y = Aᵀ·M·A, the 4x4 outputs of a tile. */
export const F4_AT = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];

export function transpose(m: readonly (readonly number[])[]): number[][] {
  return (m[0] ?? []).map((_, j) => m.map((row) => row[j] as number));
}

type Side = 'pixels' | 'planes';

/**
 * out[k][l] = Σ_a Σ_b L[k][a]·in[a][b]·L[l][b] for an R×C matrix L: a C×C
 * input block to an R×R output block, four channels at a time; tiles `step`
 * pixels apart on a pixel side.
 */
export function transform2d(l: readonly (readonly number[])[], input: Side, output: Side, step: number): Body {
  const rows = l.length;
  const cols = (l[0] as readonly number[]).length;
  const coefs = [...new Set(l.flat().map(Math.abs).filter((c) => c !== 0 && c !== 1))];
  // params src0 dst1 count2 groups3 rowBytes4 planeBytes5 rows6 srcRowStep7 dstRowStep8
  // i32 locals: t9 g10 cb11 s12 d13 q14 r15 rs16 rd17, offsets 18.. (rows then cols, 6 each)
  const PARAMS = 9;
  const I_T = 9;
  const I_G = 10;
  const I_CB = 11;
  const I_S = 12;
  const I_D = 13;
  const I_Q = 14;
  const I_R = 15;
  const I_RS = 16;
  const I_RD = 17;
  const rowOff = (i: number): number => 18 + i;
  const colOff = (i: number): number => 24 + i;
  const i32Count = 21;
  // v128 locals: inputs C*C, temps R*C, constants
  const vIn = PARAMS + i32Count;
  const vT = vIn + cols * cols;
  const vC = vT + rows * cols;
  const b = new Body(PARAMS, [{ type: I32, count: i32Count }, { type: V128, count: cols * cols + rows * cols + coefs.length }]);
  const constLocal = (c: number): number => vC + coefs.indexOf(Math.abs(c));
  coefs.forEach((c, i) => b.f32(c).simd('f32x4.splat').set(vC + i));

  // Offsets of the pixel side: rows rowBytes apart, pixels cb = 16*groups apart.
  b.get(3).i32(16).op('i32.mul').set(I_CB);
  const pixelSide = Math.max(input === 'pixels' ? cols : 0, output === 'pixels' ? rows : 0);
  for (let i = 0; i < pixelSide; i++) {
    b.get(4).i32(i).op('i32.mul').set(rowOff(i));
    b.get(I_CB).i32(i).op('i32.mul').set(colOff(i));
  }
  /** Pushes the address of element (i, j) of a side whose group base is in local `base`. */
  const address = (side: Side, base: number, i: number, j: number, width: number): void => {
    if (side === 'pixels') {
      b.get(base);
      if (i > 0) b.get(rowOff(i)).op('i32.add');
      if (j > 0) b.get(colOff(j)).op('i32.add');
    } else {
      b.get(base).get(5).i32(i * width + j).op('i32.mul').op('i32.add');
    }
  };
  /** Pushes Σ coef·local over the nonzero terms. */
  const combine = (terms: readonly [number, number][]): void => {
    const nonzero = terms.filter(([c]) => c !== 0);
    nonzero.forEach(([c, local], i) => {
      const scaled = (): void => {
        b.get(local);
        if (Math.abs(c) !== 1) b.get(constLocal(c)).simd('f32x4.mul');
      };
      if (i === 0) {
        scaled();
        if (c < 0) b.simd('f32x4.neg');
      } else {
        scaled();
        b.simd(c < 0 ? 'f32x4.sub' : 'f32x4.add');
      }
    });
    if (nonzero.length === 0) b.f32(0).simd('f32x4.splat');
  };

  // Rows of `count` tiles: each row starts srcRowStep / dstRowStep bytes after the one before.
  b.get(0).set(I_RS).get(1).set(I_RD).get(6).set(I_R);
  b.whileLoop(
    () => { b.get(I_R); },
    () => {
      b.get(I_RS).set(I_S).get(I_RD).set(I_D).get(2).set(I_T);
      b.whileLoop(
        () => { b.get(I_T); },
        () => {
          b.get(3).set(I_G);
          // I_Q walks the groups of the input side; the output side's group is at I_D + (I_Q - I_S).
          b.get(I_S).set(I_Q);
          b.whileLoop(
            () => { b.get(I_G); },
            () => {
              for (let i = 0; i < cols; i++) {
                for (let j = 0; j < cols; j++) {
                  address(input, I_Q, i, j, cols);
                  b.simd('v128.load', { align: 2, offset: 0 }).set(vIn + i * cols + j);
                }
              }
              // t[k][j] = Σ_a L[k][a]·in[a][j]
              for (let k = 0; k < rows; k++) {
                for (let j = 0; j < cols; j++) {
                  combine((l[k] as number[]).map((c, a) => [c, vIn + a * cols + j] as [number, number]));
                  b.set(vT + k * cols + j);
                }
              }
              // out[k][m] = Σ_j t[k][j]·L[m][j], at the output side's group.
              for (let k = 0; k < rows; k++) {
                for (let m = 0; m < rows; m++) {
                  // Groups advance 16 bytes on both sides.
                  address(output, I_D, k, m, rows);
                  b.get(I_Q).get(I_S).op('i32.sub').op('i32.add');
                  combine((l[m] as number[]).map((c, j) => [c, vT + k * cols + j] as [number, number]));
                  b.store();
                }
              }
              b.addTo(I_Q, 16);
              b.get(I_G).i32(1).op('i32.sub').set(I_G);
            },
          );
          // Next tile: `step` pixels on for a pixel side, one channel vector on for a plane side.
          const next = (side: Side, local: number): void => {
            for (let i = 0; i < (side === 'pixels' ? step : 1); i++) b.addLocal(local, I_CB);
          };
          next(input, I_S);
          next(output, I_D);
          b.get(I_T).i32(1).op('i32.sub').set(I_T);
        },
      );
      b.addLocal(I_RS, 7).addLocal(I_RD, 8);
      b.get(I_R).i32(1).op('i32.sub').set(I_R);
    },
  );
  return b;
}

/**
 * The five transforms of F(m x m, 3x3), m = 2 or 4, by export name:
 * winograd{m}Input (Bᵀ), Output (Aᵀ), Filter (G), GradOutput (A: the
 * output gradient's tiles for the filter gradient) and FilterGrad (Gᵀ).
 */
export function winogradFunctions(m: 2 | 4): { name: string; body: Body }[] {
  const [bT, g, aT] = m === 2 ? [F2_BT, F2_G, F2_AT] : [F4_BT, F4_G, F4_AT];
  return [
    { name: `winograd${m}Input`, body: transform2d(bT, 'pixels', 'planes', m) },
    { name: `winograd${m}Output`, body: transform2d(aT, 'planes', 'pixels', m) },
    { name: `winograd${m}Filter`, body: transform2d(g, 'planes', 'planes', m) },
    { name: `winograd${m}GradOutput`, body: transform2d(transpose(aT), 'pixels', 'planes', m) },
    { name: `winograd${m}FilterGrad`, body: transform2d(transpose(g), 'planes', 'planes', m) },
  ];
}
