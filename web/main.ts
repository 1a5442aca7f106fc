/// <reference lib="dom" />
/**
 * The page: reads the form, talks to the model worker (web/worker.ts), draws results on
 * canvases with a PNG download link each, and shows progress and errors as messages. No
 * framework: a handful of elements do not need one.
 *
 * @module
 */
import type { Reply, Request, SampleSettings } from "./protocol.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("form");
const caption = $<HTMLInputElement>("caption");
const samplerSelect = $<HTMLSelectElement>("sampler");
const upload = $<HTMLInputElement>("upload");
const generateButton = $<HTMLButtonElement>("generate");
const varyButton = $<HTMLButtonElement>("vary");
const progress = $<HTMLProgressElement>("progress");
const message = $<HTMLParagraphElement>("message");
const results = $<HTMLDivElement>("results");

/** What tests read after a run (the last result and the state), besides the canvases. */
const state: {
  ready: boolean;
  busy: boolean;
  adapter?: string;
  last?: Extract<Reply, { type: "images" }>;
  error?: string;
} = { ready: false, busy: false };
(globalThis as unknown as { unclip: typeof state }).unclip = state;

function say(text: string, kind: "info" | "warn" | "error" = "info"): void {
  message.textContent = text;
  message.className = kind;
  if (kind === "error") state.error = text;
}

function setBusy(busy: boolean): void {
  state.busy = busy;
  generateButton.disabled = busy || !state.ready;
  varyButton.disabled = busy || !state.ready || !upload.files?.length;
}

// The worker is a module worker (the bundle is ESM): https://html.spec.whatwg.org/#module-worker-example
const worker = new Worker(new URL("worker.js", location.href), { type: "module" });
const send = (req: Request, transfer: Transferable[] = []) => worker.postMessage(req, transfer);
let nextId = 1;
let currentId = 0;

/**
 * The form's numbers, or a one-line message naming the first field that is empty or out of its
 * range (the form is `novalidate`: the browser's own bubbles do not cover the Variations button,
 * and an empty field would reach the model as 0).
 */
function settings(): SampleSettings | string {
  const fields = {
    n: "Images",
    guidance: "Guidance",
    steps: "Steps",
    seed: "Seed",
    rerank: "Best of",
  };
  const values: Record<string, number> = {};
  for (const [id, label] of Object.entries(fields)) {
    const input = $<HTMLInputElement>(id);
    const [min, max, v] = [Number(input.min), Number(input.max), Number(input.value)];
    const integer = id !== "guidance";
    if (input.value.trim() === "" || !(v >= min && v <= max) || (integer && !Number.isInteger(v))) {
      return `${label} must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.`;
    }
    values[id] = v;
  }
  const { n, guidance, steps, seed, rerank } = values;
  return { n, guidance, steps, sampler: samplerSelect.value, seed, rerank };
}

function draw(reply: Extract<Reply, { type: "images" }>): void {
  const [n, , h, w] = reply.shape;
  results.replaceChildren();
  for (let i = 0; i < n; i++) {
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d")!;
    const img = ctx.createImageData(w, h);
    for (let p = 0; p < w * h; p++) {
      const s = (i * w * h + p) * 3;
      img.data.set([reply.rgb[s], reply.rgb[s + 1], reply.rgb[s + 2], 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
    const link = document.createElement("a");
    link.textContent = "PNG";
    link.download = `unclip-${i + 1}.png`;
    link.href = canvas.toDataURL("image/png");
    const figure = document.createElement("figure");
    const cap = document.createElement("figcaption");
    cap.append(link);
    figure.append(canvas, cap);
    results.append(figure);
  }
}

worker.addEventListener("message", (e: MessageEvent<Reply>) => {
  const r = e.data;
  if (r.type === "ready") {
    state.ready = true;
    state.adapter = r.adapter;
    $("adapter").textContent = r.adapter;
    samplerSelect.replaceChildren(...r.samplers.map((name) => new Option(name, name)));
    samplerSelect.value = r.defaultSampler;
    $<HTMLInputElement>("steps").value = String(r.defaultSteps ?? r.decoderSteps);
    $<HTMLInputElement>("guidance").value = String(r.defaultGuidance);
    $<HTMLInputElement>("rerank").value = String(r.defaultRerank);
    caption.maxLength = 500;
    caption.title = `At most ${r.contextLength - 2} tokens`;
    say(
      `Ready: ${r.imageSize}x${r.imageSize} images; the decoder's noise schedule has ` +
        `${r.decoderSteps} steps.`,
    );
    setBusy(false);
  } else if (r.type === "status") {
    say(r.text, r.text.startsWith("Never seen") ? "warn" : "info");
  } else if (r.type === "progress" && r.id === currentId) {
    progress.max = r.total;
    if (r.phase === "done") progress.value = r.step; // the bar follows the GPU
    else if (message.className !== "warn") say(`Recorded step ${r.step} of ${r.total}...`);
  } else if (r.type === "images" && r.id === currentId) {
    state.last = r;
    draw(r);
    progress.value = progress.max;
    const unseen = r.unseenWords.length
      ? ` Never seen in training: ${r.unseenWords.join(", ")}.`
      : "";
    say(
      `${r.shape[0]} image(s) in ${(r.ms / 1000).toFixed(1)} s.${unseen}`,
      unseen ? "warn" : "info",
    );
    setBusy(false);
  } else if (r.type === "error") {
    $("adapter").textContent ||= "none";
    if (r.kind !== "input" && r.kind !== "internal") $("adapter").textContent = "unavailable";
    say(r.message, "error");
    setBusy(false);
  }
});
worker.addEventListener("error", (e) => say(`The model worker failed: ${e.message}`, "error"));

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = caption.value.trim();
  if (!text) return say('Type a caption first, e.g. "a red circle".', "error");
  const s = settings();
  if (typeof s === "string") return say(s, "error");
  currentId = nextId++;
  progress.value = 0;
  setBusy(true);
  say("Working...");
  send({ type: "generate", id: currentId, caption: text, ...s });
});

upload.addEventListener("change", () => setBusy(state.busy));
varyButton.addEventListener("click", async () => {
  const file = upload.files?.[0];
  if (!file) return;
  const s = settings();
  if (typeof s === "string") return say(s, "error");
  const png = new Uint8Array(await file.arrayBuffer());
  currentId = nextId++;
  progress.value = 0;
  setBusy(true);
  say(`Variations of ${file.name}...`);
  send({ type: "variations", id: currentId, png, ...s }, [png.buffer]);
});

// The server puts the weights at weights/ beside the page (tasks/serve.ts).
send({ type: "load", weights: new URL("weights/", location.href).href });
