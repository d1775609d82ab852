"""Attention heatmaps you can play with: ipywidgets controls + a matplotlib figure, no JavaScript of ours.

:class:`AttentionExplorer` takes any function that turns a list of tokens into attention weights,
so the same widget shows the untrained toy attention of lesson 05 and a trained GPT's heads later:

    explorer = AttentionExplorer(RandomAttention(n_head=4), ["the cat sat on the mat", ...])
    explorer                      # shows the controls and the heatmap
    explorer.head.value = 2       # the controls are public widgets ...
    explorer.weights              # ... and the weights they select are a (T, T) tensor

The weight function is called as ``compute(tokens, causal=..., scaled=...)`` and returns a tensor of
shape (n_layer, n_head, T, T) (or (n_head, T, T) for one layer). Row i holds how much token i
attends to each token j; every row sums to 1.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

WeightFn = Callable[..., torch.Tensor]


def attention_from_qk(q: torch.Tensor, k: torch.Tensor, causal: bool = True, scaled: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k)) for q, k (..., T, d_k): the weights (..., T, T); rows sum to 1.

    ``causal`` hides the future (position i sees positions <= i); ``scaled`` divides by sqrt(d_k).
    """
    scores = q @ k.transpose(-2, -1)  # (..., T, T)
    if scaled:
        scores = scores / math.sqrt(q.size(-1))
    if causal:
        T = q.size(-2)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    return F.softmax(scores, dim=-1)


class RandomAttention:
    """Untrained multi-head attention over word (or character) tokens, for exploring the mechanics.

    Each distinct token gets a fixed random embedding (seeded by the token's text, so "the" is the
    same vector in every sentence) plus a random position embedding; each head has random W_q and
    W_k. Entries have variance 1, so q.k has variance ``head_size``, the situation the 1/sqrt(d_k)
    scaling is for: turn scaling off and the rows turn nearly one-hot.
    """

    def __init__(self, n_head: int = 4, head_size: int = 16, n_embd: int = 32, max_len: int = 64, seed: int = 0):
        if min(n_head, head_size, n_embd, max_len) <= 0:
            raise ValueError("RandomAttention: n_head, head_size, n_embd and max_len must be positive")
        self.n_head, self.head_size, self.n_embd, self.max_len, self.seed = n_head, head_size, n_embd, max_len, seed
        g = torch.Generator().manual_seed(seed)
        std = 1 / math.sqrt(n_embd)  # keeps q and k at unit variance for unit-variance inputs
        self.W_q = torch.randn(n_head, n_embd, head_size, generator=g) * std
        self.W_k = torch.randn(n_head, n_embd, head_size, generator=g) * std
        self.wpe = torch.randn(max_len, n_embd, generator=g) * 0.5

    def embed(self, tokens: Sequence[str]) -> torch.Tensor:
        """(T, n_embd): the token's own random vector plus its position's."""
        if len(tokens) > self.max_len:
            raise ValueError(f"{len(tokens)} tokens is longer than max_len {self.max_len}; use a shorter sentence")
        rows = []
        for t in tokens:
            g = torch.Generator().manual_seed(zlib.crc32(t.encode("utf-8")) + self.seed)
            rows.append(torch.randn(self.n_embd, generator=g))
        x = torch.stack(rows) if rows else torch.zeros(0, self.n_embd)
        return (x + self.wpe[: len(tokens)]) / math.sqrt(1.25)  # back to unit variance

    def __call__(self, tokens: Sequence[str], causal: bool = True, scaled: bool = True) -> torch.Tensor:
        x = self.embed(tokens)  # (T, C)
        q = torch.einsum("tc,hcd->htd", x, self.W_q)  # (nh, T, hs)
        k = torch.einsum("tc,hcd->htd", x, self.W_k)  # (nh, T, hs)
        return attention_from_qk(q, k, causal, scaled).unsqueeze(0)  # (1, nh, T, T)


@torch.no_grad()
def gpt_attention(model, encode: Callable[[Sequence[str]], list[int]]) -> WeightFn:
    """A weight function for a ``minigpt.model.GPT``: tokens -> (n_layer, n_head, T, T).

    The residual stream flows through the real (causal, scaled) blocks; at each layer the weights
    shown are recomputed from that layer's queries and keys with the mask and the scaling as asked,
    so with both on they equal ``model.attention_weights``.
    """

    @torch.no_grad()
    def compute(tokens: Sequence[str], causal: bool = True, scaled: bool = True) -> torch.Tensor:
        device = next(model.parameters()).device
        idx = torch.tensor([encode(tokens)], dtype=torch.long, device=device)  # (1, T)
        T = idx.size(1)
        model._check_length(T)
        tr = model.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(T, device=device))  # (1, T, C)
        out = []
        for block in tr.h:
            attn = block.attn
            C = x.size(-1)
            hs = C // attn.n_head
            q, k, _ = attn.c_attn(block.ln_1(x)).split(C, dim=2)
            q = q.view(1, T, attn.n_head, hs).transpose(1, 2)  # (1, nh, T, hs)
            k = k.view(1, T, attn.n_head, hs).transpose(1, 2)
            out.append(attention_from_qk(q, k, causal, scaled)[0].float().cpu())  # (nh, T, T)
            x = block(x)
        return torch.stack(out)  # (n_layer, nh, T, T)

    return compute


class AttentionExplorer:
    """Pick a sentence, a layer and a head, toggle the causal mask and the 1/sqrt(d_k) scaling.

    Public controls (ipywidgets): ``sentence``, ``layer``, ``head``, ``causal``, ``scaled``.
    Public results: ``tokens`` (list[str]), ``all_weights`` (n_layer, n_head, T, T) and ``weights``
    (T, T) for the selected layer and head, recomputed whenever a control changes.
    """

    def __init__(self, compute: WeightFn, sentences: Sequence[str], tokenize: Callable[[str], list[str]] = str.split,
                 title: str = "attention weights", causal: bool = True, scaled: bool = True,
                 allow_toggles: bool = True, figsize: tuple[float, float] = (5.5, 4.8)):
        import ipywidgets as W

        sentences = list(sentences)
        if not sentences:
            raise ValueError("AttentionExplorer: give at least one sentence to choose from")
        self.compute, self.tokenize, self.title, self.figsize = compute, tokenize, title, figsize
        self._cache: dict[tuple, torch.Tensor] = {}
        self.sentence = W.Dropdown(options=sentences, value=sentences[0], description="sentence")
        self.causal = W.Checkbox(value=causal, description="causal mask", disabled=not allow_toggles)
        self.scaled = W.Checkbox(value=scaled, description="scale by 1/√d_k", disabled=not allow_toggles)
        first = self._compute()
        n_layer, n_head = first.shape[:2]
        self.layer = W.IntSlider(value=0, min=0, max=n_layer - 1, description="layer", disabled=n_layer == 1)
        self.head = W.IntSlider(value=0, min=0, max=n_head - 1, description="head", disabled=n_head == 1)
        self.info = W.HTML()
        self.output = W.Output()
        for control in (self.sentence, self.layer, self.head, self.causal, self.scaled):
            control.observe(self._on_change, names="value")
        self.widget = W.VBox([W.HBox([self.sentence, self.causal, self.scaled]),
                              W.HBox([self.layer, self.head]), self.info, self.output])
        self._update()

    # --- state -------------------------------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        """The tokens of the selected sentence (the heatmap's row and column labels)."""
        return list(self.tokenize(self.sentence.value))

    def _compute(self) -> torch.Tensor:
        key = (self.sentence.value, bool(self.causal.value), bool(self.scaled.value))
        if key not in self._cache:
            tokens = self.tokens
            w = torch.as_tensor(self.compute(tokens, causal=key[1], scaled=key[2])).detach().float().cpu()
            if w.dim() == 3:
                w = w.unsqueeze(0)  # one layer
            T = len(tokens)
            if w.dim() != 4 or tuple(w.shape[-2:]) != (T, T):
                raise ValueError(
                    f"the weight function returned shape {tuple(w.shape)} for {T} tokens; "
                    f"expected (n_layer, n_head, {T}, {T}) or (n_head, {T}, {T})"
                )
            self._cache[key] = w
        return self._cache[key]

    @property
    def all_weights(self) -> torch.Tensor:
        """(n_layer, n_head, T, T) for the selected sentence, mask and scaling."""
        return self._compute()

    @property
    def weights(self) -> torch.Tensor:
        """(T, T): the selected layer's and head's weights; row i = where token i looks."""
        return self._compute()[self.layer.value, self.head.value]

    def describe(self) -> str:
        """One line about the selected head: how spread out its rows are, against uniform attention."""
        w = self.weights
        T = w.size(-1)
        entropy = -(w * w.clamp_min(1e-12).log()).sum(-1).mean().item()
        visible = torch.arange(1, T + 1) if self.causal.value else torch.full((T,), T)
        uniform = visible.double().log().mean().item()
        return (f"{len(self.tokens)} tokens · mean row entropy {entropy:.2f} nats "
                f"(uniform attention over the visible tokens: {uniform:.2f}; one-hot rows: 0)")

    # --- drawing ----------------------------------------------------------------------------------
    def plot(self, ax=None):
        """Draw the selected heatmap on ``ax`` (a new figure when None); returns the figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=self.figsize)
        else:
            fig = ax.figure
        tokens, w = self.tokens, self.weights.numpy()
        im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(tokens)), labels=tokens, rotation=60, ha="right")
        ax.set_yticks(range(len(tokens)), labels=tokens)
        ax.set_xlabel("key: the token attended to (j)")
        ax.set_ylabel("query: the token looking (i)")
        flags = f"{'causal' if self.causal.value else 'no mask'}, {'scaled' if self.scaled.value else 'unscaled'}"
        where = f"layer {self.layer.value}, head {self.head.value}" if self.layer.max > 0 else f"head {self.head.value}"
        ax.set_title(f"{self.title}: {where} ({flags})")
        fig.colorbar(im, ax=ax, label="attention weight")
        fig.tight_layout()
        return fig

    def _on_change(self, change=None):
        self._update()

    def _update(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.info.value = self.describe()
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.plot()
            display(fig)
            plt.close(fig)  # shown once, inside the widget; not again at the end of the cell

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_gpt(cls, model, tokenizer, sentences: Sequence[str], tokenize: Callable[[str], list[str]] = list,
                 **kwargs) -> AttentionExplorer:
        """An explorer over a ``minigpt.model.GPT``; ``tokenizer.encode`` takes the joined tokens."""
        kwargs.setdefault("title", "GPT attention")
        return cls(gpt_attention(model, lambda toks: tokenizer.encode("".join(toks))), sentences,
                   tokenize=tokenize, **kwargs)
