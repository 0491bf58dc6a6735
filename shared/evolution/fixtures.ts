/**
 * Reference DNAs used by tests, benchmarks and docs: the initial linear
 * model, a 3-convolution net (32/64/128 channels, strides 1/2/2) and a 10-convolution net
 * with two skips. Built by hand, so they do not depend on mutations.
 */
import { DNA_FORMAT, type Dna, type Edge, type Vertex } from './dna.ts';
import { initialDna } from './dna.ts';
import { assertValidDna } from './validate.ts';

/** A plain chain of 3x3 BN+ReLU convolutions with the given channels and strides. */
export function convChain(
  inputShape: readonly [number, number, number],
  numClasses: number,
  layers: readonly { channels: number; stride?: number; filter?: [number, number] }[],
  skips: readonly [number, number][] = [],
  learningRate = 0.1,
): Dna {
  const vertices: Vertex[] = [{ id: 'v0', activation: 'linear' }];
  const edges: Edge[] = [];
  let next = 1;
  const vertexIds = ['v0'];
  for (const layer of layers) {
    const id = `v${next++}`;
    vertices.push({ id, activation: 'bn_relu' });
    edges.push({
      id: `e${next++}`,
      from: vertexIds[vertexIds.length - 1] as string,
      to: id,
      role: 'backbone',
      type: 'conv',
      filterHeight: layer.filter?.[0] ?? 3,
      filterWidth: layer.filter?.[1] ?? 3,
      stride: layer.stride ?? 1,
      channels: layer.channels,
    });
    vertexIds.push(id);
  }
  for (const [a, b] of skips) {
    edges.push({ id: `e${next++}`, from: vertexIds[a] as string, to: vertexIds[b] as string, role: 'skip', type: 'identity' });
  }
  const dna: Dna = {
    format: DNA_FORMAT,
    inputShape: [inputShape[0], inputShape[1], inputShape[2]],
    numClasses,
    learningRate,
    vertices,
    edges,
    input: 'v0',
    output: vertexIds[vertexIds.length - 1] as string,
    nextId: next,
  };
  assertValidDna(dna);
  return dna;
}

/** The three reference DNAs of the benchmark, on 32x32x3 inputs with 10 classes. */
export function referenceDnas(): { name: string; dna: Dna }[] {
  const shape = [32, 32, 3] as const;
  return [
    { name: 'linear', dna: initialDna(shape, 10) },
    { name: 'conv3', dna: convChain(shape, 10, [{ channels: 32 }, { channels: 64, stride: 2 }, { channels: 128, stride: 2 }]) },
    {
      name: 'conv10-skip2',
      dna: convChain(
        shape,
        10,
        [
          { channels: 32 },
          { channels: 32 },
          { channels: 32 },
          { channels: 64, stride: 2 },
          { channels: 64 },
          { channels: 64 },
          { channels: 128, stride: 2 },
          { channels: 128 },
          { channels: 128 },
          { channels: 128 },
        ],
        [
          [1, 3],
          [4, 8],
        ],
      ),
    },
  ];
}
