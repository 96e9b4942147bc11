"""docs/hooks.md is what its generator writes from the current model, and names every hook point."""

from __future__ import annotations

import pytest

from grokinterp import hook_reference
from grokinterp.config import ModelConfig
from grokinterp.model import Transformer


def test_committed_hook_reference_is_up_to_date(capsys):
    assert hook_reference.main(["--check"]) == 0, capsys.readouterr().err


def test_every_hook_point_is_documented_with_its_recorded_shape():
    text = hook_reference.DOC.read_text()
    for normalization_type in (None, "LN"):
        model = Transformer(ModelConfig(normalization_type=normalization_type, d_model=32, d_head=8, d_mlp=64), 24, 23)
        for name in model.hook_dict:
            assert f"| `{name}` |" in text, f"{name} is missing from docs/hooks.md"
    assert "| `blocks.0.mlp.hook_post` | [batch, pos, d_mlp] | [batch, 1, d_mlp] |" in text
    assert "| `blocks.0.attn.hook_k` | [batch, pos, n_heads, d_head] | [batch, pos, n_heads, d_head] |" in text


def test_a_stale_page_or_an_undocumented_hook_fails(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "hooks.md"
    stale.write_text(hook_reference.DOC.read_text().replace("neuron activations", "neurons"))
    assert hook_reference.main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert hook_reference.main(["--out", str(stale)]) == 0 and stale.read_text() == hook_reference.DOC.read_text()
    meanings = dict(hook_reference.MEANINGS)
    del meanings["blocks.L.mlp.hook_post"]
    monkeypatch.setattr(hook_reference, "MEANINGS", meanings)
    with pytest.raises(KeyError, match="blocks.L.mlp.hook_post"):
        hook_reference.render()
