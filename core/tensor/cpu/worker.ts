/**
 * A CPU backend worker thread (see `threads.ts`): instantiates the kernels on the shared memory,
 * says it is ready, then forever waits for a job in the control block, claims and runs shares of
 * it while any are left, and counts each done.
 */
import { parentPort } from "node:worker_threads";
import {
  ARGS_OFFSET,
  claimShare,
  CTL,
  MAX_ARGS,
  WORKER_SPINS,
  type WorkerInit,
} from "./threads.ts";

type Export = (...args: number[]) => void;

function serve(init: WorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, {
    env: { memory: init.memory, abort: () => {} },
  });
  const exports = instance.exports as Record<string, Export>;
  const fns = init.names.map((n) => exports[n]);
  const ctl = new Int32Array(init.control, 0, ARGS_OFFSET / 4);
  const args = new Float64Array(init.control, ARGS_OFFSET, MAX_ARGS);
  let seen = Atomics.load(ctl, CTL.generation);
  parentPort!.postMessage("ready");
  for (;;) {
    // Poll a while before sleeping: the next job usually comes within microseconds.
    for (let spin = 0; spin < WORKER_SPINS && Atomics.load(ctl, CTL.generation) === seen; spin++);
    if (Atomics.load(ctl, CTL.generation) === seen) {
      // Counted as asleep before the check in `Atomics.wait`: a caller that bumps the generation
      // after this add sees the count and notifies; one that bumped it before makes wait return.
      Atomics.add(ctl, CTL.sleepers, 1);
      Atomics.wait(ctl, CTL.generation, seen);
      Atomics.sub(ctl, CTL.sleepers, 1);
    }
    seen = Atomics.load(ctl, CTL.generation);
    for (let tid = claimShare(ctl, seen); tid >= 0; tid = claimShare(ctl, seen)) {
      try {
        const argv = Array.from(args.subarray(0, Atomics.load(ctl, CTL.argc)));
        fns[Atomics.load(ctl, CTL.fn)](...argv, tid, Atomics.load(ctl, CTL.threads));
      } catch (e) {
        console.error(`CPU backend worker ${init.tid}:`, e);
        Atomics.store(ctl, CTL.failed, 1);
      }
      Atomics.add(ctl, CTL.done, 1);
      if (Atomics.load(ctl, CTL.callerAsleep)) Atomics.notify(ctl, CTL.done);
    }
  }
}

// The forever loop blocks this worker's event loop, so the start message is taken once.
parentPort!.once("message", (init: WorkerInit) => serve(init));
