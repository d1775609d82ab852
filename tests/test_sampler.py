"""The interactive sampler, driven through its widgets' state: set a control, check what it computes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from minigpt.generate import SamplingSettings, generate_text  # noqa: E402
from minigpt.model import GPT, GPTConfig  # noqa: E402
from minigpt.tokenizer import CharTokenizer  # noqa: E402
from minigpt.viz import Sampler, show_token  # noqa: E402

TOK = CharTokenizer(sorted(set("abcdefghijklmnopqrstuvwxyz .,:\n")))


@pytest.fixture
def sampler():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=TOK.vocab_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return Sampler(model.eval(), TOK, prompt="romeo:\n", temperature=1.0, max_new_tokens=25, seed=3)


def model_probs(s, temperature=1.0):
    ids = torch.tensor([TOK.encode(s.prompt.value)[-16:]])
    with torch.no_grad():
        logits = s.model(ids)[0][0, -1]
    return F.softmax(logits / temperature, -1)


def test_the_distribution_is_the_models_softmax_at_the_chosen_temperature(sampler):
    torch.testing.assert_close(sampler.probs, model_probs(sampler))
    sampler.temperature.value = 0.5
    torch.testing.assert_close(sampler.probs, model_probs(sampler, 0.5))
    assert abs(float(sampler.probs.sum()) - 1) < 1e-5


def test_temperature_zero_leaves_one_token_and_top_k_leaves_k(sampler):
    sampler.temperature.value = 0.0
    assert int((sampler.probs > 0).sum()) == 1 and int(sampler.probs.argmax()) == int(model_probs(sampler).argmax())
    sampler.temperature.value = 1.0
    sampler.top_k.value = 4
    kept = sampler.probs > 0
    assert int(kept.sum()) == 4
    assert set(kept.nonzero().flatten().tolist()) == set(torch.topk(model_probs(sampler), 4).indices.tolist())
    assert sampler.settings() == SamplingSettings(temperature=1.0, top_k=4)


def test_top_p_keeps_the_smallest_set_reaching_p(sampler):
    sampler.top_p.value = 0.5
    p = model_probs(sampler)
    kept = sampler.probs > 0
    assert p[kept].sum() >= 0.5
    assert p[kept].sum() - p[kept].min() < 0.5  # without its least likely token the set falls short


def test_the_prompt_changes_the_distribution_and_the_info_line(sampler):
    before = sampler.probs.clone()
    info = sampler.info.value
    sampler.prompt.value = "the king"
    assert not torch.allclose(before, sampler.probs) and sampler.info.value != info
    assert "tokens can be drawn" in sampler.info.value


def test_generate_streams_a_reproducible_sample_into_the_output(sampler):
    text = sampler.generate()
    assert len(text) == 25 and sampler.text == text
    assert sampler.output.value == sampler.prompt.value + text
    expected = generate_text(sampler.model, TOK, sampler.prompt.value, 25, temperature=1.0,
                             generator=torch.Generator().manual_seed(3))
    assert text == expected
    assert sampler.generate() == text  # the same seed, the same sample
    sampler.seed.value = 4
    assert sampler.generate() != text


def test_the_button_runs_generate(sampler):
    sampler.temperature.value = 0.0
    sampler.button.click()
    assert len(sampler.text) == 25 and sampler.output.value.endswith(sampler.text)


def test_a_prompt_with_unknown_characters_is_reported_not_raised(sampler):
    sampler.prompt.value = "ROMEO"  # capitals are not in this vocabulary
    assert sampler.probs is None and "not in the vocabulary" in sampler.error
    assert "cannot use this prompt" in sampler.info.value
    assert sampler.generate() == "" and "cannot generate" in sampler.info.value
    sampler.prompt.value = ""
    assert sampler.probs is None and "type a prompt" in sampler.error
    sampler.prompt.value = "romeo"
    assert sampler.error == "" and sampler.probs is not None


def test_the_bar_chart_is_labelled_with_the_tokens(sampler):
    sampler.top_k.value = 3
    fig = sampler.plot()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    top = torch.topk(sampler.probs, len(labels)).indices.tolist()
    assert labels == [show_token(TOK.decode([i])) for i in top]
    assert ax.get_ylabel() == "probability" and "top-k=3" in ax.get_title()
    plt.close(fig)
    assert show_token("\n") == "⏎" and show_token(" ") == "␣"


def test_the_controls_start_from_settings_and_give_them_back(sampler):
    s = Sampler(sampler.model, TOK, prompt="romeo:\n", settings=SamplingSettings(temperature=0.5, top_k=3,
                                                                                  repetition=1.2))
    assert (s.temperature.value, s.top_k.value, s.top_p.value) == (0.5, 3, 1.0)  # top-p 1: the slider's "off"
    assert s.settings() == SamplingSettings(temperature=0.5, top_k=3, repetition=1.2)  # no control: kept
    s.top_k.value, s.top_p.value = 0, 0.9
    assert s.settings() == SamplingSettings(temperature=0.5, top_p=0.9, repetition=1.2)
    assert Sampler(sampler.model, TOK).settings() == SamplingSettings(temperature=0.8)
