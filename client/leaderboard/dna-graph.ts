/**
 * Draws a DNA as an SVG graph laid out by dagre: one node per vertex
 * (activation and shape HxWxC), one arrow per edge (convolutions with
 * filter, stride and channels; identity connections), skip edges dashed and
 * coloured apart, then the fixed head (global pooling and the classifier).
 */
import dagre from '@dagrejs/dagre';
import { backboneOrder, vertexShapes, type Dna, type Edge } from '../../shared/evolution/dna.ts';
import { s } from './dom.ts';

const NODE_H = 42;
const CHAR_W = 7.2;
const LABEL_H = 16;

/** "3×3 /2 ×64" for a convolution, "identity" otherwise. */
export function edgeText(e: Edge): string {
  if (e.type === 'identity') return 'identity';
  const stride = e.stride === 1 ? '' : ` /${e.stride}`;
  return `conv ${e.filterHeight}×${e.filterWidth}${stride} ×${e.channels}`;
}

function activationText(activation: string): string {
  return activation === 'bn_relu' ? 'BN + ReLU' : 'linear';
}

interface NodeData {
  width: number;
  height: number;
  x?: number;
  y?: number;
  lines: [string, string];
  kind: 'input' | 'output' | 'vertex' | 'head';
  vertexId?: string;
}

interface EdgeData {
  width: number;
  height: number;
  labelpos: 'c';
  x?: number;
  y?: number;
  points?: { x: number; y: number }[];
  text: string;
  edge: Edge | null;
}

/** The SVG of a DNA; `.dna-vertex` groups are the vertices, `.dna-edge` paths the edges. */
export function renderDnaGraph(dna: Dna): SVGSVGElement {
  const shapes = vertexShapes(dna);
  const g = new dagre.graphlib.Graph<Record<string, unknown>, NodeData, EdgeData>({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 28, edgesep: 14, ranksep: 34, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({ width: 0, height: 0, labelpos: 'c', text: '', edge: null }));

  for (const v of backboneOrder(dna)) {
    const shape = shapes.get(v.id);
    const kind = v.id === dna.input ? 'input' : v.id === dna.output ? 'output' : 'vertex';
    const title = kind === 'input' ? `${v.id} · input` : kind === 'output' ? `${v.id} · ${activationText(v.activation)} · output` : `${v.id} · ${activationText(v.activation)}`;
    const lines: [string, string] = [title, shape ? `${shape[0]}×${shape[1]}×${shape[2]}` : '?'];
    g.setNode(v.id, { width: nodeWidth(lines), height: NODE_H, lines, kind, vertexId: v.id });
  }
  // Vertices off the backbone cannot exist in a valid DNA; draw them anyway if they do.
  for (const v of dna.vertices) {
    if (g.hasNode(v.id)) continue;
    const lines: [string, string] = [`${v.id} · ${activationText(v.activation)}`, '?'];
    g.setNode(v.id, { width: nodeWidth(lines), height: NODE_H, lines, kind: 'vertex', vertexId: v.id });
  }
  const outShape = shapes.get(dna.output);
  const headLines: [string, string] = ['global avg pool → softmax', `${outShape ? outShape[2] : '?'} → ${dna.numClasses} classes`];
  g.setNode('__head', { width: nodeWidth(headLines), height: NODE_H, lines: headLines, kind: 'head' });

  for (const e of dna.edges) {
    const text = edgeText(e);
    g.setEdge(e.from, e.to, { width: text.length * 6.2 + 8, height: LABEL_H, labelpos: 'c', text, edge: e }, e.id);
  }
  g.setEdge(dna.output, '__head', { width: 0, height: 0, labelpos: 'c', text: '', edge: null }, '__head');

  dagre.layout(g);
  const graph = g.graph() as { width?: number; height?: number };
  const width = Math.ceil(graph.width ?? 200);
  const height = Math.ceil(graph.height ?? 200);

  const svg = s('svg', {
    class: 'dna-graph',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `DNA graph: ${dna.vertices.length} vertices, ${dna.edges.length} edges`,
    'data-vertices': dna.vertices.length,
    'data-edges': dna.edges.length,
  });
  svg.append(
    s(
      'defs',
      {},
      ...['backbone', 'conv', 'skip', 'head'].map((kind) =>
        s('marker', { id: `arrow-${kind}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrowhead arrowhead-${kind}` })),
      ),
    ),
  );

  const edgeLayer = s('g', { class: 'dna-edges' });
  const labelLayer = s('g', { class: 'dna-edge-labels' });
  for (const ref of g.edges()) {
    const data = g.edge(ref);
    const points = data.points ?? [];
    if (points.length < 2) continue;
    const e = data.edge;
    const kind = e === null ? 'head' : e.role === 'skip' ? 'skip' : e.type === 'conv' ? 'conv' : 'backbone';
    const cls = e === null ? 'dna-head-edge' : `dna-edge dna-edge-${e.role} dna-edge-${e.type}`;
    edgeLayer.append(
      s('path', { class: cls, d: smoothPath(points), 'marker-end': `url(#arrow-${kind})`, 'data-edge': e?.id ?? null }, s('title', {}, e === null ? 'pooling and classifier' : `${e.id}: ${e.role} ${edgeText(e)} (${e.from} → ${e.to})`)),
    );
    if (e !== null && data.x !== undefined && data.y !== undefined) {
      labelLayer.append(
        s(
          'g',
          { class: `dna-edge-label dna-edge-label-${e.role}`, transform: `translate(${data.x},${data.y})` },
          s('rect', { x: -data.width / 2, y: -LABEL_H / 2, width: data.width, height: LABEL_H, rx: 4 }),
          s('text', { 'text-anchor': 'middle', 'dominant-baseline': 'central' }, data.text),
        ),
      );
    }
  }

  const nodeLayer = s('g', { class: 'dna-nodes' });
  for (const id of g.nodes()) {
    const n = g.node(id);
    if (n.x === undefined || n.y === undefined) continue;
    const cls = n.kind === 'head' ? 'dna-head' : `dna-vertex dna-${n.kind}`;
    nodeLayer.append(
      s(
        'g',
        { class: cls, transform: `translate(${n.x - n.width / 2},${n.y - NODE_H / 2})`, 'data-vertex': n.vertexId ?? null },
        s('rect', { width: n.width, height: NODE_H, rx: 8 }),
        s('text', { x: n.width / 2, y: 16, 'text-anchor': 'middle', class: 'dna-node-title' }, n.lines[0]),
        s('text', { x: n.width / 2, y: 32, 'text-anchor': 'middle', class: 'dna-node-shape' }, n.lines[1]),
      ),
    );
  }
  svg.append(edgeLayer, labelLayer, nodeLayer);
  return svg;
}

function nodeWidth(lines: readonly string[]): number {
  return Math.max(96, Math.ceil(Math.max(...lines.map((l) => l.length)) * CHAR_W + 20));
}

/** A path through dagre's points, rounded at the bends. */
function smoothPath(points: readonly { x: number; y: number }[]): string {
  const p = points.map((q) => `${q.x.toFixed(1)},${q.y.toFixed(1)}`);
  if (points.length === 2) return `M${p[0]} L${p[1]}`;
  let d = `M${p[0]}`;
  for (let i = 1; i < points.length - 1; i++) {
    const here = points[i] as { x: number; y: number };
    const next = points[i + 1] as { x: number; y: number };
    const mid = i === points.length - 2 ? next : { x: (here.x + next.x) / 2, y: (here.y + next.y) / 2 };
    d += ` Q${here.x.toFixed(1)},${here.y.toFixed(1)} ${mid.x.toFixed(1)},${mid.y.toFixed(1)}`;
  }
  return d;
}
