"""Checks for lesson 12 (limits, measured): training memory by formula, fitting a power law, the
probability of a word under a character model, the tokens a format allows next, and the share of
copied n-grams.

Every check draws fresh inputs (a new seed each call), including inputs where a shortcut and the right
answer differ: repeated n-grams, prefixes that match a format only in part, words that begin longer words.
"""

from __future__ import annotations

import math

import numpy as np
import regex
import torch

from ..i18n import _
from ..model import GPT, GPTConfig
from ..probes import word_logprob
from ..tokenizer import CharTokenizer
from ._core import Check, fresh_generator

__all__ = ["memory_parts", "power_law_fit", "word_prob", "format_allowed", "copied_share"]


def _randint(g, lo, hi) -> int:
    return int(torch.randint(lo, hi, (1,), generator=g))


def memory_parts(fn):
    """``fn(n_params, mixed_precision)``: bytes of weights, gradients and AdamW state, as a dict."""
    c = Check("memory_parts")
    g = fresh_generator()
    for _i in range(3):
        n = _randint(g, 1_000, 10**9)
        for mixed in (False, True):
            ref = {"weights": (2 if mixed else 4) * n, "gradients": (2 if mixed else 4) * n,
                   "optimizer": (12 if mixed else 8) * n}
            got = c.call(fn, n, mixed)
            what = _("for {n:,} parameters in {value}").format(n=n, value=_("mixed precision") if mixed else 'fp32')
            c.that(isinstance(got, dict) and set(ref) <= set(got),
                   _("return a dict with the keys 'weights', 'gradients' and 'optimizer' (got {type})").format(type=type(got).__name__))
            for key in ref:
                value = got[key]
                if value == ref[key]:
                    c.count += 1
                    continue
                if value == 8 * ref[key]:
                    c.fail(_("{what}, {key} is 8 times too large: count bytes, not bits").format(what=what, key=key))
                if key == "optimizer" and mixed and value == 8 * n:
                    c.fail(_("{what}, the optimizer holds more than Adam's two moments: it also keeps an fp32 master "
                             "copy of the weights, which the 16-bit weights are rounded from").format(what=what))
                if key == "optimizer" and value in (4 * n, 6 * n):
                    c.fail(_("{what}, the optimizer state is too small: AdamW keeps two moments per parameter").format(what=what))
                if key in ("weights", "gradients") and mixed and value == 4 * n:
                    c.fail(_("{what}, {key} are 16-bit numbers: 2 bytes each").format(what=what, key=key))
                c.fail(_("{what}, {key} = {value:,} bytes is {value2}").format(what=what, key=key, value=value, value2=_("too high") if value > ref[key] else _("too low")))
    c.done()


def power_law_fit(fn):
    """``fn(n, loss)`` -> ``(a, alpha)`` with loss ~ a * n ** -alpha, fitted by least squares on log-log axes."""
    c = Check("power_law_fit")
    g = fresh_generator()
    for case in range(3):
        k = _randint(g, 5, 9)
        n = np.sort(10 ** (2 + 5 * torch.rand(k, generator=g).double().numpy()))
        a_true = float(2 + 8 * torch.rand(1, generator=g))
        alpha_true = float(0.05 + 0.4 * torch.rand(1, generator=g))
        noise = np.exp(0.03 * torch.randn(k, generator=g).double().numpy()) if case else np.ones(k)
        loss = a_true * n ** -alpha_true * noise
        got = c.call(fn, n.copy(), loss.copy())
        try:
            a, alpha = (float(v) for v in got)
        except (TypeError, ValueError):
            c.fail(_("return two numbers (a, alpha), got {got!r:.60}").format(got=got))
        slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
        ref_a, ref_alpha = math.exp(intercept), -slope
        what = _("for {k} points {value}").format(k=k, value=_("with noise") if case else _("exactly on a power law"))
        if math.isclose(alpha, -ref_alpha, rel_tol=1e-3):
            c.fail(_("{what}, alpha has the wrong sign: the loss falls with n, and the law is a * n ** -alpha").format(what=what))
        if math.isclose(a, intercept, rel_tol=1e-3) and not math.isclose(a, ref_a, rel_tol=1e-3) and \
                math.isclose(alpha, ref_alpha, rel_tol=1e-3):  # only a on the wrong scale, alpha right
            c.fail(_("{what}, a is on the log scale: the fit gives log a, so a is its exponential").format(what=what))
        c.number(alpha, ref_alpha, _("alpha {what}").format(what=what), tol=1e-3 * max(1.0, abs(ref_alpha)))
        c.number(a, ref_a, _("a {what}").format(what=what), tol=1e-3 * ref_a)
    c.done()


def _small_char_gpt(g):
    tok = CharTokenizer(sorted(set("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")))
    torch.manual_seed(_randint(g, 0, 2**31))
    model = GPT(GPTConfig(block_size=32, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.eval(), tok


def word_prob(fn):
    """``fn(model, tok, context, word)``: P(word's characters, then a non-letter | context) for a character model."""
    c = Check("word_prob")
    g = fresh_generator()
    model, tok = _small_char_gpt(g)
    words = [" he", " she", " her", " king", " a"]
    contexts = ["I saw the king, and", "Where is the queen?", "O", "Go to the nurse and tell"]
    for _i in range(4):
        ctx = contexts[_randint(g, 0, len(contexts))]
        word = words[_randint(g, 0, len(words))]
        got = c.call(fn, model, tok, ctx, word)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one probability, got {type}").format(type=type(got).__name__))
        ref = math.exp(float(word_logprob(model, tok, [ctx], [word])[0]))
        if not math.isclose(got, ref, rel_tol=1e-3):
            with torch.no_grad():
                p, chain, text = None, 1.0, ctx
                for ch in word:
                    p = torch.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)
                    chain *= float(p[tok.stoi[ch]])
                    text += ch
            if math.isclose(got, chain, rel_tol=1e-3):
                c.fail(_("for {word!r} after {ctx!r} you give P(the characters) only; the word must also end "
                         "there (a non-letter next), or ' he' would include ' her' and ' hence'").format(word=word, ctx=ctx))
            if 0 <= got <= 1 and got > ref:
                c.fail(_("for {word!r} after {ctx!r} the probability is too high: multiply every character's "
                         "probability, each given the context and the characters before it, then P(a non-letter)").format(word=word, ctx=ctx))
            c.number(got, ref, _("P({word!r} | {ctx!r})").format(word=word, ctx=ctx), tol=1e-3 * ref)
        c.count += 1
    c.done()


FORMATS = [r"[A-Z][a-z]+: [a-z ]+[.!?]\n", r"(yes|no|maybe)[.!]", r"[0-9]{2}:[0-9]{2}", r"[A-Z]+( [A-Z]+)?:\n"]


def _example(pattern, g):
    """A full match of one of the FORMATS, drawn at random."""
    pick = lambda s: s[_randint(g, 0, len(s))]
    up, low, dig = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"
    if pattern == FORMATS[0]:
        return pick(up) + "".join(pick(low) for _i in range(_randint(g, 1, 5))) + ": " + \
            "".join(pick(low + " ") for _i in range(_randint(g, 1, 8))) + pick(".!?") + "\n"
    if pattern == FORMATS[1]:
        return pick(["yes", "no", "maybe"]) + pick(".!")
    if pattern == FORMATS[2]:
        return "".join(pick(dig) for _i in range(2)) + ":" + "".join(pick(dig) for _i in range(2))
    return "".join(pick(up) for _i in range(_randint(g, 1, 5))) + ":\n"


def format_allowed(fn):
    """``fn(prefix, pieces, pattern)``: a boolean list, True where ``prefix + piece`` can still grow into a
    full match of ``pattern``."""
    c = Check("format_allowed")
    g = fresh_generator()
    pieces = list("\n !.:?0123456789") + list("ABCKXYZaeimnosyz") + ["ye", "s.", "ab", "12"]
    # every format with a part of a match (an answer that ignores `pattern` fails one), then two at random
    order = [2, 3] + torch.randperm(len(FORMATS), generator=g).tolist() + [_randint(g, 0, len(FORMATS)) for _i in range(2)]
    for case, k in enumerate(order):
        pattern = FORMATS[k]
        full = _example(pattern, g)
        # the first two prefixes are full matches with nothing more to come: a test that allows text
        # running past a match (regex.match, search) allows every piece there
        prefix = full if case < 2 else full[:_randint(g, 1 if case < 6 else 0, len(full))]
        got = c.call(fn, prefix, list(pieces), pattern)
        got = [bool(x) for x in (got.tolist() if hasattr(got, "tolist") else list(got))]
        c.that(len(got) == len(pieces), _("return one True/False per piece ({n_pieces}), got {n_got}").format(n_pieces=len(pieces), n_got=len(got)))
        ref = [regex.fullmatch(pattern, prefix + p, partial=True) is not None for p in pieces]
        if got != ref:
            i = next(i for i, (a, b) in enumerate(zip(got, ref)) if a != b)
            shortcuts = {  # what a typical mistake answers, and the hint for it
                "started": ([regex.match(pattern, prefix + p) is not None for p in pieces],
                            _("you allow {pieces!r}: the whole text must be (the beginning of) a match, not only start "
                              "with one").format(pieces=pieces[i])),
                "complete": ([regex.fullmatch(pattern, prefix + p) is not None for p in pieces],
                             _("you allow only texts that already match in full; a text that can still grow into a "
                             "match must be allowed too (partial matching)")),
                "runs past": ([regex.match(pattern, prefix + p, partial=True) is not None for p in pieces],
                              _("you allow {pieces!r} after a text that already matches in full: the whole text must be "
                                "(the beginning of) one match, with nothing after it").format(pieces=pieces[i])),
                "alone": ([regex.fullmatch(pattern, p, partial=True) is not None for p in pieces],
                          _("your answer ignores the prefix: test prefix + piece")),
            }
            fits = [hint for answer, hint in shortcuts.values() if answer == got]
            if len(fits) == 1:  # a hint only when the mistake is unambiguous
                c.fail(_("with pattern {pattern!r} and prefix {prefix!r} {fits}").format(pattern=pattern, prefix=prefix, fits=fits[0]))
            c.fail(_("with pattern {pattern!r} and prefix {prefix!r}, piece {pieces!r} should be {value}").format(pattern=pattern, prefix=prefix, pieces=pieces[i], value=_("allowed") if ref[i] else _("refused")))
        c.count += 1
    c.done()


def copied_share(fn):
    """``fn(generated, reference, n)``: the share of the word n-grams of ``generated`` (every occurrence
    counted) that occur somewhere in ``reference``."""
    c = Check("copied_share")
    g = fresh_generator()
    vocab = ["to", "be", "or", "not", "my", "lord", "the", "king"]
    ns = [2, 3, 4, _randint(g, 2, 5)]  # every n: an answer that ignores it cannot pass
    ns = [ns[i] for i in torch.randperm(4, generator=g).tolist()]
    for n in ns:
        reference = [vocab[i] for i in torch.randint(0, len(vocab), (40,), generator=g).tolist()]
        reference = ["to" if w == "or" else w for w in reference]
        reference[20] = "for"
        # "or" + the words after "for": inside the joined reference text ("for not" holds "or not"), yet
        # not an n-gram of its words ("or" is not one of them), so a substring test counts it as copied
        trap = ["or"] + reference[21:20 + n]
        copy = reference[5:5 + n + 2]
        rand = [vocab[i] for i in torch.randint(0, len(vocab), (12,), generator=g).tolist()]
        generated = copy + rand + copy + ["thee"] + copy + ["thee"] + trap  # the copied phrase occurs three times
        got = c.call(fn, list(generated), list(reference), n)
        grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
        have = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
        ref = sum(gr in have for gr in grams) / len(grams)
        if not isinstance(got, (int, float)) or not math.isclose(got, ref, abs_tol=1e-9):
            try:
                got = float(got)
            except (TypeError, ValueError):
                c.fail(_("return one number, got {type}").format(type=type(got).__name__))
            distinct = set(grams)
            if math.isclose(got, sum(gr in have for gr in distinct) / len(distinct), abs_tol=1e-9):
                c.fail(_("with n = {n} you count each distinct n-gram once; count every occurrence: a phrase "
                         "copied three times is three copied n-grams").format(n=n))
            joined = " " + " ".join(reference) + " "
            if math.isclose(got, sum(" ".join(gr) in joined for gr in grams) / len(grams), abs_tol=1e-9):
                c.fail(_("with n = {n} you test text inside the joined reference; compare whole words: 'or not' "
                         "is inside 'for not' but is not one of its word n-grams").format(n=n))
            short = grams[:-1]
            if math.isclose(got, sum(gr in have for gr in short) / len(short), abs_tol=1e-9):
                c.fail(_("with n = {n} you miss the last n-gram: {n_generated} words have {n_generated} - n + 1 "
                         "of them").format(n=n, n_generated=len(generated)))
            c.number(got, ref, _("the copied share with n = {n}").format(n=n), tol=1e-9)
        c.count += 1
    c.done()
