"""Table 2's #param column from the meta-device presets, and the `lntune params` CLI contract."""

import json

import pytest

from lntune.accounting import meta_model, preset_config, strategy_table
from lntune.cli import main
from lntune.strategies import LoraOptions

# The paper's Table 2, as printed (percent of all parameters, vision tower included).
PAPER_TABLE2 = {
    "llava-llama2-7b": {"finetune": "95.70", "lora": "5.92", "attn-qv": "19.02", "attn-mlp": "65.21",
                        "layernorm": "3.78", "layernorm-simple": "0.004"},
    "llava-llama2-13b": {"finetune": "97.72", "lora": "4.30", "attn-qv": "18.24", "attn-mlp": "66.24",
                         "layernorm": "2.50", "layernorm-simple": "0.003"},
}


@pytest.mark.parametrize("preset", list(PAPER_TABLE2))
def test_table2_percentages_at_the_printed_precision(preset):
    table = strategy_table(lambda: meta_model(preset_config(preset)), preset, LoraOptions(r=64))
    for name, printed in PAPER_TABLE2[preset].items():
        decimals = len(printed.split(".")[1])
        assert f"{table['strategies'][name]['percent']:.{decimals}f}" == printed, name


def test_7b_counts_follow_the_architecture():
    table = strategy_table(lambda: meta_model(preset_config("llava-llama2-7b")), "7b", LoraOptions(r=64),
                           strategies=["layernorm-simple", "connector", "layernorm"])
    rows = table["strategies"]
    assert rows["layernorm-simple"]["trainable"] == 32 * 2 * 4096
    assert rows["connector"]["trainable"] == 1024 * 4096 + 4096
    assert rows["layernorm"]["trainable"] == 32 * 2 * 4096 + 1024 * 4096 + 4096 + 2 * 32000 * 4096
    clip_l14 = 303_179_776
    llama2_7b = 6_738_415_616
    assert table["total"] == clip_l14 + 1024 * 4096 + 4096 + llama2_7b


def test_rank_32_lora_differs_from_the_table(capsys):
    assert main(["params", "--preset", "llava-llama2-7b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert f"{data['strategies']['lora']['percent']:.2f}" == "4.86"  # the text's rank 32 (REFERENCE.md §1)
    assert set(data) == {"model", "total", "strategies"}
    assert set(data["strategies"]["layernorm"]) >= {"trainable", "percent"}


def test_unknown_preset_is_one_clear_error(capsys):
    assert main(["params", "--preset", "llava-llama3-8b"]) == 2
    assert "unknown params preset 'llava-llama3-8b'; choose one of: llava-llama2-7b" in capsys.readouterr().err
