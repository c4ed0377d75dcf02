"""The model registry: every model is a small class registered by name, its config a dataclass beside it.

A leaf of the models package: the model files import `register` from here, and `vaekit.models`
imports the model files (so they register) and re-exports what is defined here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import threading
import types
import typing
from typing import Any

import torch
from torch.distributions import Distribution

from ..errors import VaekitError
from ..names import Registry

REGISTRY = Registry("model")
register = REGISTRY.register  # class decorator: make a model buildable by name (and from a saved JSON config)


def get(name: str) -> Any:
    """The model class registered as `name` (Any: a LatentVariableModel or another nn.Module, such as the GAN)."""
    return REGISTRY.find(name)


# -- config values are checked against the types their dataclass fields declare ---------------------
_KINDS = {
    int: ("an integer", "integers"),
    float: ("a finite number", "finite numbers"),
    str: ("a string", "strings"),
    bool: ("true or false", "booleans"),
    type(None): ("null", "nulls"),
}


def _kind(hint: Any, plural: bool = False) -> str:
    """What a value of type `hint` is, in words: "an integer", "a list of integers", "a finite number or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return ("lists" if plural else "a list") + f" of {_kind(args[0], plural=True)}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a, plural) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(_shown(a) for a in args)
    return str(_KINDS.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)[plural])


def _shown(value: object, width: int = 60) -> str:
    """A value as it reads in a JSON config (true, null, "8", [1, 2]), cut to `width` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except (ValueError, RecursionError):  # e.g. an integer with more digits than str() will write
            text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _typed(value: Any, hint: Any) -> Any:
    """`value` as the type `hint` (int, float, str, bool, tuple[T, ...], X | None, Literal[...]), or TypeError.

    Integers are integral and not bool; floats take integers too and must be finite; lists stand for tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for alternative in args:
            try:
                return _typed(value, alternative)
            except TypeError:
                pass
    elif origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(_typed(v, a) for v, a in zip(value, args))
    elif origin is typing.Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
    elif hint is type(None) or hint is None:
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                if math.isfinite(x := float(value)):
                    return x
            except OverflowError:
                pass
    elif hint is typing.Any or (isinstance(hint, type) and isinstance(value, hint)):
        return value
    raise TypeError(hint)


@functools.cache
def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if f.init}


MAX_ENTRIES = 1024  # a config is small data: no list in it is longer (layer widths, shapes, a vocabulary)


def typed_config(config_cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with every value checked against, and converted to, the annotated type of its field in the
    dataclass `config_cls` (lists become tuples, integral numbers ints); unknown fields are left as they are.
    A VaekitError names the first field whose value does not fit:
    ``config field latent_dim must be an integer, got 2.5``.  Lists hold at most MAX_ENTRIES entries, so that
    a config cannot ask for a million layers (each one costs time to build, even on the meta device)."""
    types_ = _field_types(config_cls)
    out = dict(config)
    for name, value in config.items():
        if name in types_:
            if isinstance(value, (list, tuple)) and len(value) > MAX_ENTRIES:
                raise VaekitError(f"config field {name} holds {len(value)} entries, more than {MAX_ENTRIES}")
            try:
                out[name] = _typed(value, types_[name])
            except TypeError:
                raise VaekitError(f"config field {name} must be {_kind(types_[name])}, got {_shown(value)}") from None
    return out


def build(name: str, **config: Any) -> Any:
    """Build a registered model from keyword arguments of its config dataclass (values checked against the
    types of its fields, see `typed_config`)."""
    cls = get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(config) - fields
    if unknown:
        raise VaekitError(f"unknown config field(s) {sorted(unknown)} for model {name!r}; fields: {sorted(fields)}")
    config = typed_config(cls.Config, config)
    try:
        cfg = cls.Config(**config)
    except (TypeError, ValueError, OverflowError) as e:
        raise VaekitError(f"bad config for model {name!r}: {e}") from None
    return cls(cfg)


def config_dict(model: Any) -> dict[str, Any]:
    """JSON-able description {"model": name, "config": {...}} from which `from_config` rebuilds it."""
    return {"model": model.name, "config": dataclasses.asdict(model.config)}


def from_config(d: Any) -> Any:
    if not isinstance(d, dict) or "model" not in d or not isinstance(d.get("config"), dict):
        raise VaekitError("model config must be a JSON object with fields 'model' and 'config'")
    if not all(isinstance(k, str) for k in d["config"]):
        raise VaekitError("model config field names must be strings")
    return build(d["model"], **d["config"])


_META_BUILD = threading.Lock()


def state_shapes(d: Any) -> dict[str, tuple[tuple[int, ...], int]]:
    """{name: (shape, bytes per element)} of the state_dict of the model a saved config `d` describes,
    found by building it on PyTorch's meta device: no memory is allocated, whatever sizes `d` names.

    Distributions made while building skip their argument checks there (those need values).  A config
    that cannot be built raises VaekitError, whatever went wrong."""
    with _META_BUILD:  # one at a time: the switch below is global (a server may load in threads)
        validate = Distribution._validate_args
        Distribution.set_default_validate_args(False)
        try:
            with torch.device("meta"):
                model = from_config(d)
        except VaekitError:
            raise
        except Exception as e:  # the sizes are the config's: any failure to build from it is the config's fault
            first = str(e).splitlines()[0][:120] if str(e) else ""
            raise VaekitError(f"the model config cannot be built ({type(e).__name__}: {first})") from None
        finally:
            Distribution.set_default_validate_args(validate)
    return {k: (tuple(t.shape), t.element_size()) for k, t in model.state_dict().items()}


def to_json(model: Any) -> str:
    return json.dumps(config_dict(model), indent=2)
