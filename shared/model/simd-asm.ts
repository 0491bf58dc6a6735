/**
 * A very small WebAssembly binary writer: one imported memory, functions
 * that take i32 parameters and return nothing, structured loops, scalar
 * and 128-bit SIMD instructions. Enough to write Petri's few elementwise
 * kernels (simd-kernels.ts) that work in place on tf.js's wasm heap,
 * without a compiler toolchain in the build.
 */

/** Value types. */
export const I32 = 0x7f;
export const F64 = 0x7c;
export const V128 = 0x7b;

function uleb(n: number, out: number[]): void {
  let v = n >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
}

function sleb(n: number, out: number[]): void {
  let v = n | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

function name(s: string, out: number[]): void {
  const bytes = new TextEncoder().encode(s);
  uleb(bytes.length, out);
  out.push(...bytes);
}

/** SIMD opcodes (after the 0xfd prefix), from the WebAssembly SIMD specification. */
const SIMD = {
  'v128.load': 0x00,
  'v128.load32_splat': 0x09,
  'v128.store': 0x0b,
  'i8x16.shuffle': 0x0d,
  'f32x4.splat': 0x13,
  'f32x4.gt': 0x44,
  'v128.and': 0x4e,
  'f64x2.promote_low_f32x4': 0x5f,
  'f32x4.neg': 0xe1,
  'f32x4.add': 0xe4,
  'f32x4.sub': 0xe5,
  'f32x4.mul': 0xe6,
  'f32x4.pmax': 0xeb,
  'f64x2.add': 0xf0,
  'f64x2.mul': 0xf2,
  /** Relaxed SIMD: a*b + c, fused where the CPU has FMA (a b c on the stack). */
  'f32x4.relaxed_madd': 0x105,
} as const;

/** Scalar opcodes used. */
const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  'local.get': 0x20,
  'local.set': 0x21,
  'local.tee': 0x22,
  'i32.const': 0x41,
  'i32.eqz': 0x45,
  'i32.eq': 0x46,
  'i32.ne': 0x47,
  'i32.lt_s': 0x48,
  'i32.lt_u': 0x49,
  'i32.ge_s': 0x4e,
  'i32.add': 0x6a,
  'i32.sub': 0x6b,
  'i32.mul': 0x6c,
  'i32.or': 0x72,
  'f32.const': 0x43,
  call: 0x10,
} as const;

/** Scalar loads and stores (a memarg follows). */
const MEMORY_OP = { 'f32.load': 0x2a, 'f32.store': 0x38 } as const;

/** A function body under construction; every method appends and returns `this`. */
export class Body {
  readonly bytes: number[] = [];

  constructor(
    readonly params: number,
    /** Extra locals by type, numbered after the parameters in this order. */
    readonly locals: readonly { type: number; count: number }[],
  ) {}

  op(name: keyof typeof OP): this {
    this.bytes.push(OP[name]);
    return this;
  }

  get(i: number): this {
    this.bytes.push(OP['local.get']);
    uleb(i, this.bytes);
    return this;
  }

  set(i: number): this {
    this.bytes.push(OP['local.set']);
    uleb(i, this.bytes);
    return this;
  }

  tee(i: number): this {
    this.bytes.push(OP['local.tee']);
    uleb(i, this.bytes);
    return this;
  }

  i32(n: number): this {
    this.bytes.push(OP['i32.const']);
    sleb(n, this.bytes);
    return this;
  }

  f32(x: number): this {
    this.bytes.push(OP['f32.const']);
    const b = new Uint8Array(new Float32Array([x]).buffer);
    this.bytes.push(...b);
    return this;
  }

  simd(name: keyof typeof SIMD, memory?: { align: number; offset: number }): this {
    this.bytes.push(0xfd);
    uleb(SIMD[name], this.bytes);
    if (memory !== undefined) {
      uleb(memory.align, this.bytes);
      uleb(memory.offset, this.bytes);
    }
    return this;
  }

  /** f32.load / f32.store with a constant byte offset (the address, and for a store the value, on the stack). */
  mem(name: keyof typeof MEMORY_OP, offset = 0): this {
    this.bytes.push(MEMORY_OP[name]);
    uleb(2, this.bytes);
    uleb(offset, this.bytes);
    return this;
  }

  /** `while (cond) body`: cond leaves an i32 on the stack. */
  whileLoop(cond: (b: this) => void, body: (b: this) => void): this {
    this.bytes.push(OP.block, 0x40, OP.loop, 0x40);
    cond(this);
    this.bytes.push(OP['i32.eqz'], OP.br_if, 1);
    body(this);
    this.bytes.push(OP.br, 0, OP.end, OP.end);
    return this;
  }

  /** `if (i32 on the stack) then [else otherwise]`. Branch depths inside grow by one. */
  ifElse(then: (b: this) => void, otherwise?: (b: this) => void): this {
    this.bytes.push(OP.if, 0x40);
    then(this);
    if (otherwise !== undefined) {
      this.bytes.push(OP.else);
      otherwise(this);
    }
    this.bytes.push(OP.end);
    return this;
  }

  /** i8x16.shuffle with 16 lane indices. */
  shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16) throw new Error('i8x16.shuffle takes 16 lanes');
    this.simd('i8x16.shuffle');
    this.bytes.push(...lanes);
    return this;
  }

  /** v128.load at local `ptr` + `offset` bytes (unaligned allowed; hinted 4-byte). */
  load(ptr: number, offset = 0): this {
    return this.get(ptr).simd('v128.load', { align: 2, offset });
  }

  /** v128.store of the value on the stack top to local `ptr` + `offset`: push the address first. */
  store(offset = 0): this {
    return this.simd('v128.store', { align: 2, offset });
  }

  /** Calls function `index` of the module (its arguments on the stack). */
  call(index: number): this {
    this.bytes.push(OP.call);
    uleb(index, this.bytes);
    return this;
  }

  /** local[i] += n (i32). */
  addTo(i: number, n: number): this {
    return this.get(i).i32(n).op('i32.add').set(i);
  }

  /** local[i] += local[j] (i32). */
  addLocal(i: number, j: number): this {
    return this.get(i).get(j).op('i32.add').set(i);
  }

  /** `loop ... end` that repeats while `body` leaves a non-zero i32 (do-while). */
  doWhile(body: (b: this) => void): this {
    this.bytes.push(OP.loop, 0x40);
    body(this);
    this.bytes.push(OP.br_if, 0, OP.end);
    return this;
  }

  encode(): number[] {
    const out: number[] = [];
    const groups = this.locals.filter((l) => l.count > 0);
    uleb(groups.length, out);
    for (const l of groups) {
      uleb(l.count, out);
      out.push(l.type);
    }
    out.push(...this.bytes, OP.end);
    const sized: number[] = [];
    uleb(out.length, sized);
    return [...sized, ...out];
  }
}

function section(id: number, content: number[], out: number[]): void {
  out.push(id);
  uleb(content.length, out);
  out.push(...content);
}

/**
 * A module importing `env.memory` (shared or not, to match the memory it
 * will be given) and exporting the functions by name.
 */
export function assemble(functions: readonly { name: string; body: Body }[], sharedMemory: boolean): Uint8Array<ArrayBuffer> {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // One type per distinct parameter count; all parameters i32, no results.
  const arities = [...new Set(functions.map((f) => f.body.params))];
  const types: number[] = [];
  uleb(arities.length, types);
  for (const n of arities) {
    types.push(0x60);
    uleb(n, types);
    for (let i = 0; i < n; i++) types.push(I32);
    types.push(0x00);
  }
  section(1, types, out);
  const imports: number[] = [];
  uleb(1, imports);
  name('env', imports);
  name('memory', imports);
  imports.push(0x02);
  if (sharedMemory) {
    imports.push(0x03);
    uleb(1, imports);
    uleb(65536, imports);
  } else {
    imports.push(0x00);
    uleb(1, imports);
  }
  section(2, imports, out);
  const funcs: number[] = [];
  uleb(functions.length, funcs);
  for (const f of functions) uleb(arities.indexOf(f.body.params), funcs);
  section(3, funcs, out);
  const exports: number[] = [];
  uleb(functions.length, exports);
  functions.forEach((f, i) => {
    name(f.name, exports);
    exports.push(0x00);
    uleb(i, exports);
  });
  section(7, exports, out);
  const code: number[] = [];
  uleb(functions.length, code);
  for (const f of functions) code.push(...f.body.encode());
  section(10, code, out);
  return new Uint8Array(out);
}
