"""The search space of ``multihot search``: which config fields a trial samples, and from what.

Each entry names a field of :class:`multihot.core.config.RunConfig` (flat, dashes or underscores,
as the command-line flags) and says where its values come from:

```yaml
lr: {low: 1e-5, high: 1e-3, log: true}       # a float range (log-uniform)
epochs: {low: 2, high: 8}                    # an int range (the field is an int)
batch_size: {choices: [16, 32, 64]}          # one of these
loss: {choices: [bce, focal, asl]}
focal_gamma: {low: 0.5, high: 4.0}           # sampled only in trials where loss is focal
head: linear                                 # a fixed value
```

Some fields matter only with another's value (:data:`CONDITIONS`): the focal loss's gamma when the
loss is focal, the asymmetric loss's parameters when it is asl, the mlp head's when the head is
mlp. A trial samples them only then, so the sampler never learns from a parameter that did nothing.

Sampling goes through an Optuna trial (``trial.suggest_*``), but this module does not import
Optuna: it only calls the trial it is given.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihot.core.config import (
    SECTIONS,
    RunConfig,
    field_types,
    load_config_file,
    typed_value,
)
from multihot.core.errors import ConfigError
from multihot.modeling.encoders import is_scratch

CONDITIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "focal_gamma": ("loss", ("focal",)),
    "asl_gamma_neg": ("loss", ("asl",)),
    "asl_gamma_pos": ("loss", ("asl",)),
    "asl_clip": ("loss", ("asl",)),
    "head_hidden": ("head", ("mlp",)),
    "head_activation": ("head", ("mlp",)),
}
"""Fields sampled only when another field (sampled in the trial, or fixed) has one of the values."""

NOT_SEARCHABLE: dict[str, str] = {
    "metric": "it is what the trials are compared on",
    "seed": "it is the same for every trial, so that trials differ only in what is searched",
    "val_fraction": "it decides the validation rows every trial is scored on",
    "compare_baseline": "it changes no model",
    "report_to": "it changes no model",
    "tracking_dir": "it changes no model",
    "num_workers": "it changes no model",
    **{f.name: "it says where the data is" for f in dataclasses.fields(SECTIONS["data"])},
}
"""Config fields a space may not hold, and why (give them as flags: fixed for every trial)."""

SCRATCH_POOLINGS = ("mean", "max", "cls", "attention", "label-attention")
"""The default pooling choices (``pooler`` is left out: not every encoder has one)."""


# ------------------------------------------------------------------------------- one parameter
@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``, uniform or (``log``) log-uniform, on a grid of ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> dict[str, Any]:
        return _range_spec(self.low, self.high, self.log, self.step)


@dataclass(frozen=True)
class IntRange:
    """An int in ``[low, high]`` (both included), uniform or (``log``) log-uniform."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> dict[str, Any]:
        return _range_spec(self.low, self.high, self.log, None if self.step == 1 else self.step)


def _range_spec(low, high, log: bool, step) -> dict[str, Any]:
    spec: dict[str, Any] = {"low": low, "high": high}
    if log:
        spec["log"] = True
    if step is not None:
        spec["step"] = step
    return spec


@dataclass(frozen=True)
class Choice:
    """One of ``choices``; a single choice is a fixed value, not a parameter of the study."""

    choices: tuple[Any, ...]

    def suggest(self, trial, name: str) -> Any:
        if len(self.choices) == 1:
            return self.choices[0]
        return trial.suggest_categorical(name, self.choices)

    def describe(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Fixed:
    """The same value in every trial."""

    value: Any

    def suggest(self, trial, name: str) -> Any:
        return self.value

    def describe(self) -> Any:
        return self.value


Param = FloatRange | IntRange | Choice | Fixed


# ------------------------------------------------------------------------------------ the space
@dataclass(frozen=True)
class SearchSpace:
    """Config fields (flat names) and where a trial takes each one's value from.

    Example:
        >>> space = SearchSpace({"lr": FloatRange(1e-4, 1e-2, log=True),
        ...                      "loss": Choice(("bce", "focal")),
        ...                      "focal_gamma": FloatRange(1.0, 3.0)})
        >>> space.sampled_names()
        ['lr', 'loss', 'focal_gamma']
        >>> space.to_dict()["lr"]
        {'low': 0.0001, 'high': 0.01, 'log': True}
    """

    params: dict[str, Param]

    def sampled_names(self) -> list[str]:
        """The fields in the order a trial samples them: those that others depend on first."""
        free = [n for n in self.params if n not in CONDITIONS]
        return free + [n for n in self.params if n in CONDITIONS]

    def sample(self, trial, base: RunConfig) -> dict[str, Any]:
        """One trial's values (flat config keys), drawn through ``trial`` (an Optuna trial).

        A conditional field (:data:`CONDITIONS`) is drawn only when the field it depends on has
        one of its values: as drawn in this trial, or as ``base`` has it.
        """
        values: dict[str, Any] = {}
        flat = _flat(base)
        for name in self.sampled_names():
            if name in CONDITIONS:
                parent, wanted = CONDITIONS[name]
                if values.get(parent, flat[parent]) not in wanted:
                    continue
            values[name] = self.params[name].suggest(trial, name)
        return values

    def to_dict(self) -> dict[str, Any]:
        """The space as a space file writes it (what ``from_dict`` reads back)."""
        return {name: param.describe() for name, param in self.params.items()}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], base: RunConfig | None = None, source: str = "space"
    ) -> SearchSpace:
        """Read and check a space: ``{field: spec}``, flat or in ``model``/``train`` sections.

        Every key must be a config field that can be searched, every spec fit the field's type,
        and every value the space can give valid for the field (checked against ``base``).

        Raises:
            ConfigError: naming ``source`` and the key.
        """
        base = base or RunConfig()
        kinds = _field_types()
        params: dict[str, Param] = {}
        keys: dict[str, str] = {}
        for key, spec in _flatten_sections(data, kinds, source).items():
            name = str(key).replace("-", "_")
            if name not in kinds:
                raise ConfigError(
                    f"{source}: {key}: not a config field; known fields: {', '.join(sorted(kinds))}"
                )
            if name in NOT_SEARCHABLE:
                raise ConfigError(
                    f"{source}: {key}: cannot be searched: {NOT_SEARCHABLE[name]} (give it as a "
                    "flag instead)"
                )
            if name in params:
                raise ConfigError(f"{source}: {key}: given twice")
            params[name] = _parse_spec(spec, kinds[name], f"{source}: {key}")
            keys[name] = key
        for name, param in params.items():
            _check_values(param, name, params, base, f"{source}: {keys[name]}")
        return cls(params)

    @classmethod
    def from_file(cls, path: str | Path, base: RunConfig | None = None) -> SearchSpace:
        """A space file (YAML or JSON), checked as :meth:`from_dict` does."""
        return cls.from_dict(load_config_file(path), base, source=str(path))

    def without(self, names: set[str]) -> SearchSpace:
        """The space less ``names`` (fields fixed by the caller)."""
        return SearchSpace({n: p for n, p in self.params.items() if n not in names})


def default_space(base: RunConfig) -> SearchSpace:
    """The space searched without a space file, for ``base``'s encoder (scratch encoders take far
    larger learning rates and more epochs than fine-tuning a pretrained one).

    The encoder is ``base``'s alone: which pretrained encoders are installed is the user's to say
    (``encoder: {choices: [...]}`` in a space file).

    Example:
        >>> sorted(default_space(RunConfig(ModelConfig('minilm'))).params)[:4]
        ['asl_clip', 'asl_gamma_neg', 'batch_size', 'dropout']
    """
    scratch = is_scratch(base.model.encoder_name)
    return SearchSpace(
        {
            "encoder": Choice((base.model.encoder_name,)),
            "lr": FloatRange(1e-4, 3e-3, log=True) if scratch else FloatRange(1e-5, 2e-4, log=True),
            "epochs": IntRange(5, 30) if scratch else IntRange(2, 6),
            "batch_size": Choice((16, 32, 64)),
            "dropout": FloatRange(0.0, 0.3),
            "pooling": Choice(SCRATCH_POOLINGS),
            "head": Choice(("linear", "mlp")),
            "head_hidden": Choice((128, 256, 512)),
            "loss": Choice(("bce", "focal", "asl")),
            "focal_gamma": FloatRange(0.5, 4.0),
            "asl_gamma_neg": FloatRange(1.0, 6.0),
            "asl_clip": FloatRange(0.0, 0.2),
        }
    )


# ------------------------------------------------------------------------------------- checking
def _field_types() -> dict[str, Any]:
    """Each config field's type, ``X | None`` unwrapped: ``(type, optional)``."""
    return {
        name: kind for section in SECTIONS.values() for name, kind in field_types(section).items()
    }


def _flatten_sections(data: dict[str, Any], kinds: dict[str, Any], source: str) -> dict[str, Any]:
    """``{"model": {...}, "train": {...}}`` (as a config file may be laid out) made flat."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and key not in kinds and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


RANGE_KEYS = {"low", "high", "log", "step"}


def _parse_spec(spec: Any, kind: tuple[Any, bool], where: str) -> Param:
    """One entry of a space file as a parameter, its values typed as the field."""
    field_type, optional = kind
    if isinstance(spec, dict):
        keys = set(spec)
        if keys == {"choices"}:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices: expected a non-empty list, got {choices!r}")
            return Choice(tuple(_typed(c, kind, where) for c in choices))
        if keys <= RANGE_KEYS and {"low", "high"} <= keys:
            return _parse_range(spec, field_type, where)
        unknown = sorted(keys - RANGE_KEYS - {"choices"})
        raise ConfigError(
            f"{where}: expected {{low: ..., high: ...[, log: true][, step: ...]}}, "
            f"{{choices: [...]}} or a fixed value, got the keys {', '.join(map(str, sorted(keys)))}"
            + (f" ({', '.join(map(str, unknown))} unknown)" if unknown else "")
        )
    if (
        isinstance(spec, list)
        and field_type is not list
        and typing.get_origin(field_type) is not list
    ):
        raise ConfigError(
            f"{where}: a list is not a value of this field; to choose among values "
            "write {choices: [...]}"
        )
    return Fixed(_typed(spec, kind, where))


def _parse_range(spec: dict[str, Any], field_type: Any, where: str) -> FloatRange | IntRange:
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log: expected true or false, got {log!r}")
    if field_type not in (int, float):
        raise ConfigError(
            f"{where}: a range needs a number field, and this one is {_type_name(field_type)}; "
            "write {choices: [...]}"
        )
    # Each end typed as a config file's value is: 1e1 is 10 for an int field, 1 is 1.0 for a float.
    low = typed_value(f"{where}: low", low, field_type)
    high = typed_value(f"{where}: high", high, field_type)
    step = None if step is None else typed_value(f"{where}: step", step, field_type)
    if field_type is int:
        param: FloatRange | IntRange = IntRange(low, high, log, 1 if step is None else step)
    else:
        param = FloatRange(low, high, log, step)
    if not param.low <= param.high:
        raise ConfigError(f"{where}: low ({low}) is above high ({high})")
    if log and param.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if log and step not in (None, 1):
        raise ConfigError(f"{where}: step and log cannot go together")
    if step is not None and not step > 0:
        raise ConfigError(f"{where}: step: expected a positive number, got {step}")
    return param


def _typed(value: Any, kind: tuple[Any, bool], where: str) -> Any:
    """``value`` as the field's type (an int is a float too), or a :class:`ConfigError`."""
    field_type, optional = kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: the field cannot be empty (null)")
    if typing.get_origin(field_type) is list:
        # Optuna's choices are plain values: a list field takes its comma-separated spelling.
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ",".join(value)
        if isinstance(value, str):
            return value
        raise ConfigError(
            f"{where}: expected a list of names or a comma-separated string, got {value!r}"
        )
    return typed_value(where, value, field_type)  # as a config file's value is read


def _check_values(
    param: Param, name: str, params: dict[str, Param], base: RunConfig, where: str
) -> None:
    """Every value the parameter can give (its ends, for a range) is valid for the field: with
    ``base``, or with one other field of the space at one of its values (``mlm_weight`` needs a
    ``mask_prob`` above 0, which the space may give). Combinations that fail all the same fail
    their trial only."""
    others = [
        (other, value) for other, p in params.items() if other != name for value in _candidates(p)
    ]
    for value in _candidates(param):
        first_error = None
        for extra in [{}, *({other: v} for other, v in others)]:
            try:
                base.override(**{name: value}, **extra)
                break
            except ConfigError as err:
                first_error = first_error or err
        else:
            raise ConfigError(f"{where}: {value!r} is not a valid value: {first_error}") from None


def _candidates(param: Param) -> list[Any]:
    """The values to check a parameter by: its ends, its choices, or its value."""
    if isinstance(param, FloatRange | IntRange):
        return [param.low, param.high]
    if isinstance(param, Choice):
        return list(param.choices)
    return [param.value]


def _type_name(field_type: Any) -> str:
    names = {int: "an int", float: "a number", str: "a string", bool: "true or false"}
    return names.get(field_type, str(field_type))


def _flat(config: RunConfig) -> dict[str, Any]:
    return {k: v for section in config.to_dict().values() for k, v in section.items()}
