#!/usr/bin/python3
"""PyTorch (CPU) reference for Petri's training benchmark (bench/train.ts).

Builds, from a Petri DNA (JSON), the same network that shared/model/build.ts
builds in tf.js, trains it the way shared/model/train.ts does and evaluates
it the way shared/model/evaluate.ts does, and reports the seconds taken.

Architecture, per vertex in backbone order: the backbone input plus every
skip input summed; a conv edge is a bias-free convolution with 'same'
padding (odd filters: padding (k-1)/2, which for a 3x3 stride-2 conv on an
even input gives the same output size as TF's 'same', shifted by one pixel
of padding placement); an identity skip whose shape differs is adapted with
a fixed (non-trainable) 1x1 strided convolution that subsamples space and
truncates or zero-pads channels, exactly as skipAdapter in
shared/evolution/dna.ts; a 'bn_relu' vertex applies batch norm (eps 1e-3,
PyTorch momentum 0.1 = tf.js/Keras momentum 0.9) then ReLU. Then global
average pooling and a linear classifier with bias. The input is raw pixels
rescaled to [-1, 1].

Training: SGD, momentum 0.9, weight decay 1e-4 on kernels only (as in
train.ts), the DNA's learning rate, softmax cross-entropy, batch 50, the
paper's augmentation (pad 4 + random crop, random horizontal flip) done per
batch on uint8 arrays in numpy as train.ts does in JS, the loss read back
every 25 steps and on the last one. Evaluation: inference mode, batches of
the given size, argmax compared with the labels.

Input (argv[1], a JSON file): {"threads": n, "cells": [{"name", "dna", "plan"}]}
with plan = {warmupSteps, steps, batchSize, evalImages, evalBatch, evalWarmupBatches, repeats}:
the timed training (steps) and evaluation are repeated `repeats` times and
the median seconds reported, as bench/lib/train-measure.ts does.
Output (stdout): one JSON object {"torch": version, "threads": n, "cells": [...]}.
"""

import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPSILON = 1e-3
BN_MOMENTUM_TORCH = 0.1  # tf.js/Keras momentum 0.9
AUGMENT_PAD = 4
MIN_AUGMENT_SIDE = 16
LOSS_EVERY = 25


def backbone_edges(dna):
    out = {e["from"]: e for e in dna["edges"] if e["role"] == "backbone"}
    edges, at = [], dna["input"]
    while at in out and len(edges) <= len(dna["edges"]):
        e = out[at]
        edges.append(e)
        at = e["to"]
    return edges


def edge_output_shape(e, shape):
    if e["type"] == "identity":
        return tuple(shape)
    s = e["stride"]
    return (math.ceil(shape[0] / s), math.ceil(shape[1] / s), e["channels"])


def vertex_shapes(dna):
    shapes = {dna["input"]: tuple(dna["inputShape"])}
    for e in backbone_edges(dna):
        shapes[e["to"]] = edge_output_shape(e, shapes[e["from"]])
    return shapes


def skip_adapter(frm, to):
    """Same rule as skipAdapter in shared/evolution/dna.ts: (stride, inC, outC) or None."""
    stride = 1
    while math.ceil(frm[0] / stride) > to[0] or math.ceil(frm[1] / stride) > to[1]:
        stride *= 2
    if math.ceil(frm[0] / stride) != to[0] or math.ceil(frm[1] / stride) != to[1]:
        raise ValueError(f"cannot adapt a skip of {frm} to {to}")
    if stride == 1 and frm[2] == to[2]:
        return None
    return (stride, frm[2], to[2])


class DnaNet(nn.Module):
    def __init__(self, dna):
        super().__init__()
        self.dna = dna
        shapes = vertex_shapes(dna)
        into = {}
        for e in dna["edges"]:
            into.setdefault(e["to"], []).append(e)
        by_id = {v["id"]: v for v in dna["vertices"]}
        self.plan = []  # (vertex id, [(edge, module key or None, source id)], bn key or None)
        self.convs = nn.ModuleDict()
        self.bns = nn.ModuleDict()
        order = [dna["input"]] + [e["to"] for e in backbone_edges(dna)]
        for vid in order[1:]:
            edges = into.get(vid, [])
            backbone = [e for e in edges if e["role"] == "backbone"]
            skips = [e for e in edges if e["role"] == "skip"]
            inputs = []
            for e in backbone + skips:
                key = None
                if e["type"] == "conv":
                    fh, fw = e["filterHeight"], e["filterWidth"]
                    conv = nn.Conv2d(
                        shapes[e["from"]][2], e["channels"], (fh, fw), stride=e["stride"],
                        padding=((fh - 1) // 2, (fw - 1) // 2), bias=False,
                    )
                    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                    key = e["id"]
                    self.convs[key] = conv
                elif e["role"] == "skip":
                    adapter = skip_adapter(shapes[e["from"]], shapes[vid])
                    if adapter is not None:
                        stride, cin, cout = adapter
                        conv = nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False)
                        with torch.no_grad():
                            conv.weight.zero_()
                            for c in range(min(cin, cout)):
                                conv.weight[c, c, 0, 0] = 1.0
                        conv.weight.requires_grad_(False)
                        key = "adapt_" + e["id"]
                        self.convs[key] = conv
                inputs.append((key, e["from"]))
            bn_key = None
            if by_id[vid]["activation"] == "bn_relu":
                bn_key = "bn_" + vid
                self.bns[bn_key] = nn.BatchNorm2d(shapes[vid][2], eps=BN_EPSILON, momentum=BN_MOMENTUM_TORCH)
            self.plan.append((vid, inputs, bn_key))
        self.classifier = nn.Linear(shapes[dna["output"]][2], dna["numClasses"])

    def forward(self, x):
        values = {self.dna["input"]: x / 127.5 - 1.0}
        for vid, inputs, bn_key in self.plan:
            total = None
            for key, src in inputs:
                v = values[src]
                if key is not None:
                    v = self.convs[key](v)
                total = v if total is None else total + v
            if bn_key is not None:
                total = F.relu(self.bns[bn_key](total))
            values[vid] = total
        pooled = values[self.dna["output"]].mean(dim=(2, 3))
        return self.classifier(pooled)


class BatchStream:
    """Shuffled batches with the paper's augmentation, on uint8 NHWC arrays (as shared/model/batches.ts)."""

    def __init__(self, pixels, labels, batch, rng):
        self.pixels, self.labels, self.batch, self.rng = pixels, labels, batch, rng
        self.order = np.arange(len(labels))
        self.cursor = len(labels)
        n, h, w, c = pixels.shape
        self.augment = h >= MIN_AUGMENT_SIDE and w >= MIN_AUGMENT_SIDE
        self.padded = np.zeros((h + 2 * AUGMENT_PAD, w + 2 * AUGMENT_PAD, c), dtype=np.uint8)

    def next(self):
        n, h, w, c = self.pixels.shape
        out = np.empty((self.batch, h, w, c), dtype=np.uint8)
        labels = np.empty(self.batch, dtype=np.int64)
        for b in range(self.batch):
            if self.cursor >= len(self.order):
                self.rng.shuffle(self.order)
                self.cursor = 0
            i = self.order[self.cursor]
            self.cursor += 1
            labels[b] = self.labels[i]
            if not self.augment:
                out[b] = self.pixels[i]
                continue
            dy, dx = self.rng.integers(-AUGMENT_PAD, AUGMENT_PAD + 1, size=2)
            self.padded[AUGMENT_PAD:AUGMENT_PAD + h, AUGMENT_PAD:AUGMENT_PAD + w] = self.pixels[i]
            crop = self.padded[AUGMENT_PAD + dy:AUGMENT_PAD + dy + h, AUGMENT_PAD + dx:AUGMENT_PAD + dx + w]
            out[b] = crop[:, ::-1] if self.rng.random() < 0.5 else crop
        x = torch.from_numpy(out).permute(0, 3, 1, 2).float().contiguous()
        return x, torch.from_numpy(labels)


def make_optimizer(model, lr):
    decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.startswith("convs.") or n == "classifier.weight")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not (n.startswith("convs.") or n == "classifier.weight")]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}], lr=lr, momentum=0.9
    )


def train(model, stream, steps, lr):
    model.train()
    opt = make_optimizer(model, lr)
    last = float("nan")
    for step in range(steps):
        x, y = stream.next()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % LOSS_EVERY == 0 or step + 1 == steps:
            last = float(loss.item())
    return last


def evaluate(model, pixels, labels, batch):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch):
            x = torch.from_numpy(pixels[start:start + batch]).permute(0, 3, 1, 2).float()
            pred = model(x).argmax(dim=1)
            correct += int((pred == torch.from_numpy(labels[start:start + batch].astype(np.int64))).sum())
    return correct


def random_images(rng, shape, count, classes):
    return rng.integers(0, 256, size=(count, *shape), dtype=np.uint8), rng.integers(0, classes, size=count, dtype=np.uint8)


def measure(dna, plan):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    shape, classes, batch = tuple(dna["inputShape"]), dna["numClasses"], plan["batchSize"]
    train_px, train_lb = random_images(rng, shape, max(batch * 4, 200), classes)
    eval_px, eval_lb = random_images(rng, shape, plan["evalImages"], classes)
    warm_px, warm_lb = random_images(rng, shape, plan["evalBatch"] * plan["evalWarmupBatches"], classes)
    model = DnaNet(dna)
    stream = BatchStream(train_px, train_lb, batch, rng)

    t0 = time.perf_counter()
    if plan["warmupSteps"] > 0:
        train(model, stream, plan["warmupSteps"], dna["learningRate"])
    warmup = time.perf_counter() - t0
    result = {"warmupSteps": plan["warmupSteps"], "steps": plan["steps"], "batchSize": batch, "warmupSeconds": warmup}
    repeats = max(1, int(plan.get("repeats", 1)))
    if plan["steps"] > 0:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result["lastLoss"] = train(model, stream, plan["steps"], dna["learningRate"])
            times.append(time.perf_counter() - t0)
        result["trainSeconds"] = float(np.median(times))
        result["trainSecondsAll"] = times
    t0 = time.perf_counter()
    if len(warm_lb) > 0:
        evaluate(model, warm_px, warm_lb, plan["evalBatch"])
    result["evalWarmupSeconds"] = time.perf_counter() - t0
    if plan["evalImages"] > 0:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluate(model, eval_px, eval_lb, plan["evalBatch"])
            times.append(time.perf_counter() - t0)
        result["evalSeconds"] = float(np.median(times))
        result["evalSecondsAll"] = times
    result["evalImages"] = plan["evalImages"]
    result["evalBatch"] = plan["evalBatch"]
    return result


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    threads = int(job.get("threads", 2))
    torch.set_num_threads(threads)
    cells = []
    for cell in job["cells"]:
        try:
            cells.append({"name": cell["name"], "status": "ok", **measure(cell["dna"], cell["plan"])})
        except Exception as err:  # report and keep going, like the tf.js side
            cells.append({"name": cell["name"], "status": "failed", "reason": f"{type(err).__name__}: {err}"})
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "cells": cells}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
