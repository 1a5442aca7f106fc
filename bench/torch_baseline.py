#!/usr/bin/env python3
"""PyTorch eager fp32 baseline for `deno task bench` (issue 8).

Same shapes and the same result names as tasks/bench.ts, timed the same way (each repetition
synchronised to device completion, median after a warm-up), plus one full training step
(forward + backward + Adam) of each thesis-preset model at the thesis batch sizes, written as
small PyTorch modules that follow the thesis's chapter 3 and plugins/ (see the classes below).

    python3 bench/torch_baseline.py [--quick] [--json FILE] [--device cuda|cpu] [--reps N]
                                    [--threads N] [--only matmul,conv,attention,train,demo]
                                    [--timing synced|pipelined]

TF32 is OFF everywhere (matmul and cuDNN), so every figure is true fp32. --quick uses small
shapes and few repetitions so the script can be tested on a CPU (PyTorch >= 1.13). The "demo"
rows are the shipped demo decoder (presets/cpu-demo.jsonc, weights/default; 224,563 parameters)
at batch 16: one forward pass under no_grad as a guided sampling step of 8 images calls it, and
one training step; they ignore --quick. --threads sets torch.set_num_threads (CPU).
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
# timing


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


PIPELINED = False  # --timing pipelined: set in main()


def time_ms(fn, device, reps, warmup):
    """Median wall-clock ms of fn(), each repetition synchronised (as tasks/bench.ts does); with
    --timing pipelined, the mean of reps runs back to back with one sync at the end (as
    tasks/bench.ts --timing pipelined, which also adds repetitions until its ~11 ms WebGPU sync is
    under 5% of the total; a CUDA sync costs microseconds, so reps are kept as they are here)."""
    for _ in range(warmup):
        fn()
    sync(device)
    if PIPELINED:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync(device)
        return (time.perf_counter() - t0) * 1e3 / reps
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


# --------------------------------------------------------------------------------------------
# models (thesis chapter 3; plugins/encoders, plugins/priors, plugins/decoders)


def sdpa(q, k, v, causal=False):
    if hasattr(F, "scaled_dot_product_attention"):  # PyTorch >= 2.0
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), -1e30)
    return s.softmax(-1) @ v


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x), x + MLP(LN x) (GELU, width x mlp_ratio)."""

    def __init__(self, width, heads, mlp_ratio, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, N, 3, self.heads, C // self.heads).permute(
            2, 0, 3, 1, 4)
        a = sdpa(q, k, v, self.causal).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TextTransformer(nn.Module):
    """Token + learned position embedding, pre-LN transformer, final LN."""

    def __init__(self, vocab, ctx, width, heads, layers, mlp_ratio, causal):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(ctx, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, causal) for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, tokens):
        x = self.tok(tokens) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.ln(x)


class ResBlock2(nn.Module):
    """CLIP ResNet block: conv3x3-BN-ReLU-[avgpool]-conv3x3-BN + ([avgpool] conv1x1-BN), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.c1, self.n1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.n2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.sc = None
        if cin != cout or stride != 1:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.n1(self.c1(x)))
        if self.stride == 2:
            h = F.avg_pool2d(h, 2)
        h = self.n2(self.c2(h))
        s = x
        if self.stride == 2:
            s = F.avg_pool2d(s, 2)
        if self.sc is not None:
            s = self.sc(s)
        return F.relu(h + s)


class Clip(nn.Module):
    """Thesis CLIP: ResNet (stem 16, 32/64/128/192, strides 1/2/2/2) + 8-layer width-64 text."""

    def __init__(self, vocab=512, ctx=33, embed=256):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        blocks, c = [], 16
        for w, s in zip([32, 64, 128, 192], [1, 2, 2, 2]):
            blocks.append(ResBlock2(c, w, s))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.img_proj = nn.Linear(192 * 4, embed)
        self.text = TextTransformer(vocab, ctx, 64, 16, 8, 2, causal=True)
        self.txt_proj = nn.Linear(64, embed)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def loss(self, images, tokens):
        h = F.max_pool2d(F.relu(self.stem(images)), 2)
        h = F.adaptive_avg_pool2d(self.blocks(h), 2).flatten(1)
        img = F.normalize(self.img_proj(h), dim=-1)
        t = self.text(tokens)[:, -1]  # end-token position (fixed-length captions here)
        txt = F.normalize(self.txt_proj(t), dim=-1)
        logits = self.logit_scale.exp().clamp(max=100) * img @ txt.t()
        y = torch.arange(images.shape[0], device=images.device)
        return (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y)) / 2


def timestep_embedding(t, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    a = t.float()[:, None] * f[None]
    return torch.cat([a.cos(), a.sin()], -1)


class Prior(nn.Module):
    """Thesis prior: causal transformer width 256, 16 heads, 8 layers over 5 tokens (pooled text
    encoding, CLIP text embedding, timestep, noisy image embedding, learned query)."""

    def __init__(self, width=256, text_width=64, ctx=33, embed=256):
        super().__init__()
        self.pool_conv = nn.Conv1d(text_width, 1, 1)
        self.pool_lin = nn.Linear(ctx, width)
        self.t_lin = nn.Linear(width, width)
        self.in_txt, self.in_img = nn.Linear(embed, width), nn.Linear(embed, width)
        self.query = nn.Parameter(torch.randn(width) * 0.01)
        self.pos = nn.Parameter(torch.randn(5, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, 16, 2, causal=True) for _ in range(8))  # MLP x2: presets/thesis.jsonc
        self.ln = nn.LayerNorm(width)
        self.out = nn.Linear(width, embed)

    def forward(self, text_enc, text_emb, t, x_t):
        B = text_enc.shape[0]
        pooled = self.pool_lin(torch.tanh(self.pool_conv(text_enc.transpose(1, 2))).squeeze(1))
        toks = torch.stack([pooled, self.in_txt(text_emb),
                            self.t_lin(timestep_embedding(t, self.t_lin.in_features)),
                            self.in_img(x_t), self.query.expand(B, -1)], 1) + self.pos
        for b in self.blocks:
            toks = b(toks)
        return self.out(self.ln(toks[:, -1]))


def groups(c, g=32):
    for k in range(min(g, c), 1, -1):
        if c % k == 0:
            return k
    return 1


def zero(m):
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class UResBlock(nn.Module):
    """GN-SiLU-conv3x3, + projected time embedding, GN-SiLU-zero conv3x3, + (1x1) skip."""

    def __init__(self, cin, cout, emb, g=32):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(groups(cin, g), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.e = nn.Linear(emb, cout)
        self.n2 = nn.GroupNorm(groups(cout, g), cout)
        self.c2 = zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x))) + self.e(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class UAttn(nn.Module):
    """GN, qkv 1x1, conditioning tokens projected to k/v and put before the image's, 8 heads."""

    def __init__(self, c, heads, ctx_dim, g=32):
        super().__init__()
        self.h = heads
        self.norm = nn.GroupNorm(groups(c, g), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.ckv = nn.Linear(ctx_dim, 2 * c)
        self.proj = zero(nn.Conv2d(c, c, 1))

    def forward(self, x, tokens):
        B, C, H, W = x.shape
        d = C // self.h
        q, k, v = self.qkv(self.norm(x)).view(B, 3, self.h, d, H * W).transpose(-1, -2).unbind(1)
        ck, cv = self.ckv(tokens).view(B, -1, 2, self.h, d).permute(2, 0, 3, 1, 4)
        a = sdpa(q, torch.cat([ck, k], 2), torch.cat([cv, v], 2))
        return x + self.proj(a.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Thesis decoder: U-Net 64/128/256, 2 res blocks per level, attention at every level and in
    the middle, stride-2 conv down, transposed conv up, time embedding 32 (x4 = 128); separate
    6-layer width-64 text transformer (8 heads, no mask) whose last token is added to the time
    embedding; CLIP embedding projected to 4 extra tokens."""

    def __init__(self, vocab=512, ctx=33, base=64, mults=(1, 2, 4), tdim=32, nres=1):  # presets/thesis.jsonc
        super().__init__()
        emb = 4 * tdim
        self.tdim = tdim
        self.t1, self.t2 = nn.Linear(tdim, emb), nn.Linear(emb, emb)
        self.text = TextTransformer(vocab, ctx, 64, 8, 6, 4, causal=False)
        self.pool = nn.Linear(64, emb)
        self.clip = nn.Linear(256, 4 * 64)
        self.inc = nn.Conv2d(3, base, 3, padding=1)
        self.down, skips, ch = nn.ModuleList(), [base], base
        for lvl, m in enumerate(mults):
            out = base * m
            for _ in range(nres):
                self.down.append(nn.ModuleList([UResBlock(ch, out, emb), UAttn(out, 8, 64)]))
                ch = out
                skips.append(ch)
            if lvl < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
        self.mid1, self.mida, self.mid2 = UResBlock(ch, ch, emb), UAttn(ch, 8, 64), UResBlock(
            ch, ch, emb)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(mults))):
            out = base * mults[lvl]
            for i in range(nres + 1):
                mods = [UResBlock(ch + skips.pop(), out, emb), UAttn(out, 8, 64)]
                ch = out
                if lvl > 0 and i == nres:
                    mods.append(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))
                self.up.append(nn.ModuleList(mods))
        self.onorm = nn.GroupNorm(groups(ch), ch)
        self.outc = zero(nn.Conv2d(ch, 3, 3, padding=1))

    def forward(self, x, t, tokens, clip_emb):
        seq = self.text(tokens)
        ctx = torch.cat([seq, self.clip(clip_emb).view(x.shape[0], 4, 64)], 1)
        emb = self.t2(F.silu(self.t1(timestep_embedding(t, self.tdim)))) + self.pool(seq[:, -1])
        h = self.inc(x)
        hs = [h]
        for b in self.down:
            if len(b) == 1:
                h = b[0](h)
            else:
                h = b[1](b[0](h, emb), ctx)
            hs.append(h)
        h = self.mid2(self.mida(self.mid1(h, emb), ctx), emb)
        for b in self.up:
            h = b[1](b[0](torch.cat([h, hs.pop()], 1), emb), ctx)
            if len(b) == 3:
                h = b[2](h)
        return self.outc(F.silu(self.onorm(h)))


class DemoUNet(nn.Module):
    """The shipped demo decoder (presets/cpu-demo.jsonc; plugins/decoders/unet.ts, blocks.ts,
    conditioning.ts): U-Net 16/32, 1 res block per level, attention (2 heads) at level 1 and in
    the middle, GroupNorm 8 groups, stride-2 conv down, transposed 4x4 conv up, time embedding 16
    (x4 = 64); a 1-layer width-32 text transformer (4 heads, MLP x4, no mask) over 33 tokens of a
    320-token vocabulary whose end token's output is projected and added to the time embedding;
    the CLIP embedding (32) projected to 4 extra tokens; learned null condition mixed in by
    `keep` (classifier-free guidance). 224,563 parameters, as ours."""

    def __init__(self, vocab=320, ctx=33, base=16, mults=(1, 2), tdim=16, nres=1,
                 attn_levels=(1,), g=8, heads=2, width=32, text_layers=1, text_heads=4,
                 clip_dim=32, clip_tokens=4):
        super().__init__()
        emb = 4 * tdim
        self.tdim, self.width, self.clip_tokens = tdim, width, clip_tokens
        self.t1, self.t2 = nn.Linear(tdim, emb), nn.Linear(emb, emb)
        self.text = TextTransformer(vocab, ctx, width, text_heads, text_layers, 4, causal=False)
        self.pool = nn.Linear(width, emb)
        self.clip = nn.Linear(clip_dim, clip_tokens * width)
        self.null_text = nn.Parameter(torch.randn(1, ctx, width) * 0.02)
        self.null_pooled = nn.Parameter(torch.randn(1, width) * 0.02)
        self.null_clip = nn.Parameter(torch.zeros(1, clip_dim))
        attn = lambda c: UAttn(c, heads, width, g)  # noqa: E731
        self.inc = nn.Conv2d(3, base, 3, padding=1)
        # each entry: [res, attn or None, down/up or None]
        self.down, skips, ch = nn.ModuleList(), [base], base
        for lvl, m in enumerate(mults):
            out = base * m
            for _ in range(nres):
                a = attn(out) if lvl in attn_levels else None
                self.down.append(nn.ModuleList([UResBlock(ch, out, emb, g), a]))
                ch = out
                skips.append(ch)
            if lvl < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
        self.mid1, self.mida, self.mid2 = UResBlock(ch, ch, emb, g), attn(ch), UResBlock(
            ch, ch, emb, g)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(mults))):
            out = base * mults[lvl]
            for i in range(nres + 1):
                a = attn(out) if lvl in attn_levels else None
                mods = [UResBlock(ch + skips.pop(), out, emb, g), a]
                ch = out
                if lvl > 0 and i == nres:
                    mods.append(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))
                self.up.append(nn.ModuleList(mods))
        self.onorm = nn.GroupNorm(groups(ch, g), ch)
        self.outc = zero(nn.Conv2d(ch, 3, 3, padding=1))

    def forward(self, x, t, tokens, end_index, clip_emb, keep):
        B = x.shape[0]
        seq = self.text(tokens)
        last = seq[torch.arange(B, device=x.device), end_index]
        k = keep[:, None]
        mix = lambda v, nul, k: v * k + nul * (1 - k)  # noqa: E731
        text = mix(seq, self.null_text, k[:, :, None])
        pooled = mix(last, self.null_pooled, k)
        clip = mix(clip_emb, self.null_clip, k)
        ctx = torch.cat([text, self.clip(clip).view(B, self.clip_tokens, self.width)], 1)
        emb = self.t2(F.silu(self.t1(timestep_embedding(t, self.tdim)))) + self.pool(pooled)
        h = self.inc(x)
        hs = [h]
        for b in self.down:
            if len(b) == 1:
                h = b[0](h)
            else:
                h = b[0](h, emb)
                if b[1] is not None:
                    h = b[1](h, ctx)
            hs.append(h)
        h = self.mid2(self.mida(self.mid1(h, emb), ctx), emb)
        for b in self.up:
            h = b[0](torch.cat([h, hs.pop()], 1), emb)
            if b[1] is not None:
                h = b[1](h, ctx)
            if len(b) == 3:
                h = b[2](h)
        return self.outc(F.silu(self.onorm(h)))


def cosine_abar(steps, device):
    s = 0.008
    x = torch.linspace(0, steps, steps + 1, device=device)
    f = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
    return (f / f[0])[1:].clamp(min=1e-5)


# --------------------------------------------------------------------------------------------


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def demo_rows(dev, reps, warm, report):
    """The demo decoder at batch 16: a guided sampling step's forward pass (8 images, keep 1 for
    the first half and 0 for the second) under no_grad, and a training step (Algorithm 2 loss,
    backward, Adam) with every row conditional, as tasks/bench.ts runs them."""
    B, steps = 16, 100
    unet = DemoUNet().to(dev)
    n = sum(p.numel() for p in unet.parameters())
    print(f"demo decoder parameters: {n:,} (ours: 224,563)", flush=True)
    x = torch.randn(B, 3, 16, 16, device=dev)
    t = torch.full((B,), steps // 2, device=dev)
    toks = torch.randint(0, 320, (B, 33), device=dev)
    end = torch.full((B,), 20, device=dev)
    cemb = F.normalize(torch.randn(B, 32, device=dev), dim=-1)
    keep = torch.cat([torch.ones(B // 2), torch.zeros(B // 2)]).to(dev)
    unet.eval()

    def forward():
        with torch.no_grad():
            unet(x, t, toks, end, cemb, keep)
    ms = time_ms(forward, dev, reps, warm)
    report({"name": f"decoder forward B{B} (cpu-demo)", "ms": ms, "params": n})

    unet.train()
    opt = torch.optim.Adam(unet.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    abar = cosine_abar(steps, dev)
    ones = torch.ones(B, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        ts = torch.randint(0, steps, (B,), device=dev)
        ab = abar[ts][:, None, None, None]
        eps = torch.randn_like(x)
        xt = ab.sqrt() * x + (1 - ab).sqrt() * eps
        F.mse_loss(unet(xt, ts, toks, end, cemb, ones), eps).backward()
        opt.step()
    ms = time_ms(step, dev, reps, warm)
    report({"name": f"train step decoder B{B} (cpu-demo)", "ms": ms, "params": n})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes, few reps (CPU testing)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--batch", type=int, help="conv batch size (default 64; --quick 8)")
    ap.add_argument("--only", help="comma-separated: matmul,conv,attention,train,demo")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (CPU); default torch's")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN pick algorithms (default off: plain eager)")
    ap.add_argument("--timing", choices=["synced", "pipelined"], default="synced",
                    help="synced: median of synchronised runs; pipelined: mean of back-to-back runs")
    a = ap.parse_args()
    global PIPELINED
    PIPELINED = a.timing == "pipelined"

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    reps = a.reps or (2 if a.quick else 20)
    warm = 1 if a.quick else 3
    batch = a.batch or (8 if a.quick else 64)
    only = set(a.only.split(",")) if a.only else None
    want = lambda k: only is None or k in only  # noqa: E731
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    threads = torch.get_num_threads()
    print(f"device: {name} (torch {torch.__version__}, {threads} threads, tf32 off)", flush=True)
    results = []
    out = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": name,
        "threads": threads,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tf32": False,
        "cudnn_benchmark": a.cudnn_benchmark,
        "quick": a.quick,
        "batch": batch,
        "reps": reps,
        "timing": a.timing,
        "results": results,
    }

    def save():
        if a.json:  # rewritten after every result, so a timeout keeps what was measured
            with open(a.json + ".tmp", "w") as f:
                json.dump(out, f, indent=2)
            os.replace(a.json + ".tmp", a.json)

    def report(r):
        results.append(r)
        g = f"{r['gflops']:9.2f} GFLOP/s" if "gflops" in r else ""
        print(f"{r['name']:<44} {r['ms']:10.2f} ms {g}", flush=True)
        save()

    def fwd_bwd(f, leaves):
        def run():
            for x in leaves:
                x.grad = None
            f().sum().backward()
        return run

    if want("matmul"):
        for n in ([256, 512] if a.quick else [256, 512, 1024, 2048, 4096]):
            x, y = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
            ms = time_ms(lambda: x @ y, dev, reps, warm)
            report({"name": f"matmul {n}x{n}x{n}", "ms": ms, "gflops": 2 * n**3 / ms / 1e6})
    if want("conv"):
        for c, hw in [(64, 32), (128, 16), (256, 8)]:
            x = torch.randn(batch, c, hw, hw, device=dev, requires_grad=True)
            w = (torch.randn(c, c, 3, 3, device=dev) * 0.05).requires_grad_()
            ms = time_ms(fwd_bwd(lambda: F.conv2d(x, w, None, padding=1), [x, w]), dev, reps, warm)
            flops = 3 * 2 * batch * c * c * 9 * hw * hw
            report({"name": f"conv2d 3x3 fwd+bwd B{batch} {c}x{hw}x{hw}", "ms": ms,
                    "gflops": flops / ms / 1e6})
    if want("attention"):
        q, k, v = (torch.randn(1, 1, 1024, 64, device=dev, requires_grad=True) for _ in range(3))
        ms = time_ms(fwd_bwd(lambda: sdpa(q, k, v), [q, k, v]), dev, reps, warm)
        report({"name": "attention fwd+bwd 1024 tokens x 64 ch", "ms": ms})

    if want("train"):
        div = 16 if a.quick else 1  # --quick: batch / 16
        treps = 2 if a.quick else max(5, reps // 2)

        def step_timer(model, loss_fn, max_norm=None):
            opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

            def step():
                opt.zero_grad(set_to_none=True)
                loss_fn().backward()
                if max_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                opt.step()
            return step

        def step_rows(name, model, loss_fn):
            """The step, then the same with clipping by the global norm 1 (the presets' gradClip),
            as tasks/bench.ts's "... + grad clip" rows."""
            for max_norm in (None, 1.0):
                ms = time_ms(step_timer(model, loss_fn, max_norm), dev, treps, warm)
                label = name if max_norm is None else f"{name} + grad clip"
                report({"name": label, "ms": ms, "params": params(model)})

        def params(m):
            return sum(p.numel() for p in m.parameters())

        B = 256 // div
        clip = Clip().to(dev)
        imgs = torch.randn(B, 3, 32, 32, device=dev)
        toks = torch.randint(0, 512, (B, 33), device=dev)
        step_rows(f"train step clip B{B}", clip, lambda: clip.loss(imgs, toks))
        del clip

        prior = Prior().to(dev)
        enc = torch.randn(B, 33, 64, device=dev)
        temb = F.normalize(torch.randn(B, 256, device=dev), dim=-1)
        x0 = F.normalize(torch.randn(B, 256, device=dev), dim=-1)
        abar = cosine_abar(200, dev)

        def prior_loss():
            t = torch.randint(0, 200, (B,), device=dev)
            ab = abar[t][:, None]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)
            return F.mse_loss(prior(enc, temb, t, xt), x0)
        step_rows(f"train step prior B{B}", prior, prior_loss)
        del prior

        Bd = 64 // div
        unet = UNet().to(dev)
        x0i = torch.randn(Bd, 3, 32, 32, device=dev).clamp(-1, 1)
        dtoks = torch.randint(0, 512, (Bd, 33), device=dev)
        cemb = F.normalize(torch.randn(Bd, 256, device=dev), dim=-1)
        abar_d = cosine_abar(300, dev)

        def dec_loss():
            t = torch.randint(0, 300, (Bd,), device=dev)
            ab = abar_d[t][:, None, None, None]
            eps = torch.randn_like(x0i)
            xt = ab.sqrt() * x0i + (1 - ab).sqrt() * eps
            return F.mse_loss(unet(xt, t, dtoks, cemb), eps)
        step_rows(f"train step decoder B{Bd}", unet, dec_loss)

    if want("demo"):
        demo_rows(dev, reps, warm, report)

    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
