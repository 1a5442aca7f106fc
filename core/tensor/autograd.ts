/**
 * Reverse-mode automatic differentiation (a tape of nodes, as in micrograd): every op that has an
 * input requiring a gradient records a `GradNode` with its vector-Jacobian product; `backward()`
 * walks the graph in reverse topological order and accumulates gradients into the leaves.
 *
 * This file needs no op file, only kernels (`kernels/binary.ts`, `kernels/fill.ts`), so it
 * works whichever engine file a program imports first. Every op file that records gradients
 * and `creation.ts` import it, which installs `Tensor.backward`.
 */
import { binaryKernel } from "./kernels/binary.ts";
import { copyKernel, fillKernel } from "./kernels/fill.ts";
import { activeProfile } from "./profiler.ts";
import { type GradNode, setBackwardHook, type Tensor } from "./tensor.ts";

let gradEnabled = true;

/** Whether ops currently record the tape. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording gradients (sampling, evaluation, optimizer updates).
 *
 * @example
 * ```ts
 * import type { Tensor } from "./tensor.ts";
 * function evaluate(model: { forward(x: Tensor): Tensor }, x: Tensor): Tensor {
 *   return noGrad(() => model.forward(x)); // nothing is recorded for backward()
 * }
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Records how `out` was made when any input needs a gradient. Returns `out` for chaining.
 * Ops call this right after computing their forward result.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: GradNode["backward"],
): Tensor {
  activeProfile()?.forward(op, inputs);
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** A same-shape sum of two gradients (no tape). */
function addGrads(a: Tensor, b: Tensor): Tensor {
  const profile = activeProfile();
  if (profile) return profile.backward("(accumulate)", [a], () => binaryKernel("add", a, b));
  return binaryKernel("add", a, b);
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep transformer graphs overflow a recursive walk.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

function backward(root: Tensor, gradOut?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(
      `backward() called on ${root} which does not require a gradient (no parameter reaches it).`,
    );
  }
  if (!gradOut && root.size !== 1) {
    throw new Error(`backward() without a gradient needs a scalar, got shape [${root.shape}].`);
  }
  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    // Never hand the caller's own tensor to a leaf: it may dispose it (or we would keep it).
    grads.set(root, gradOut ? copyKernel(gradOut) : fillKernel(root.shape, 1));
    for (const t of topologicalOrder(root)) {
      const g = grads.get(t);
      if (!g) continue;
      if (!t.node) {
        // A leaf: accumulate into .grad, which outlives the step's scope.
        if (t.grad) {
          const sum = addGrads(t.grad, g);
          t.grad.dispose();
          t.grad = sum.keep();
        } else {
          // The same gradient tensor can reach two leaves (y = a + b): each needs its own copy,
          // or zeroing one leaf's gradient would free the other's.
          t.grad = (g.kept ? copyKernel(g) : g).keep();
        }
        continue;
      }
      const node = t.node, profile = activeProfile();
      const inputGrads = profile
        ? profile.backward(node.op, node.inputs, () => node.backward(g))
        : node.backward(g);
      t.node.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (!gi || !input.requiresGrad) return;
        if (
          gi.shape.length !== input.shape.length || gi.shape.some((d, k) => d !== input.shape[k])
        ) {
          throw new Error(
            `Internal error in the gradient of ${
              t.node!.op
            }: input ${i} has shape [${input.shape}] ` +
              `but its gradient has shape [${gi.shape}].`,
          );
        }
        const prev = grads.get(input);
        grads.set(input, prev ? addGrads(prev, gi) : gi);
      });
    }
  });
}

setBackwardHook(backward);
