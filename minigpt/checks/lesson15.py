"""Checks for lesson 15 (from language model to assistant): the shifted loss mask, the safe
calculator, the DPO loss and the seed rule that decides an experiment.

Every check draws fresh inputs: conversations with several assistant turns (so a mask that is off by
one at a turn boundary shows), expressions that ``eval`` would happily run, and preference batches
where leaving out beta or the reference model changes the value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..i18n import N_, _
from ._core import Check, fresh_generator

__all__ = ["sft_targets", "safe_calc", "dpo_loss", "seed_verdict"]


def _randint(g, lo, hi) -> int:
    return int(torch.randint(lo, hi, (1,), generator=g))


def _conversation(g):
    """Ids and mask of a random conversation: 2-3 user/assistant exchanges, mask 1 on assistant tokens."""
    ids, mask = [], []
    for _i in range(_randint(g, 2, 4)):
        for trained in (0, 1):
            n = _randint(g, 1, 6)
            ids += [100 + trained] + torch.randint(0, 90, (n,), generator=g).tolist() + [102]  # header, text, end
            mask += [0] + [trained] * (n + 1)
    return ids, mask


def sft_targets(fn):
    """``fn(ids, mask)`` -> targets (len(ids) - 1): ``ids[i + 1]`` where ``mask[i + 1]`` is 1, else -1."""
    c = Check("sft_targets")
    g = fresh_generator()
    for _i in range(5):
        ids, mask = _conversation(g)
        ref = [ids[i + 1] if mask[i + 1] else -1 for i in range(len(ids) - 1)]
        got = c.call(fn, list(ids), list(mask))
        got = [int(x) for x in (got.tolist() if hasattr(got, "tolist") else got)]
        c.that(len(got) == len(ref), _("return one target per input position: {n_ref} for {n_ids} ids (the last token predicts "
                                       "nothing), got {n_got}").format(n_ref=len(ref), n_ids=len(ids), n_got=len(got)))
        if got == ref:
            c.count += 1
            continue
        if got == [ids[i + 1] if mask[i] else -1 for i in range(len(ids) - 1)]:
            c.fail(_("the mask is off by one: target i is token i + 1, so whether it is trained depends on "
                   "mask[i + 1], not mask[i]"))
        if got == [ids[i] if mask[i] else -1 for i in range(len(ids) - 1)]:
            c.fail(_("the targets are not shifted: position i must predict the NEXT token, ids[i + 1]"))
        if got == ids[1:]:
            c.fail(_("every token is a target: the user's turns and the headers must be -1 (ignored)"))
        if all(t == -1 for t in got):
            c.fail(_("every target is -1: the assistant's tokens must keep their ids"))
        bad = next(i for i, (a, b) in enumerate(zip(got, ref)) if a != b)
        c.fail(_("target {bad} is {got}; look at mask[{value}] and ids[{value}]").format(bad=bad, got=got[bad], value=bad + 1))
    c.done()


# (expression, value) pairs an honest evaluator computes; the refused ones are harmless under eval
_ALLOWED = [("{a}+{b}", lambda a, b: a + b), ("{a}-{b}*2", lambda a, b: a - b * 2), ("-{a}//{b}", lambda a, b: -a // b),
            ("{a}%{b}", lambda a, b: a % b), ("({a}+{b})**2", lambda a, b: (a + b) ** 2), ("{a}/{b}", lambda a, b: a / b)]
_REFUSED = [("abs(-{a})", N_("a function call")), ("({a}).real", N_("an attribute")), ("x + {a}", N_("a name")),
            ("__import__('math').pi", N_("a call to __import__")), ("2**{big}", N_("a huge power")),
            ("[{a}][0]", N_("a list")), ("'{a}' * 2", N_("a string")), ("{a} < {b}", N_("a comparison"))]


def safe_calc(fn):
    """``fn(expression)`` computes numbers with + - * / // % ** and unary minus, and raises ValueError
    (or a subclass) for names, attributes, calls, huge powers and everything else."""
    c = Check("safe_calc")
    g = fresh_generator()
    for template, value in _ALLOWED:
        a, b = _randint(g, 1, 300), _randint(g, 2, 40)
        a += a % b == 0  # b does not divide a, so / and // differ
        expr = template.format(a=a, b=b)
        got = c.call(fn, expr)
        c.that(isinstance(got, (int, float)) and not isinstance(got, bool)
               and math.isclose(got, value(a, b), rel_tol=1e-9), _("{expr!r} should be a number equal to Python's arithmetic, got {got!r}").format(expr=expr, got=got))
    for template, what in _REFUSED:
        expr = template.format(a=_randint(g, 1, 300), b=_randint(g, 1, 40), big=_randint(g, 10_000, 20_000))
        try:
            got = fn(expr)
        except NotImplementedError:
            c.fail(_("not implemented yet: replace `raise NotImplementedError()` with your code"))
        except ValueError:
            c.count += 1
            continue
        except Exception as e:  # e.g. NameError from eval
            c.fail(_("{expr!r} ({what}) raised {type}; refuse it yourself with a ValueError that says why "
                     "(did the expression reach eval?)").format(expr=expr, what=_(what), type=type(e).__name__))
        shown = _("a {bits}-bit number").format(bits=got.bit_length()) if isinstance(got, int) and got.bit_length() > 64 else repr(got)[:20]
        c.fail(_("{expr!r} ({what}) was computed ({shown}); only numbers and arithmetic operators may pass").format(expr=expr, what=_(what), shown=shown))
    c.done()


def dpo_loss(fn):
    """``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)`` -> the mean DPO loss (scalar)."""
    c = Check("dpo_loss")
    g = fresh_generator()
    for _i in range(4):
        B = _randint(g, 3, 9)
        pc, pr, rc, rr = (-20 * torch.rand(B, generator=g, dtype=torch.float64) - 1 for _i in range(4))
        beta = float(torch.empty(1, dtype=torch.float64).uniform_(0.05, 0.8, generator=g))
        margin = beta * ((pc - rc) - (pr - rr))
        ref = -F.logsigmoid(margin).mean()
        got = c.call(fn, pc.clone(), pr.clone(), rc.clone(), rr.clone(), beta)
        c.that(torch.is_tensor(got) and got.numel() == 1, _("return the loss as one tensor number, got {got!r}").format(got=got))
        got = got.double().reshape(())
        if torch.isclose(got, ref, rtol=1e-6, atol=1e-8):
            c.count += 1
            continue
        wrong = {
            _("beta is missing: the rewards are beta times the log-ratios"): -F.logsigmoid(margin / beta).mean(),
            _("the sign is flipped: the chosen reply's reward comes first in the margin"): -F.logsigmoid(-margin).mean(),
            _("the reference model is missing: rewards are log-ratios policy minus reference"):
                -F.logsigmoid(beta * (pc - pr)).mean(),
            _("return the mean over the batch, not the sum"): -F.logsigmoid(margin).sum(),
            _("the loss is -log sigmoid(margin), not -sigmoid(margin)"): -torch.sigmoid(margin).mean(),
        }
        for hint, value in wrong.items():
            if torch.isclose(got, value, rtol=1e-6, atol=1e-8):
                c.fail(hint)
        c.fail(_("the loss {got:.4f} is {value}; loss = -log sigmoid(r_chosen - r_rejected), averaged "
                 "over the batch").format(got=got.item(), value=_("too high") if got > ref else _("too low")))
    c.done()


def _arm(g, center: float, spread: float, n: int) -> list[float]:
    """``n`` seeds' scores whose mean is ``center`` and whose range (max - min) is exactly ``spread``."""
    inner = (torch.rand((n - 2) // 2, generator=g, dtype=torch.float64) * spread / 2).tolist()
    values = [center - spread / 2, center + spread / 2] + [center + d for d in inner] + [center - d for d in inner]
    values += [center] * (n - len(values))
    order = torch.randperm(n, generator=g).tolist()
    return [values[i] for i in order]


def _verdict(a, b) -> str:
    diff = sum(a) / len(a) - sum(b) / len(b)
    if abs(diff) > max(max(a) - min(a), max(b) - min(b)):
        return "a" if diff > 0 else "b"
    return "noise"


def seed_verdict(fn):
    """``fn(a, b)`` -> "a", "b" or "noise": ``a`` and ``b`` are one score per seed for two arms; the arm
    with the higher mean wins only when the means differ by more than the larger of the two ranges
    (max - min over seeds), else the difference is "noise"."""
    c = Check("seed_verdict")
    g = fresh_generator()
    u = lambda lo, hi: float(torch.empty(1, dtype=torch.float64).uniform_(lo, hi, generator=g))
    cases = []
    for kind in ["a", "b", "noise", "noise-one-wide", "a-close", "noise-std", "b"]:
        n = _randint(g, 3, 6)
        s_a, s_b = u(0.02, 0.08), u(0.02, 0.08)
        mid = u(0.3, 0.6)
        if kind in ("a", "b"):
            gap = max(s_a, s_b) * u(2.0, 4.0)
        elif kind == "a-close":  # just above the larger range
            gap = max(s_a, s_b) * u(1.2, 1.5)
        elif kind == "noise-one-wide":  # a's range alone would call it; b's wider range makes it noise
            s_a, s_b = u(0.01, 0.02), u(0.1, 0.15)
            gap = u(0.4, 0.7) * s_b
        else:  # inside the range, though several standard deviations apart for "noise-std"
            gap = max(s_a, s_b) * (u(0.75, 0.9) if kind == "noise-std" else u(0.2, 0.6))
        sign = -1 if kind == "b" or (kind.startswith("noise") and u(0, 1) < 0.5) else 1
        a = _arm(g, mid + sign * gap / 2, s_a, n)
        b = _arm(g, mid - sign * gap / 2, s_b, n)
        cases.append((a, b))
    for a, b in cases:
        ref = _verdict(a, b)
        got = c.call(fn, list(a), list(b))
        c.that(got in ("a", "b", "noise"), _('return "a", "b" or "noise", got {got!r}').format(got=got))
        if got == ref:
            continue
        mean_gap = abs(sum(a) / len(a) - sum(b) / len(b))
        if ref == "noise":
            c.fail(_("you called a winner where the means differ by {gap:.3f} but one arm's seeds spread over "
                     "{spread:.3f}: compare the gap with the LARGER of the two ranges").format(
                         gap=mean_gap, spread=max(max(a) - min(a), max(b) - min(b))))
        if got == "noise":
            c.fail(_("you called noise where the means differ by {gap:.3f}, more than either arm's range "
                     "(max - min over seeds)").format(gap=mean_gap))
        c.fail(_("the winner is the arm with the HIGHER mean score; check the direction of your comparison"))
    c.done()
