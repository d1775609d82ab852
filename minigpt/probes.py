"""Probes: what associations a character-level model learned, and where they came from.

A probe asks the model for the probability of a word after a context. For a character model a word
is several tokens, and " he" is also the start of " her" and " hence", so the probability of the
*word* is the product of its characters' probabilities times the probability that a non-letter comes
next (the word ends there):

    P(" he" | ctx) = P(" " | ctx) P("h" | ctx + " ") P("e" | ctx + " h") P(not a letter | ctx + " he")

:func:`gender_share` compares male and female pronouns after role words; :func:`cooccurrence_share`
counts the same thing in a text, and :func:`swap_gendered_words` makes the counterfactual copy of a
text used for data augmentation (Lu et al. 2018). The last part measures tokenizers across scripts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["MALE", "FEMALE", "GENDER_PAIRS", "ROLES", "TEMPLATES", "word_logprob", "gender_share", "role_probe",
           "cooccurrence_share", "swap_gendered_words", "PLANT_TEMPLATES", "planted_text", "tokens_per_char",
           "known_share"]

MALE = ("he", "him", "his")
FEMALE = ("she", "her")
# Each pair is swapped both ways. "her" is both "him" and "his"; without a parser it becomes "his".
GENDER_PAIRS = [("he", "she"), ("his", "her"), ("him", "her"), ("himself", "herself"), ("king", "queen"),
                ("kings", "queens"), ("lord", "lady"), ("lords", "ladies"), ("duke", "duchess"),
                ("prince", "princess"), ("man", "woman"), ("men", "women"), ("father", "mother"),
                ("fathers", "mothers"), ("son", "daughter"), ("sons", "daughters"), ("brother", "sister"),
                ("brothers", "sisters"), ("husband", "wife"), ("boy", "girl"), ("boys", "girls"),
                ("sir", "madam"), ("gentleman", "gentlewoman"), ("uncle", "aunt"), ("nephew", "niece"),
                ("master", "mistress"), ("widower", "widow")]

# Role words: gendered by definition, and not gendered by definition (gendered, or not, in the data).
ROLES = {
    "male": ["king", "lord", "duke", "prince", "father", "son", "brother", "husband"],
    "female": ["queen", "lady", "duchess", "princess", "mother", "daughter", "sister", "wife"],
    "neutral": ["nurse", "servant", "soldier", "messenger", "friend", "child", "cousin", "fool"],
}
# Contexts after which a pronoun is a natural next word; {role} is replaced by the role word.
TEMPLATES = ["I saw the {role}, and", "The {role} is come; and", "Go to the {role} and tell",
             "Where is the {role}? I would speak with", "The {role} weeps, for", "When the {role} comes, bid",
             "I know the {role}; for", "Stay, good {role}, and let"]


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


@torch.no_grad()
def word_logprob(model, tokenizer, contexts: Sequence[str], words: Sequence[str],
                 boundary: Callable[[str], bool] | None = None) -> torch.Tensor:
    """log P(word, then a word boundary | context) for each pair, under a character-level model: (N,).

    ``boundary(ch)`` says which next characters end the word (default: anything but a letter). A
    context longer than the model's window keeps its last characters.
    """
    if len(contexts) != len(words):
        raise ValueError(f"{len(contexts)} contexts but {len(words)} words; give one word per context")
    ends = torch.tensor([not _is_letter(c) if boundary is None else bool(boundary(c)) for c in tokenizer.chars])
    block = model.config.block_size
    device = next(model.parameters()).device
    seqs, n_word = [], []
    for ctx, word in zip(contexts, words):
        ids, w = tokenizer.encode(ctx), tokenizer.encode(word)
        if not ids or not w:
            raise ValueError(f"the context and the word must be non-empty, got {ctx!r} and {word!r}")
        if len(w) >= block:
            raise ValueError(f"the word {word!r} is {len(w)} tokens, too long for a window of {block}")
        seqs.append((ids + w)[-block:])
        n_word.append(len(w))
    T = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = torch.tensor(s)  # padded on the right: causal attention never looks there
    was_training = model.training
    model.eval()
    logits, _ = model(x.to(device))
    model.train(was_training)
    logp = F.log_softmax(logits.float(), dim=-1).cpu()  # (N, T, V)
    out = torch.empty(len(seqs))
    for i, (s, k) in enumerate(zip(seqs, n_word)):
        n = len(s)
        targets = torch.tensor(s[n - k:])
        word_lp = logp[i, n - k - 1:n - 1].gather(-1, targets[:, None]).sum()  # the word's characters
        out[i] = word_lp + torch.logsumexp(logp[i, n - 1][ends], dim=0)  # then the word ends
    return out


def gender_share(model, tokenizer, contexts: Sequence[str], male: Sequence[str] = MALE,
                 female: Sequence[str] = FEMALE) -> torch.Tensor:
    """For each context, P(a male pronoun next) / (P(male) + P(female)), the words read with a leading
    space: 0.5 is no preference, 1 only male. (N,)"""
    words = [" " + w for w in (*male, *female)]
    n = len(contexts)
    lp = word_logprob(model, tokenizer, [c for c in contexts for _ in words], words * n).view(n, len(words))
    m = torch.logsumexp(lp[:, :len(male)], dim=1)
    f = torch.logsumexp(lp[:, len(male):], dim=1)
    return torch.sigmoid(m - f)  # e^m / (e^m + e^f)


def role_probe(model, tokenizer, roles: Sequence[str], templates: Sequence[str] = TEMPLATES) -> dict[str, float]:
    """The mean :func:`gender_share` of each role word over the templates."""
    contexts = [t.format(role=r) for r in roles for t in templates]
    share = gender_share(model, tokenizer, contexts).view(len(roles), len(templates))
    return {r: float(s) for r, s in zip(roles, share.mean(dim=1))}


_WORD = re.compile(r"[a-z']+")


def cooccurrence_share(text: str, roles: Sequence[str], window: int = 10, male: Sequence[str] = MALE,
                       female: Sequence[str] = FEMALE) -> dict[str, tuple[float, int]]:
    """For each role word, the share of male pronouns among the pronouns in the ``window`` words after
    it, counted over ``text`` (lower-cased): ``{role: (share, pronouns counted)}``, NaN when none."""
    words = _WORD.findall(text.lower())
    male, female = set(male), set(female)
    counts = {r: [0, 0] for r in roles}
    for i, w in enumerate(words):
        if w in counts:
            after = words[i + 1:i + 1 + window]
            counts[w][0] += sum(a in male for a in after)
            counts[w][1] += sum(a in female for a in after)
    return {r: (m / (m + f) if m + f else float("nan"), m + f) for r, (m, f) in counts.items()}


def swap_gendered_words(text: str, pairs: Sequence[tuple[str, str]] = GENDER_PAIRS) -> str:
    """The counterfactual text: every gendered word of ``pairs`` replaced by its counterpart, keeping its
    case (he -> she, His -> Her, KING -> QUEEN). A word in several pairs maps by its first pair."""
    table: dict[str, str] = {}
    for a, b in pairs:
        table.setdefault(a, b)
        table.setdefault(b, a)
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)

    def swap(m: re.Match) -> str:
        word = m.group(0)
        new = table[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new.capitalize() if word[0].isupper() else new

    return pattern.sub(swap, text)


# Sentences for a positive control: a role word, then a pronoun whose gender is drawn at a chosen rate.
# They differ from TEMPLATES, so a probe that finds the planted rates has found an association the model
# learned, not a sentence it memorised.
PLANT_TEMPLATES = ["The {role} said that {subj} would come.", "Then the {role} rose, and {subj} spoke no more.",
                   "Ask the {role} what {subj} thinks of it.", "The {role} lost {poss} way in the wood.",
                   "I met the {role} and gave {obj} the letter.", "Good morrow to the {role}; {subj} is welcome here."]


def planted_text(shares: dict[str, float], n_sentences: int, seed: int = 0,
                 templates: Sequence[str] = PLANT_TEMPLATES) -> str:
    """``n_sentences`` lines, each a template with a role word of ``shares`` (drawn uniformly) and a
    pronoun that is male (he, him, his) with probability ``shares[role]``, else female (she, her): a
    text in which each role's association is planted at a known strength (a probe's positive control)."""
    if not shares or any(not 0 <= v <= 1 for v in shares.values()):
        raise ValueError(f"shares must map role words to probabilities in [0, 1], got {shares!r:.80}")
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be at least 1, got {n_sentences}")
    g = torch.Generator().manual_seed(seed)
    roles = list(shares)
    which = torch.randint(0, len(roles), (n_sentences,), generator=g).tolist()
    form = torch.randint(0, len(templates), (n_sentences,), generator=g).tolist()
    coin = torch.rand(n_sentences, generator=g).tolist()
    lines = []
    for r, t, u in zip(which, form, coin):
        male = u < shares[roles[r]]
        lines.append(templates[t].format(role=roles[r], subj="he" if male else "she", obj="him" if male else "her",
                                         poss="his" if male else "her"))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tokenizers and languages

def tokens_per_char(encode: Callable[[str], Sequence[int]], text: str) -> float:
    """How many tokens ``encode`` spends per character of ``text`` (lower is cheaper)."""
    if not text:
        raise ValueError("the text is empty")
    return len(encode(text)) / len(text)


def known_share(tokenizer, text: str) -> float:
    """The share of the characters of ``text`` that a character-level tokenizer has in its vocabulary."""
    if not text:
        raise ValueError("the text is empty")
    return sum(c in tokenizer.stoi for c in text) / len(text)
