"""Checks for lesson 08 (generation and sampling): top-p filtering, a repetition penalty, one
cached attention step, a diversity measure, and choosing a temperature by held-out NLL.

Every check draws fresh inputs each time it runs (a new seed per call), including inputs where a
common shortcut gives a different answer from the right one, so a hard-coded answer cannot pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..generate import repetition_penalty as _reference_penalty
from ..generate import top_p_filter as _reference_top_p_filter
from ..i18n import _
from ._core import Check, fresh_generator

__all__ = ["top_p_filter", "repetition_penalty", "cached_attention_step", "distinct_n", "best_temperature"]


def _kept(logits: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(logits) > float("-inf")


def _ref_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    return _reference_top_p_filter(logits, p)


def _kept_below_p(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The off-by-one mistake: keep a token only while the running mass *including* it stays <= p."""
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    keep_sorted = sorted_p.cumsum(-1) <= p
    return keep_sorted.scatter(-1, order, keep_sorted)


def top_p_filter(fn):
    """``fn(logits, p)`` for logits (B, V): the smallest set of most likely tokens with mass >= p kept,
    every other logit set to -inf, the kept logits unchanged."""
    c = Check("top_p_filter")
    g = fresh_generator()
    cases = []
    for _i in range(4):
        B, V = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(5, 40, (1,), generator=g))
        logits = torch.randn(B, V, generator=g) * 2
        logits = logits[:, torch.randperm(V, generator=g)]  # the most likely tokens are not the first ids
        p = float(torch.empty(1).uniform_(0.2, 0.95, generator=g))
        cases.append((logits, p, _("random logits of shape {value} with p={p:.3f}").format(value=(B, V), p=p)))
    # rows that need different numbers of tokens (a peaked one, a flat one, a random one): a filter that
    # takes one row's cut-off for all, or pools the rows, keeps the wrong tokens
    V = int(torch.randint(8, 20, (1,), generator=g))
    peaked = torch.randn(V, generator=g) * 0.3
    peaked[int(torch.randint(0, V, (1,), generator=g))] += 6
    rows = torch.stack([peaked, torch.randn(V, generator=g) * 0.1, torch.randn(V, generator=g) * 2])
    rows = rows[torch.randperm(3, generator=g)]
    p_rows = float(torch.empty(1).uniform_(0.5, 0.9, generator=g))
    cases.insert(0, (rows, p_rows, _("three rows of different shapes (one peaked, one flat) with p={p_rows:.3f}").format(p_rows=p_rows)))
    # a distribution where the boundary token matters: 0.5, 0.3, 0.2 (shuffled) with p = 0.7
    probs = torch.tensor([0.2, 0.5, 0.3])
    cases.append((probs.log().unsqueeze(0), 0.7, _("probabilities [0.2, 0.5, 0.3] with p=0.7")))
    cases.append((torch.randn(2, 10, generator=g), 1.0, _("p=1.0 (every token must stay)")))
    cases.append((torch.tensor([[0.0, 4.0, 1.0, 2.0]]), 1e-3, _("a tiny p (only the most likely token stays)")))
    for logits, p, what in cases:
        got = c.call(fn, logits.clone(), p)
        ref = _ref_top_p(logits, p)
        c.shape(got, tuple(logits.shape), _("the filtered logits"))
        got = torch.as_tensor(got).detach()
        keep_got, keep_ref = _kept(got), _kept(ref)
        if not torch.equal(keep_got, keep_ref):
            n_got = int(keep_got.sum())
            sp = F.softmax(logits.double(), -1)
            if torch.equal(keep_got, _kept_below_p(sp, p)):
                c.fail(_("for {what} you keep {n_got} tokens, too few: also keep the token whose probability "
                         "makes the kept mass reach p").format(what=what, n_got=n_got))
            mass = float((sp * keep_got).sum(-1).min())
            if mass < p - 1e-9:
                c.fail(_("for {what} the kept tokens hold only {mass:.3f} of the probability; they must reach p").format(what=what, mass=mass))
            c.fail(_("for {what} you keep {n_got} tokens; the smallest set of the most likely tokens whose "
                     "probability reaches p is different. Sort by probability, largest first").format(what=what, n_got=n_got))
        c.count += 1
        c.that(bool(torch.allclose(got[keep_ref], logits[keep_ref])),
               _("for {what} the kept logits changed; leave them as they are and set only the others to "
                 "-inf").format(what=what))
    c.done()


def repetition_penalty(fn):
    """``fn(logits, context, penalty)``: logits (B, V), context (B, T) ids; every token that occurs in
    its row's context is penalised once: positive logits divided by ``penalty``, negative multiplied."""
    c = Check("repetition_penalty")
    g = fresh_generator()
    for _i in range(4):
        B, V, T = 2, int(torch.randint(6, 20, (1,), generator=g)), 6
        logits = torch.randn(B, V, generator=g) * 3
        context = torch.randint(0, V // 2, (B, T), generator=g)  # repeats are likely
        context[:, 0] = context[:, 1]  # at least one token occurs twice
        logits[0, context[0, 0]] = -abs(logits[0, context[0, 0]]) - 0.5  # a seen token with a negative logit
        penalty = float(torch.empty(1).uniform_(1.2, 2.5, generator=g))
        counts = torch.zeros(B, V).scatter_add_(1, context, torch.ones(B, T))
        ref = _reference_penalty(logits, counts, penalty)
        got = c.call(fn, logits.clone(), context.clone(), penalty)
        c.shape(got, (B, V), _("the penalised logits"))
        got = torch.as_tensor(got).detach().double()
        if not torch.allclose(got, ref.double(), atol=1e-5):
            seen = counts > 0
            if torch.allclose(got, torch.where(seen, logits / penalty, logits).double(), atol=1e-5):
                c.fail(_("a negative logit divided by the penalty moves *up*, making the token more likely; "
                       "multiply negative logits by the penalty instead"))
            twice = torch.where(logits > 0, logits / penalty ** counts, logits * penalty ** counts)
            if torch.allclose(got, twice.double(), atol=1e-5):
                c.fail(_("a token that occurs twice was penalised twice; penalise each seen token once"))
            if torch.allclose(got[~seen], logits[~seen].double(), atol=1e-5):
                c.fail(_("the tokens that occur in the context are not penalised as expected; "
                       "check which of them you change and how"))
            c.fail(_("tokens that never occur in the context changed; only the seen ones get the penalty"))
        c.count += 1
    c.done()


def cached_attention_step(fn):
    """``fn(q, k_new, v_new, k_cache, v_cache)``: one new token's attention output (B, nh, 1, hs),
    and the caches with its key and value appended: (y, k_cache, v_cache)."""
    c = Check("cached_attention_step")
    g = fresh_generator()
    for S in (int(torch.randint(2, 9, (1,), generator=g)), 0):
        B, nh, hs = 2, 3, 8
        q, k, v = (torch.randn(B, nh, S + 1, hs, generator=g) for _i in range(3))
        full = F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, :, -1:]  # the last position
        out = c.call(fn, q[:, :, -1:].clone(), k[:, :, -1:].clone(), v[:, :, -1:].clone(),
                     k[:, :, :S].clone(), v[:, :, :S].clone())
        c.that(isinstance(out, (tuple, list)) and len(out) == 3,
               _("return three things, (y, k_cache, v_cache); got {type}").format(type=type(out).__name__))
        y, kc, vc = (torch.as_tensor(t).detach() for t in out)
        c.shape(kc, (B, nh, S + 1, hs), _("the new k_cache (the {S} cached keys and the new one)").format(S=S))
        c.shape(vc, (B, nh, S + 1, hs), _("the new v_cache"))
        c.that(torch.allclose(kc, k) and torch.allclose(vc, v),
               _("append the new key and value *after* the cached ones, along the time dimension (dim=2)"))
        c.shape(y, (B, nh, 1, hs), _("y"))
        if S > 0 and not torch.allclose(y, full, atol=1e-5):
            past_only = F.scaled_dot_product_attention(q[:, :, -1:], k[:, :, :S], v[:, :, :S])
            if torch.allclose(y, past_only, atol=1e-5):
                c.fail(_("the new token must attend to itself too: use the caches *after* appending"))
            if torch.allclose(y, v[:, :, :1], atol=1e-5):
                c.fail(_("the new token only sees position 0: a causal mask built for a square (T, T) score "
                       "matrix is wrong for one query; the newest token may see every cached position"))
            unscaled = F.scaled_dot_product_attention(q[:, :, -1:], k, v, scale=1.0)
            if torch.allclose(y, unscaled, atol=1e-5):
                c.fail(_("divide the scores by sqrt(head size) as in lesson 05"))
            c.fail(_("y differs from full causal attention at the last position"))
        if S == 0:
            c.that(torch.allclose(y, v[:, :, -1:], atol=1e-5),
                   _("with an empty cache the only position is the new token, so y must be its value"))
        c.count += 1
    c.done()


def _ref_distinct(text: str, n: int) -> float:
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(fn):
    """``fn(text, n)``: the share of the text's character n-grams that are distinct (0 when it has none)."""
    c = Check("distinct_n")
    g = fresh_generator()
    alphabet = "ab c"
    texts = ["".join(alphabet[int(i)] for i in torch.randint(0, len(alphabet), (int(L),), generator=g))
             for L in torch.randint(8, 40, (3,), generator=g)]
    texts += ["abababab", "aaaa", "ab"]
    for text in texts:
        for n in (1, 2, 3):
            got = c.call(fn, text, n)
            try:
                got = float(got)
            except (TypeError, ValueError):
                c.fail(_("return one number, got {type}").format(type=type(got).__name__))
            ref = _ref_distinct(text, n)
            grams = [text[i:i + n] for i in range(len(text) - n + 1)]
            if grams and math.isclose(got, len(set(grams)), abs_tol=1e-9) and ref != len(set(grams)):
                c.fail(_("for {text!r} and n={n} you return the number of distinct n-grams; divide by how many "
                         "n-grams there are in all").format(text=text, n=n))
            if grams and math.isclose(got, len(set(grams)) / len(text), abs_tol=1e-9) and \
                    not math.isclose(ref, got, abs_tol=1e-9):
                c.fail(_("for {text!r} and n={n}: a text of L characters has L - n + 1 n-grams, not L").format(text=text, n=n))
            c.number(got, ref, _("distinct_n({text!r}, {n})").format(text=text, n=n), tol=1e-9)
    c.done()


def _nll(logits, targets, t):
    return float(F.cross_entropy(logits.double() / t, targets))


def best_temperature(fn):
    """``fn(logits, targets, temperatures)``: the temperature of the list whose softmax(logits / T)
    gives ``targets`` the lowest mean negative log-likelihood."""
    c = Check("best_temperature")
    g = fresh_generator()
    for true_t in (0.5, 2.0, float(torch.empty(1).uniform_(0.7, 1.4, generator=g))):
        N, V = 3000, 12
        base = torch.randn(N, V, generator=g) * 2
        targets = torch.multinomial(F.softmax(base / true_t, -1), 1, generator=g).squeeze(1)
        temps = [round(0.25 * i, 2) for i in range(1, 13)]  # 0.25 .. 3.0
        perm = torch.randperm(len(temps), generator=g).tolist()
        temps = [temps[i] for i in perm]  # not sorted: the best one is not at a fixed place
        nll = {t: _nll(base, targets, t) for t in temps}
        best = temps.index(min(temps, key=nll.get))
        if best in (0, len(temps) - 1):  # nor first or last: "the first one" must never pass by luck
            middle = 1 + int(torch.randint(0, len(temps) - 2, (1,), generator=g))
            temps[best], temps[middle] = temps[middle], temps[best]
        got = c.call(fn, base.clone(), targets.clone(), list(temps))
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one temperature (a number from the list), got {type}").format(type=type(got).__name__))
        ref = min(temps, key=nll.get)
        c.that(any(math.isclose(got, t) for t in temps), _("return one of the temperatures you were given, got {got}").format(got=got))
        if math.isclose(got, max(temps, key=nll.get)):
            c.fail(_("you picked the temperature with the *highest* NLL; the best one has the lowest"))
        if not math.isclose(got, ref):
            c.fail(_("T={got:g} gives a mean NLL of {nll:.4f}; another temperature of the list gives less. "
                     "Score every temperature on the targets").format(got=got, nll=nll[min(temps, key=lambda t: abs(t - got))]))
        c.count += 1
    c.done()
