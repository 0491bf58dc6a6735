/**
 * The wire contract between the coordinator and its workers (browser tabs
 * and `petri worker`): every socket message, both directions, as valibot
 * schemas with inferred types. Socket.io carries each message on the one
 * event {@link MESSAGE_EVENT}; the hello message carries the protocol version.
 *
 * Weights never travel in socket frames: a lease names an HTTP URL for the
 * parent's weights and one for the upload (docs/SPEC.md).
 */
import * as v from 'valibot';
import { dnaSchema } from './evolution/validate.ts';

export const PROTOCOL_VERSION = 1;
/** The socket.io event name used for every message. */
export const MESSAGE_EVENT = 'petri';
/** Largest socket frame the server accepts (bytes). */
export const MAX_FRAME_BYTES = 256 * 1024;

/**
 * A worker's accuracy claim is measured on the probe set: the first
 * PROBE_IMAGES images of the first train shard, without augmentation. The
 * server recomputes the same number from the uploaded weights, so a claim
 * can be checked like for like (fitness itself is on the private validation
 * split, which workers never see).
 */
export const PROBE_IMAGES = 500;

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type Backend = (typeof BACKENDS)[number];

/** Named reasons for refusing a peer's message (as const, not an enum). */
export const Refusal = {
  BadMessage: 'bad-message',
  BadProtocol: 'protocol-mismatch',
  NotHello: 'hello-first',
  RateLimited: 'rate-limited',
  UnknownLease: 'unknown-lease',
  NotYourLease: 'not-your-lease',
  LeaseExpired: 'lease-expired',
  AlreadyDone: 'already-done',
  NoUpload: 'weights-not-uploaded',
  BadWeights: 'bad-weights',
  Quarantined: 'quarantined',
  ServerError: 'server-error',
} as const;
export type RefusalCode = (typeof Refusal)[keyof typeof Refusal];

const finite = v.pipe(v.number(), v.finite());
const nonNegative = v.pipe(v.number(), v.finite(), v.minValue(0));
const count = v.pipe(v.number(), v.finite(), v.integer(), v.minValue(0), v.maxValue(1e9));
const leaseId = v.pipe(v.string(), v.regex(/^L[0-9a-f]{16,32}$/, 'lease ids look like L and hex'));
const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits'));
const shortText = (max: number) => v.pipe(v.string(), v.maxLength(max));
/** Nicknames: letters, digits, space and a few signs; shown on a public page. */
export const nicknameSchema = v.pipe(
  v.string(),
  v.trim(),
  v.minLength(1),
  v.maxLength(32),
  v.regex(/^[\p{L}\p{N} _.-]+$/u, 'a nickname uses letters, digits, spaces, _ . -'),
);

// ---- worker -> server -------------------------------------------------------

export const helloSchema = v.strictObject({
  type: v.literal('hello'),
  protocol: v.pipe(v.number(), v.integer()),
  backend: v.picklist(BACKENDS),
  /** GPU adapter or CPU description, as the worker saw it. */
  adapter: shortText(200),
  /** Why the worker is not on WebGPU, when it is not. */
  fallbackReason: v.optional(shortText(300)),
  /** A quick speed score (training images/second on a probe), for scheduling. */
  speed: nonNegative,
  nickname: v.optional(nicknameSchema),
  experimentId: v.optional(shortText(64)),
  /** `browser` or `node`. */
  client: v.picklist(['browser', 'node']),
  /** A lease this worker held before a reload or reconnect, to continue it. */
  resume: v.optional(v.strictObject({ leaseId, token: v.pipe(v.string(), v.regex(/^[0-9a-f]{32,64}$/)) })),
});

export const readySchema = v.strictObject({ type: v.literal('ready') });

export const progressSchema = v.strictObject({
  type: v.literal('progress'),
  leaseId,
  step: count,
  imagesPerSecond: v.optional(nonNegative),
});

export const resultSchema = v.strictObject({
  type: v.literal('result'),
  leaseId,
  status: v.picklist(['ok', 'diverged']),
  /** SHA-256 of the uploaded weights binary (required when ok). */
  weightsSha256: v.optional(sha256),
  stepsDone: count,
  /** The worker's own accuracy on the probe set (see PROBE_IMAGES), only compared against the server's. */
  claimedAccuracy: v.optional(v.pipe(finite, v.minValue(0), v.maxValue(1))),
  trainSeconds: nonNegative,
  backend: v.picklist(BACKENDS),
});

export const releaseSchema = v.strictObject({
  type: v.literal('release'),
  leaseId,
  reason: shortText(200),
});

export const clientMessageSchema = v.variant('type', [helloSchema, readySchema, progressSchema, resultSchema, releaseSchema]);
export type ClientMessage = v.InferOutput<typeof clientMessageSchema>;
export type Hello = v.InferOutput<typeof helloSchema>;
export type ResultMessage = v.InferOutput<typeof resultSchema>;

// ---- server -> worker -------------------------------------------------------

const mutationSchema = v.strictObject({ name: shortText(40), detail: shortText(300) });
const tensorSourceSchema = v.variant('kind', [
  v.strictObject({ kind: v.literal('copy') }),
  v.strictObject({ kind: v.literal('reshape'), fromShape: v.array(count) }),
  v.strictObject({ kind: v.literal('init') }),
]);
const plannedTensorSchema = v.strictObject({
  key: shortText(64),
  shape: v.array(count),
  layout: v.picklist(['conv_kernel', 'vector', 'dense_kernel']),
  init: v.picklist(['he_normal', 'lecun_normal', 'zeros', 'ones']),
  fanIn: count,
  trainable: v.boolean(),
  decay: v.boolean(),
  source: tensorSourceSchema,
});

export const leaseSchema = v.strictObject({
  leaseId,
  /** Secret the upload must present; only the connection that got the lease knows it. */
  token: v.pipe(v.string(), v.regex(/^[0-9a-f]{32,64}$/)),
  experimentId: shortText(64),
  /** The id the child will have in the population. */
  childId: shortText(96),
  parentId: v.nullable(shortText(96)),
  parentWeights: v.nullable(v.strictObject({ url: shortText(300), sha256, bytes: count })),
  /** The parent's DNA, which fixes the layout of its weights binary (null without parent weights). */
  parentDna: v.nullable(dnaSchema),
  dna: dnaSchema,
  plan: v.strictObject({ tensors: v.array(plannedTensorSchema) }),
  mutations: v.array(mutationSchema),
  seed: shortText(200),
  steps: count,
  batchSize: count,
  momentum: finite,
  weightDecay: finite,
  augment: v.boolean(),
  dataset: v.strictObject({ name: shortText(64), manifestUrl: shortText(300), version: shortText(64) }),
  uploadUrl: shortText(300),
  maxUploadBytes: count,
  /** Send progress at least this often or the lease expires. */
  heartbeatMs: count,
  expiresInMs: count,
});
export type Lease = v.InferOutput<typeof leaseSchema>;

export const serverMessageSchema = v.variant('type', [
  v.strictObject({ type: v.literal('welcome'), workerId: shortText(64), protocol: v.number(), experimentId: v.nullable(shortText(64)) }),
  v.strictObject({ type: v.literal('lease'), lease: leaseSchema }),
  v.strictObject({ type: v.literal('idle'), reason: shortText(300), retryInMs: count }),
  v.strictObject({
    type: v.literal('verdict'),
    leaseId,
    outcome: v.picklist(['accepted', 'failed']),
    individualId: shortText(96),
    /** The server's validation accuracy (0 for a diverged child). */
    fitness: v.pipe(finite, v.minValue(0), v.maxValue(1)),
    provisional: v.boolean(),
    creditFlops: nonNegative,
  }),
  v.strictObject({
    type: v.literal('refused'),
    code: v.picklist(Object.values(Refusal) as [RefusalCode, ...RefusalCode[]]),
    message: shortText(500),
    leaseId: v.optional(leaseId),
  }),
]);
export type ServerMessage = v.InferOutput<typeof serverMessageSchema>;

/** Outcome of parsing an untrusted message. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function parseWith<T>(schema: v.GenericSchema<unknown, T>, input: unknown): Parsed<T> {
  const result = v.safeParse(schema, input);
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  const path = issue ? v.getDotPath(issue) : null;
  return { ok: false, error: `${path ?? 'message'}: ${issue?.message ?? 'invalid'}` };
}

/** Parses a message from a worker; never throws. */
export function parseClientMessage(input: unknown): Parsed<ClientMessage> {
  return parseWith(clientMessageSchema, input);
}

/** Parses a message from the server (the worker validates what it receives too). */
export function parseServerMessage(input: unknown): Parsed<ServerMessage> {
  return parseWith(serverMessageSchema, input);
}
