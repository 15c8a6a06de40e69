"""Run configuration: YAML + dotted overrides, typed coercion, errors that name the key."""

import pytest

from lntune.config import load_config, resolve_paths
from lntune.errors import LntuneError
from lntune.pipeline import CONFIG_ROOT


def test_overrides_are_typed_and_dotted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: a\ntrain: {strategy: lora, lr: 1.0e-3}\n")
    config = load_config(path, ["train.lr=2e-3", "output_dir=/some/dir", "data.data_types=[conversation]",
                                "train.track_grads=[10, 20]", "train.lora.r=64", "train.max_grad_norm=null"])
    assert config.train.lr == 0.002 and isinstance(config.train.lr, float)
    assert config.output_dir == "/some/dir"
    assert config.data.data_types == ["conversation"]
    assert config.train.track_grads == [10, 20]
    assert config.train.lora.r == 64 and config.train.strategy == "lora"
    assert config.train.max_grad_norm is None


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown key 'train.lrr' (valid keys here: batch_size"),
    ("train.lr=fast", "train.lr: 'fast' is not a valid float"),
    ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("train.strategy=bitfit", "train.strategy: unknown strategy 'bitfit'; valid: finetune, lora"),
    ("model.projector=conv", "model.projector: 'conv' is not one of linear, mlp2x_gelu"),
    ("train.epochs=1.5", "train.epochs: 1.5 is not a valid int"),
    ("lr", "override 'lr': expected key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(LntuneError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_yaml_errors_give_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [1\n")
    with pytest.raises(LntuneError, match=r"bad.yaml: invalid YAML at line \d+, column \d+"):
        load_config(path)


def test_world_placeholders_need_a_world_section():
    config = load_config(None, ["data.path=${world}/x.json"])
    with pytest.raises(LntuneError, match="has no `world:` section"):
        resolve_paths(config)


def test_every_shipped_config_loads():
    configs = sorted(CONFIG_ROOT.glob("*/*.yaml"))
    assert len([c for c in configs if c.parent.name == "world"]) == 9
    for path in configs:
        if path.parent.name in ("world", "paper"):
            load_config(path)
        assert path.read_text().startswith("#")  # a header comment with the command that runs it


def test_resolving_paths_builds_nothing(tmp_path, monkeypatch):
    """resolve_paths only fills placeholders: the world and tower folders are given, never generated."""
    monkeypatch.setenv("LNTUNE_HOME", str(tmp_path / "home"))
    config = load_config(None, ["world.preset=smoke", "data.path=${world}/x.json", "model.vision=${tower}",
                                "data.image_folder=${config_dir}/images"])
    with pytest.raises(LntuneError, match=r"uses \$\{world\} but no world folder was given"):
        resolve_paths(config)
    resolved = resolve_paths(config, tmp_path, world="/w", tower="/t")
    assert (resolved.data.path, resolved.model.vision, resolved.data.image_folder) == (
        "/w/x.json", "/t", f"{tmp_path}/images")
    assert not (tmp_path / "home").exists()
