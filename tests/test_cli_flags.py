"""`vaekit fit`'s model flags come from the registered models' config dataclasses: every field is a flag, a value
of the wrong type or a flag the chosen model lacks is a one-line error, and the values given reach config.json."""

import dataclasses
import json

import numpy as np
import pytest

from vaekit import models
from vaekit.cli import build_parser, main

QUIET = ["--no-progress", "--no-tensorboard", "--device", "cpu"]


def as_argv(field: str, value) -> list[str]:
    """The command-line words that set config field `field` to `value`."""
    flag = "--" + field.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, tuple):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, "none" if value is None else str(value)]


def every_field():
    for name, cls in sorted(models.REGISTRY.items()):
        for f in dataclasses.fields(cls.Config):
            if f.init:
                yield name, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory()


@pytest.mark.parametrize("name, field, default", list(every_field()))
def test_every_config_field_of_every_model_is_a_fit_flag(name, field, default):
    args = build_parser().parse_args(["fit", "run", "--model", name, *as_argv(field, default)])
    value = getattr(args, field)
    assert value == default and type(value) is type(default)
    assert models.typed_config(models.get(name).Config, {field: value}) == {field: default}


def test_fit_help_shows_each_fields_comment():
    text = build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert "--warmup-steps" in text and "--glyph-features" in text and "--no-contrast" in text
    assert "encoder widths; the decoder mirrors them" in text  # NetConfig's comment on `hidden`


def one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit: error:"), err
    return lines[0]


@pytest.fixture
def data(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 6)).astype(np.float32))
    return tmp_path / "x.npy"


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--latent-dim", "x"], "fit: argument --latent-dim: expected an integer, got 'x'"),
        (["--latent-dim", "2.5"], "fit: argument --latent-dim: expected an integer, got '2.5'"),
        (["--beta", "nan"], "fit: argument --beta: must be a finite number"),
        (["--hidden", "4,x"], "fit: argument --hidden: expected comma-separated integers"),
        (["--model", "gan", "--disc-lr", "fast"], "fit: argument --disc-lr: expected a number, got 'fast'"),
        (["--model", "iwae", "--k", "0"], "config field k must be from 1 to 100,000, got 0"),
        (["--beta", "-1"], "config field beta must be >= 0"),
        (
            ["--glyph-features", "3"],
            "--glyph-features is not a field of model 'vae' (a field of --model fontvae; its "
            "fields: --data-shape --latent-dim",
        ),
        (["--model", "autoencoder", "--beta", "2"], "--beta is not a field of model 'autoencoder'"),
        (["--model", "gan", "--latent-dim", "2"], "--latent-dim is not a field of model 'gan'"),
        (["--kind", "selfies"], "--kind is not a field of model 'vae' (a field of --model chemvae;"),
        (["--data-shape", "3,2"], "--data-shape 3,2: the training data sets data_shape to 6"),
        (["--grad-clip", "0"], "fit: argument --grad-clip: must be a finite number in (0, inf], got '0'"),
    ],
)
def test_a_bad_value_or_a_foreign_flag_is_one_line(tmp_path, data, capsys, flags, match):
    line = one_line_error(capsys, ["fit", tmp_path / "run", "--data", data, "--max-steps", "1", *QUIET, *flags])
    assert match in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "model, flags, want",
    [
        (
            "iwae",
            ["--k", "3", "--activation", "tanh", "--warmup-steps", "4", "--likelihood", "gaussian", "--sigma", "0.5"],
            {"k": 3, "activation": "tanh", "warmup_steps": 4, "sigma": 0.5},
        ),
        (
            "avb",
            ["--no-contrast", "--critic-hidden", "8,4", "--noise-dim", "3", "--data-shape", "6"],
            {"contrast": False, "critic_hidden": [8, 4], "noise_dim": 3, "data_shape": [6]},
        ),
    ],
)
def test_fields_given_on_the_command_line_reach_config_json(tmp_path, data, model, flags, want):
    run = tmp_path / "run"
    main(
        [
            "fit",
            str(run),
            "--data",
            str(data),
            "--model",
            model,
            "--hidden",
            "8",
            "--latent-dim",
            "2",
            "--max-steps",
            "2",
            "--epochs",
            "1",
            *QUIET,
            *flags,
        ]
    )
    saved = json.loads((run / "config.json").read_text())["model"]
    assert saved["model"] == model and saved["config"]["hidden"] == [8]
    assert {k: saved["config"][k] for k in want} == want
    main(["fit", str(run), "--resume", "--epochs", "2", "--max-steps", "3", *flags])  # the same values: accepted
    assert json.loads((run / "config.json").read_text())["model"] == saved


def test_grad_clip_reaches_the_train_config(tmp_path, data):
    run = tmp_path / "run"
    main(["fit", str(run), "--data", str(data), "--max-steps", "2", "--epochs", "1", "--grad-clip", "0.5", *QUIET])
    assert json.loads((run / "config.json").read_text())["train"]["grad_clip"] == 0.5
