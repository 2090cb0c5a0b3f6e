"""A Llama-style decoder layer stack with a KV cache, run for one serving step (random weights).

One step holds a decode group (`decodes` sequences, each over `context` cached tokens) and/or one prefill
chunk (`chunk` tokens after `prefix` cached ones), as a continuous-batching engine runs them: the linear
layers see all the step's tokens at once, attention runs per group. A layer: RMSNorm, fused QKV, rotary
embedding, the new K/V written into the cache, attention (GQA; causal, aligned to the end of the cache for
a chunk), O projection, residual, RMSNorm, fused gate/up, SiLU-and-multiply, down projection, residual.
The LM head (final norm and the vocabulary GEMM of the tokens that sample) is timed apart, because the
profiler times a few layers and scales them to the model's depth.

Simplifications (what the profile measures instead of a production engine): PyTorch's SDPA kernels
(flash/memory-efficient on a GPU) instead of a paged-attention kernel; one KV cache shared by the timed
layers (each layer still reads all of it from memory: at these sizes it is far larger than the L2); no
embedding lookup or sampling. On a GPU the profiler replays each step from a CUDA graph
(backend.graphed), as serving engines do, so Python's kernel launches are not timed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluators.serving.gpu import ModelShape

TINY = ModelShape("tiny", layers=4, d_model=128, heads=4, kv_heads=2, head_dim=32, ffn=384, vocab=2048,
                  default_tp=1)


@dataclass(frozen=True)
class StepShape:
    chunk: int = 0     # prefill chunk tokens
    prefix: int = 0    # cached tokens before the chunk
    decodes: int = 0   # decoding sequences
    context: int = 0   # cached tokens of each decoding sequence

    @property
    def kind(self) -> str:
        return "mixed" if self.chunk and self.decodes else "prefill" if self.chunk else "decode"

    def features(self) -> dict[str, int]:
        """The serving simulator's step features (evaluators/serving/gpu.py, engine.py), the chunk
        taken to be a prompt's last (it samples its first token)."""
        c, p, m, s = self.chunk, self.prefix, self.decodes, self.context
        return {"tokens": c + m, "sampled": m + (1 if c else 0),
                "pairs": (c * p + c * (c + 1) // 2) + m * (s + 1), "kv_read": (p if c else 0) + m * s}

    def label(self) -> str:
        parts = ([f"chunk{self.chunk}+{self.prefix}"] if self.chunk else []) + \
            ([f"decode{self.decodes}x{self.context}"] if self.decodes else [])
        return "/".join(parts)


class LayerStack:
    """`layers` decoder layers of `shape` on a backend (evaluators/gpu/backend.py), plus the LM head."""

    def __init__(self, backend: Any, shape: ModelShape, layers: int) -> None:
        self.b, self.shape, self.n = backend, shape, layers
        t, s = backend.torch, shape
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        scale = s.d_model ** -0.5
        self.w = [dict(qkv=backend.randn(s.d_model, q + 2 * kv, scale=scale),
                       o=backend.randn(q, s.d_model, scale=q ** -0.5),
                       gate_up=backend.randn(s.d_model, 2 * s.ffn, scale=scale),
                       down=backend.randn(s.ffn, s.d_model, scale=s.ffn ** -0.5),
                       norm1=t.ones(s.d_model, device=backend.device, dtype=backend.dtype),
                       norm2=t.ones(s.d_model, device=backend.device, dtype=backend.dtype))
                  for _ in range(layers)]
        self.final_norm = t.ones(s.d_model, device=backend.device, dtype=backend.dtype)
        self.lm_head = backend.randn(s.d_model, s.vocab, scale=scale)
        self.expand_kv = False   # set when the SDPA kernels refuse grouped K/V (older torch)

    def prepare(self, step: StepShape) -> "PreparedStep":
        """Inputs and caches of one step (allocated here, outside any timed region)."""
        s, b = self.shape, self.b
        x = b.randn(step.chunk + step.decodes, s.d_model)
        rope = b.randn(step.chunk + step.decodes, s.head_dim)
        cache_p = cache_d = None
        if step.chunk:
            cache_p = [b.randn(1, s.kv_heads, step.prefix + step.chunk, s.head_dim) for _ in range(2)]
        if step.decodes:
            cache_d = [b.randn(step.decodes, s.kv_heads, step.context + 1, s.head_dim) for _ in range(2)]
        sampled = step.features()["sampled"]
        return PreparedStep(step, x, rope.cos(), rope.sin(), cache_p, cache_d, b.randn(sampled, s.d_model))

    def run_layers(self, p: "PreparedStep") -> Any:
        x = p.x
        for w in self.w:
            x = self._layer(x, w, p)
        return x

    def run_head(self, p: "PreparedStep") -> Any:
        F = self.b.torch.nn.functional
        h = F.rms_norm(p.last_hidden, (self.shape.d_model,), self.final_norm)
        return (h @ self.lm_head).float()

    def _layer(self, x: Any, w: dict, p: "PreparedStep") -> Any:
        t, s = self.b.torch, self.shape
        F = t.nn.functional
        q_dim, kv_dim = s.heads * s.head_dim, s.kv_heads * s.head_dim
        h = F.rms_norm(x, (s.d_model,), w["norm1"])
        q, k, v = (h @ w["qkv"]).split([q_dim, kv_dim, kv_dim], dim=-1)
        n = x.shape[0]
        q = _rotate(t, q.view(n, s.heads, s.head_dim), p.cos, p.sin)
        k = _rotate(t, k.view(n, s.kv_heads, s.head_dim), p.cos, p.sin)
        v = v.view(n, s.kv_heads, s.head_dim)
        out = []
        c, m = p.step.chunk, p.step.decodes
        if c:
            kc, vc = p.cache_p
            kc[0, :, p.step.prefix:] = k[:c].transpose(0, 1)
            vc[0, :, p.step.prefix:] = v[:c].transpose(0, 1)
            out.append(self._attend(q[:c].transpose(0, 1)[None], kc, vc, causal=True)[0].transpose(0, 1))
        if m:
            kd, vd = p.cache_d
            kd[:, :, p.step.context] = k[c:]
            vd[:, :, p.step.context] = v[c:]
            out.append(self._attend(q[c:, :, None], kd, vd, causal=False)[:, :, 0])
        attn = out[0] if len(out) == 1 else t.cat(out)
        x = x + attn.reshape(n, q_dim) @ w["o"]
        h = F.rms_norm(x, (s.d_model,), w["norm2"])
        gate, up = (h @ w["gate_up"]).chunk(2, dim=-1)
        return x + (F.silu(gate) * up) @ w["down"]

    def _attend(self, q: Any, k: Any, v: Any, causal: bool) -> Any:
        t = self.b.torch
        F = t.nn.functional
        mask = None
        if causal:
            from torch.nn.attention.bias import causal_lower_right
            mask = causal_lower_right(q.shape[2], k.shape[2])   # the chunk's queries sit at the cache's end
        if not self.expand_kv:
            try:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
            except (RuntimeError, TypeError):
                self.expand_kv = True
        group = self.shape.heads // self.shape.kv_heads
        return F.scaled_dot_product_attention(q, k.repeat_interleave(group, dim=1),
                                              v.repeat_interleave(group, dim=1), attn_mask=mask)


@dataclass
class PreparedStep:
    step: StepShape
    x: Any
    cos: Any
    sin: Any
    cache_p: list | None
    cache_d: list | None
    last_hidden: Any


def _rotate(t: Any, x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding (rotate-half form) with per-token angles: [n, heads, dim] * [n, 1, dim]."""
    half = x.shape[-1] // 2
    rotated = t.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]
