"""Widgets you can play with: ipywidgets controls + a matplotlib figure, no JavaScript of ours.

:class:`Sampler` (lesson 08) shows the next-token distribution under temperature, top-k and top-p
and streams a sample. Attention heatmaps:

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

import html
import math
import zlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .generate import SamplingSettings, next_token_probs, sampling_settings, stream
from .i18n import _
from .tokenizer import Tokenizer

WeightFn = Callable[..., torch.Tensor]
MASKED_GREY = "#d9d9d9"  # heatmap cells the causal mask hides: not a colour of the weight scale


def _widget_figure(figsize):
    """A figure for a widget's Output area, built without pyplot.

    JupyterLab can deliver widget messages on a second kernel thread, and matplotlib's inline backend
    then draws and closes every open pyplot figure, including one this thread is still building
    (seen as blank or half-drawn charts). A ``Figure`` made directly is invisible to pyplot.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _show_figure(fig) -> None:
    """Display ``fig`` as a PNG image: works before pyplot's inline backend has registered its display
    hook (a bare ``Figure`` would otherwise show as ``<Figure size ...>``)."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    display(Image(data=buf.getvalue()))


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

    The weights are the model's own (:meth:`minigpt.model.GPT.attention_weights`): the residual stream
    flows through the real blocks, and each layer's weights come from its queries and keys, with the
    mask and the scaling as asked (both on: what the model uses).
    """

    @torch.no_grad()
    def compute(tokens: Sequence[str], causal: bool = True, scaled: bool = True) -> torch.Tensor:
        device = next(model.parameters()).device
        idx = torch.tensor([encode(tokens)], dtype=torch.long, device=device)  # (1, T)
        weights = model.attention_weights(idx, causal=causal, scaled=scaled)  # n_layer x (1, nh, T, T)
        return torch.stack([w[0].float().cpu() for w in weights])  # (n_layer, nh, T, T)

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
        self.sentence = W.Dropdown(options=sentences, value=sentences[0], description=_("sentence"))
        self.causal = W.Checkbox(value=causal, description=_("causal mask"), disabled=not allow_toggles)
        self.scaled = W.Checkbox(value=scaled, description=_("scale by 1/√d_k"), disabled=not allow_toggles)
        first = self._compute()
        n_layer, n_head = first.shape[:2]
        self.layer = W.IntSlider(value=0, min=0, max=n_layer - 1, description=_("layer"), disabled=n_layer == 1)
        self.head = W.IntSlider(value=0, min=0, max=n_head - 1, description=_("head"), disabled=n_head == 1)
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
        return (_("{n_tokens} tokens · mean row entropy {entropy:.2f} nats (uniform attention over the "
                  "visible tokens: {uniform:.2f}; one-hot rows: 0)").format(n_tokens=len(self.tokens), entropy=entropy, uniform=uniform))

    # --- drawing ----------------------------------------------------------------------------------
    def plot(self, ax=None):
        """Draw the selected heatmap on ``ax`` (a new figure when None); returns the figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=self.figsize)
        else:
            fig = ax.figure
        import numpy as np

        tokens, w = self.tokens, self.weights.numpy()
        if self.causal.value:  # the masked future in grey, so it is never confused with a weight near 0
            w = np.ma.masked_where(np.triu(np.ones(w.shape, dtype=bool), k=1), w)
        im = ax.imshow(w, cmap=plt.get_cmap("viridis").with_extremes(bad=MASKED_GREY), vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(tokens)), labels=tokens, rotation=60, ha="right")
        ax.set_yticks(range(len(tokens)), labels=tokens)
        ax.set_xlabel("key: the token attended to (j)")
        ax.set_ylabel("query: the token looking (i)")
        flags = f"{'causal, grey = masked' if self.causal.value else 'no mask'}, {'scaled' if self.scaled.value else 'unscaled'}"
        where = f"layer {self.layer.value}, head {self.head.value}" if self.layer.max > 0 else f"head {self.head.value}"
        ax.set_title(f"{self.title}: {where} ({flags})")
        fig.colorbar(im, ax=ax, label="attention weight")
        fig.tight_layout()
        return fig

    def _on_change(self, change=None):
        self._update()

    def _update(self):

        self.info.value = self.describe()
        with self.output:
            self.output.clear_output(wait=True)
            fig = _widget_figure(self.figsize)
            self.plot(ax=fig.subplots())
            _show_figure(fig)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_gpt(cls, model, tokenizer: Tokenizer, sentences: Sequence[str], tokenize: Callable[[str], list[str]] = list,
                 **kwargs) -> AttentionExplorer:
        """An explorer over a ``minigpt.model.GPT``; ``tokenizer.encode`` takes the joined tokens."""
        kwargs.setdefault("title", "GPT attention")
        return cls(gpt_attention(model, lambda toks: tokenizer.encode("".join(toks))), sentences,
                   tokenize=tokenize, **kwargs)


def show_token(t: str) -> str:
    """A token as a readable label: a newline is ⏎, a space ␣, other invisible characters their code."""
    special = {"\n": "⏎", " ": "␣", "\t": "⇥"}
    return "".join(special.get(c, c if c.isprintable() else f"U+{ord(c):04X}") for c in t)


class Sampler:
    """An interactive sampler: a prompt, temperature, top-k and top-p controls, the next-token
    distribution after filtering as a bar chart, and a "generate" button that streams a sample.

    Public controls (ipywidgets): ``prompt``, ``temperature``, ``top_k`` (0 = off), ``top_p`` (1 = off),
    ``max_new_tokens``, ``seed``, ``button``. Public results: ``settings()`` the
    :class:`~minigpt.generate.SamplingSettings` the controls select, ``probs`` (V,) the distribution
    the next token is drawn from, ``text`` (the last sample, also shown in ``output``), ``error``
    (why the prompt cannot be used, or ""). The controls start from ``settings`` (default:
    temperature 0.8, nothing else) with any settings given by name replacing its fields; a
    penalty in them has no control: it applies to ``generate``, while ``probs`` and the chart show
    the distribution without it.
    """

    def __init__(self, model, tokenizer: Tokenizer, prompt: str = "ROMEO:\n", *,
                 settings: SamplingSettings | None = None, max_new_tokens: int = 200, seed: int = 1337,
                 n_bars: int = 20, **options):
        import ipywidgets as W

        self.model, self.tokenizer, self.n_bars = model.eval(), tokenizer, n_bars
        start = sampling_settings(SamplingSettings(temperature=0.8) if settings is None else settings, **options)
        self._start = start
        V = tokenizer.vocab_size
        self.prompt = W.Textarea(value=prompt, description=_("prompt"), layout=W.Layout(width="60%", height="4em"))
        self.temperature = W.FloatSlider(value=start.temperature, min=0.0, max=2.0, step=0.05,
                                         description=_("temperature"), readout_format=".2f")
        # a slider cannot say None: top-k 0 and top-p 1 are its "off"
        self.top_k = W.IntSlider(value=start.top_k or 0, min=0, max=V, description=_("top-k (0: off)"))
        self.top_p = W.FloatSlider(value=1.0 if start.top_p is None else start.top_p, min=0.05, max=1.0, step=0.05,
                                   description=_("top-p"), readout_format=".2f")
        self.max_new_tokens = W.IntSlider(value=max_new_tokens, min=1, max=1000, description=_("new tokens"))
        self.seed = W.IntText(value=seed, description=_("seed"))
        self.button = W.Button(description=_("generate"), button_style="primary", icon="play")
        self.info = W.HTML()
        self.chart = W.Output()
        self.output = W.Textarea(value="", description=_("sample"), disabled=True,
                                 layout=W.Layout(width="95%", height="14em"))
        self.text = ""
        self.error = ""
        for control in (self.prompt, self.temperature, self.top_k, self.top_p):
            control.observe(lambda change: self._update(), names="value")
        self.button.on_click(lambda _: self.generate())
        self.widget = W.VBox([self.prompt, W.HBox([self.temperature, self.top_k, self.top_p]),
                              W.HBox([self.max_new_tokens, self.seed, self.button]), self.info, self.chart,
                              self.output])
        self._update()

    # --- state -------------------------------------------------------------------------------------
    def settings(self) -> SamplingSettings:
        """The sampling settings the controls select (top-k 0 and top-p 1 are off: None)."""
        return self._start.replace(temperature=float(self.temperature.value), top_k=int(self.top_k.value) or None,
                                   top_p=float(self.top_p.value))

    def _ids(self) -> list[int] | None:
        if not self.prompt.value:
            self.error = "type a prompt: at least one character"
            return None
        try:
            ids = self.tokenizer.encode(self.prompt.value)
        except ValueError as e:
            self.error = str(e)
            return None
        self.error = ""
        return ids[-self.model.config.block_size:]

    @property
    def probs(self) -> torch.Tensor | None:
        """(V,): the distribution the next token is drawn from with these settings; None for a bad prompt."""
        ids = self._ids()
        if ids is None:
            return None
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits, _loss = self.model(torch.tensor([ids], device=device))
        return next_token_probs(logits[:, -1, :], self.settings())[0].float().cpu()

    def generate(self) -> str:
        """Sample ``max_new_tokens`` tokens after the prompt, streaming them into ``output``; returns the text."""
        if self._ids() is None:
            self.info.value = _("<b>cannot generate:</b> {error}").format(error=html.escape(self.error))
            return ""
        g = torch.Generator().manual_seed(int(self.seed.value))
        self.text = ""
        self.output.value = ""
        for piece in stream(self.model, self.tokenizer, self.prompt.value, int(self.max_new_tokens.value),
                            settings=self.settings(), generator=g):
            self.text += piece
            self.output.value = self.prompt.value + self.text  # the front end redraws as pieces arrive
        return self.text

    # --- drawing ----------------------------------------------------------------------------------
    def plot(self, ax=None):
        """Bar chart of the most likely next tokens after filtering; returns the figure (None for a bad prompt)."""
        import matplotlib.pyplot as plt

        p = self.probs
        if p is None:
            return None
        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 3))
        else:
            fig = ax.figure
        k = min(self.n_bars, p.numel())
        top = torch.topk(p, k)
        labels = [show_token(self.tokenizer.decode([int(i)])) for i in top.indices]
        ax.bar(range(k), top.values.numpy())
        ax.set_xticks(range(k), labels=labels)
        ax.set_ylim(0, 1)
        s = self.settings()
        top_p = "off" if s.top_p is None else f"{s.top_p:g}"
        ax.set_title(f"next token after the prompt: T={s.temperature:g}, top-k={s.top_k or 'off'}, "
                     f"top-p={top_p} ({int((p > 0).sum())} tokens possible)")
        ax.set_xlabel(f"the {k} most likely next tokens")
        ax.set_ylabel("probability")
        fig.tight_layout()
        return fig

    def _update(self):

        p = self.probs
        if p is None:
            self.info.value = _("<b>cannot use this prompt:</b> {error}").format(error=html.escape(self.error))
        else:
            kept = int((p > 0).sum())
            entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
            self.info.value = (_("{kept} of {p_numel} tokens can be drawn · entropy {entropy:.2f} nats · most likely: "
                                 "{token} ({p_max:.0%})").format(kept=kept, p_numel=p.numel(), entropy=entropy,
                                                       token=show_token(self.tokenizer.decode([int(p.argmax())])),
                                                       p_max=p.max().item()))
        with self.chart:
            self.chart.clear_output(wait=True)
            if p is not None:
                fig = _widget_figure((8, 3))
                _show_figure(self.plot(ax=fig.subplots()))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _masked_heatmap(ax, w, tokens, title, query=None, labels=True):
    """Draw (T, T) weights; the masked future is grey, so it is never confused with a weight near 0."""
    import matplotlib.pyplot as plt
    import numpy as np

    T = len(tokens)
    w = np.asarray(w, dtype=float)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    cmap = plt.get_cmap("viridis").with_extremes(bad=MASKED_GREY)
    im = ax.imshow(np.ma.masked_where(future, w), cmap=cmap, vmin=0.0, vmax=1.0)
    if labels:
        shown = [show_token(t) for t in tokens]
        ax.set_xticks(range(T), labels=shown, fontsize=8)
        ax.set_yticks(range(T), labels=shown, fontsize=8)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if query is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((-0.5, query - 0.5), T, 1, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_title(title, fontsize=9 if not labels else 11)
    return im


def plot_attention_grid(weights: torch.Tensor, tokens: Sequence[str], title: str = "every head of every layer",
                        cell: float = 1.9, fig=None):
    """A grid of small heatmaps, one per (layer, head), for weights (n_layer, n_head, T, T); drawn on
    ``fig`` when given (its size is set), else on a new pyplot figure."""
    import matplotlib.pyplot as plt

    L, H = weights.shape[:2]
    if fig is None:
        fig = plt.figure(figsize=(cell * H, cell * L))
    else:
        fig.set_size_inches(cell * H, cell * L)
    axes = fig.subplots(L, H, squeeze=False)
    for layer in range(L):
        for head in range(H):
            ax = axes[layer][head]
            _masked_heatmap(ax, weights[layer, head], tokens, f"layer {layer}, head {head}", labels=False)
            if head == 0:
                ax.set_ylabel("query (looking)", fontsize=8)
            if layer == L - 1:
                ax.set_xlabel("key (looked at)", fontsize=8)
    fig.suptitle(f"{title}: {''.join(show_token(t) for t in tokens)!s} (grey = future, masked)", fontsize=10)
    fig.tight_layout()
    return fig


class GPTAttentionExplorer:
    """Where a trained GPT's heads look, for any prompt you type.

    Public controls (ipywidgets): ``prompt``, ``layer``, ``head``, ``query`` (a token position),
    ``grid`` (show every head at once). Public results: ``tokens``, ``all_weights`` (n_layer, n_head,
    T, T), ``weights`` (T, T) of the selected head, ``query_weights`` (T,) where the selected token
    looks, ``error`` (why the prompt cannot be used, or ""). The prompt is also shown as text, each
    character shaded by how much the selected token looks at it.
    """

    def __init__(self, model, tokenizer: Tokenizer, prompt: str = "ROMEO:\nBut soft, what light", figsize=(6.5, 5.5)):
        import ipywidgets as W

        self.model, self.tokenizer, self.figsize = model.eval(), tokenizer, figsize
        c = model.config
        self.prompt = W.Textarea(value=prompt, description=_("prompt"), continuous_update=False, rows=2,
                                 layout=W.Layout(width="60%"))  # a text area keeps newlines
        self.layer = W.IntSlider(value=0, min=0, max=c.n_layer - 1, description=_("layer"))
        self.head = W.IntSlider(value=0, min=0, max=c.n_head - 1, description=_("head"))
        self.query = W.IntSlider(value=0, min=0, max=0, description=_("query token"))
        self.grid = W.Checkbox(value=False, description=_("all heads"))
        self.text = W.HTML()
        self.info = W.HTML()
        self.output = W.Output()
        self.error = ""
        self._weights = None
        self._compute()
        self.query.max = max(0, len(self.tokens) - 1)
        self.query.value = self.query.max
        self.prompt.observe(self._on_prompt, names="value")
        for control in (self.layer, self.head, self.query, self.grid):
            control.observe(lambda change: self._update(), names="value")
        self.widget = W.VBox([self.prompt, W.HBox([self.layer, self.head, self.grid]), self.query, self.text,
                              self.info, self.output])
        self._update()

    # --- state -------------------------------------------------------------------------------------
    def _compute(self):
        text = self.prompt.value[-self.model.config.block_size:]
        self.error = ""
        self._weights = None
        if not text:
            self.error = "type a prompt: at least one character"
            return
        try:
            ids = self.tokenizer.encode(text)
        except ValueError as e:
            self.error = str(e)
            return
        self._tokens = list(text)
        device = next(self.model.parameters()).device
        w = self.model.attention_weights(torch.tensor([ids], device=device))
        self._weights = torch.stack([a[0] for a in w]).float().cpu()  # (n_layer, n_head, T, T)

    @property
    def tokens(self) -> list[str]:
        """The characters shown (the prompt's last block_size), [] for a prompt that cannot be used."""
        return list(self._tokens) if self._weights is not None else []

    @property
    def all_weights(self) -> torch.Tensor | None:
        return self._weights

    @property
    def weights(self) -> torch.Tensor | None:
        """(T, T): row i holds where token i looks, for the selected layer and head."""
        return None if self._weights is None else self._weights[self.layer.value, self.head.value]

    @property
    def query_weights(self) -> torch.Tensor | None:
        """(T,): where the selected query token looks (zero on the future)."""
        return None if self._weights is None else self.weights[self.query.value]

    def text_html(self) -> str:
        """The prompt as HTML, each character's background as strong as the query token's attention to it."""
        if self._weights is None:
            return ""
        q = self.query.value
        spans = []
        for j, (t, a) in enumerate(zip(self.tokens, self.query_weights.tolist())):
            style = f"background: rgba(255, 120, 0, {a:.3f}); padding: 1px 0;"
            if j == q:
                style += " outline: 2px solid red;"
            spans.append(f'<span style="{style}" title="{a:.3f}">{html.escape(show_token(t))}</span>')
        return '<div style="font-family: monospace; font-size: 15px; line-height: 1.8;">' + "".join(spans) + "</div>"

    # --- drawing ----------------------------------------------------------------------------------
    def plot(self, fig=None):
        """The selected head's heatmap (query row outlined in red), or the grid of every head; drawn
        on ``fig`` when given, else on a new pyplot figure."""
        import matplotlib.pyplot as plt

        if self._weights is None:
            return None
        if self.grid.value:
            return plot_attention_grid(self._weights, self.tokens, fig=fig)
        if fig is None:
            fig = plt.figure(figsize=self.figsize)
        ax = fig.subplots()
        im = _masked_heatmap(ax, self.weights, self.tokens,
                             f"layer {self.layer.value}, head {self.head.value} (grey: future, masked)",
                             query=self.query.value)
        ax.set_xlabel("key: the token looked at")
        ax.set_ylabel("query: the token looking")
        fig.colorbar(im, ax=ax, label="attention weight")
        fig.tight_layout()
        return fig

    def _on_prompt(self, change=None):
        self._compute()
        n = len(self.tokens)
        self.query.max = max(0, n - 1)
        self.query.value = max(0, n - 1)
        self._update()

    def _update(self):

        if self._weights is None:
            self.info.value = _("<b>cannot use this prompt:</b> {error}").format(error=html.escape(self.error))
            self.text.value = ""
        else:
            q = self.query.value
            w = self.query_weights
            top = int(w.argmax())
            self.info.value = (_("token {q} ({token}) looks most at token {top} ({top_token}, weight {w:.2f}), {back} "
                                 "position(s) back").format(q=q, token=html.escape(show_token(self.tokens[q])), top=top,
                                                            top_token=html.escape(show_token(self.tokens[top])),
                                                            w=w[top], back=q - top))
            self.text.value = self.text_html()
        with self.output:
            self.output.clear_output(wait=True)
            if self._weights is not None:
                _show_figure(self.plot(fig=_widget_figure(self.figsize)))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
