"""Run configuration: dataclasses, YAML layers, strict validation.

Merge order (later wins):
    dataclass defaults < tasks/<task>.yaml < its `models.<model>` block < its `presets.<preset>` block
    < --config FILE < --set key=value (and the flag shorthands --seed, --max-steps, ...)

A resolved config is a plain dict with three sections and three scalars:

    task:  {name: listops, data_dir: null, ...}     validated against the task's Config dataclass
    model: {name: wavelet, n_layers: 4, ...}        validated against the model's Config dataclass
    train: {batch_size: 32, lr: 0.0016, ...}        validated against TrainConfig
    seed: 0    device: auto    out: runs

Unknown keys and wrong types are UserErrors naming the key and the nearest valid one. A --config FILE with
all six top-level keys is a saved config.yaml: a LATER_KEYS key it lacks is taken at that key's default (the
run was made before the key existed), not from the task YAML, so it repeats the run it came from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from .errors import UserError, closest

TASK_DIR = Path(os.environ.get("LRA_WAVELET_TASKS", Path(__file__).resolve().parents[1] / "tasks"))


# ----------------------------------------------------------------------------- sections


@dataclass
class TaskConfig:
    """Settings every task understands; a task subclasses this to add its own."""

    name: str = ""
    data_dir: Optional[str] = None  # official data root; else $LRA_DATA; else generated / substitute
    n_train: Optional[int] = None  # cap on examples used per split (None: all)
    n_val: Optional[int] = None
    n_test: Optional[int] = None
    prepared: Optional[str] = None  # a folder written by `prepare --export`: portable, ready-made splits


@dataclass
class ModelConfig:
    """Settings every model understands; a model subclasses this to add its own (or to change defaults:
    the LRA encoders' `LRAConfig` sets the benchmark's conventions, models/backbone.py)."""

    name: str = ""
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 2
    d_ff: int = 128
    qkv_dim: Optional[int] = None  # total width of attention's queries/keys/values, over all heads (None: d_model)
    dropout: float = 0.1
    attn_dropout: float = 0.0
    pos: Literal["sinusoidal", "learned", "none"] = "sinusoidal"
    # None: the model's own default. cls: a learned vector prepended to the sequence; first: the sequence's
    # own first position (the benchmark's dual encoder); mean (see mean_pool); last: the last valid position
    pool: Optional[Literal["cls", "first", "mean", "last"]] = None
    mean_pool: Literal["all", "valid"] = "valid"  # mean over every position (padding too) or the valid ones
    head_dim: Optional[int] = None  # hidden width of the classifier MLP (None: d_ff)
    retrieval_combine: Literal["nli", "concat"] = "nli"  # [e1,e2,e1*e2,e1-e2] or the benchmark's [e1,e2]
    init: Literal["gpt", "lra"] = "gpt"  # N(0, 0.02) everywhere, or the benchmark's Flax initialisers
    weight_decay_on: Literal["matrices", "all"] = "matrices"  # weight matrices only, or every parameter
    norm_eps: float = 1e-5  # LayerNorm epsilon (torch's default; Flax's is 1e-6)
    gelu: Literal["exact", "tanh"] = "exact"  # the MLP's GELU: erf, or the tanh approximation (jax.nn.gelu)

    def __post_init__(self):
        if self.qkv_dim is not None and (self.qkv_dim <= 0 or (self.n_heads > 0 and self.qkv_dim % self.n_heads)):
            raise ValueError(f"qkv_dim ({self.qkv_dim}) must be positive and divisible by n_heads ({self.n_heads})")
        if not 0 < self.norm_eps < 1:
            raise ValueError(f"norm_eps must lie in (0, 1), got {self.norm_eps}")


@dataclass
class TrainConfig:
    batch_size: int = 32
    max_steps: int = 1000
    lr: float = 1e-3  # peak learning rate (after warm-up)
    schedule: Literal["constant", "rsqrt", "cosine", "linear"] = "cosine"
    # the cosine's period: after_warmup, the steps after warm-up (max_steps - warmup_steps: it reaches 0, or
    # min_lr_ratio, at the last step); max_steps, the whole run, as the LRA benchmark's cosine_decay with
    # steps_per_cycle = num_train_steps (it ends at 0.5 (1 + cos(pi (max_steps - warmup_steps) / max_steps))).
    # Other schedules ignore it (train.lr_lambda)
    cosine_cycle: Literal["after_warmup", "max_steps"] = "after_warmup"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0  # floor of cosine / linear decay, as a fraction of lr
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    eval_every: int = 100  # steps between validation passes
    eval_batches: int = 0  # batches per validation pass (0: the whole split); testing always uses the whole split
    # classifiers: evaluate (validation and test) only whole batches of train.batch_size, as the benchmark's
    # padded_batch(drop_remainder=True) does (ListOps: 1,984 of its 2,000 test examples); off: every example
    eval_drop_last: bool = False
    test_on: Literal["final", "best"] = "final"  # which weights are tested: last step, or best val
    checkpoint_every: int = 200  # steps between resumable checkpoints (0: only at the end)
    log_every: int = 10
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA, off on CPU
    # float32 matrix products (torch.set_float32_matmul_precision, set by every run's build): highest, true float32
    # (every run until 2026-12-04); high, TF32 on CUDA (10 mantissa bits in the products, float32 everywhere
    # else). Under bf16 autocast the products are bf16 anyway; with amp=off, high is the cheap way to float32
    # weights and activations. (The benchmark's own runs, on TPU v3 with JAX of 2020, multiplied float32 in one
    # bfloat16 pass: a precision PyTorch has no CUDA switch for.)
    matmul_precision: Literal["highest", "high"] = "highest"
    # torch.compile the model; None (auto, or null): on for classification on CUDA (1.3-1.4x on ListOps and Pathfinder,
    # results/benchmarks/throughput.md), off elsewhere (untimed there; CPU runs are smoke tests); under auto a
    # model the compiler fails on runs eagerly, said in the log (true: the failure fails the run)
    compile: Optional[bool] = None
    # torch.compile mode; reduce-overhead records CUDA graphs (fixed shapes: pair it with fixed-length batches)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    num_workers: int = 0
    grad_accum: int = 1  # micro-batches per step: the same update as one batch of batch_size, in less memory
    memory_check: bool = True  # refuse a run whose estimated peak memory exceeds the device's free memory
    # speed switches (none changes what is computed; see README "Speed"). lazy_metrics and prefetch are on by
    # default: faster in every LRA cell measured (results/benchmarks/throughput.md), the same numbers (tests)
    # classifiers: pad trimmed batches up to one of this many lengths (0: multiples of 128, or with train.compile
    # the full length, one static shape)
    length_buckets: int = 0
    # classifiers with a pad-invariant model: each training (and evaluation) batch split into this many equal
    # micro-batches of its rows sorted by length, each trimmed on its own (to a bucket of train.length_buckets;
    # compiled: 8 buckets unless set), so short rows stop paying for the longest: the same update as one batch
    # (each micro-batch's mean loss / their number, as train.grad_accum), dropout drawn per micro-batch. 1: off;
    # a model that is not pad-invariant keeps whole batches (env.json: length_groups)
    length_groups: int = 1
    lazy_metrics: bool = True  # read loss / accuracy / the NaN flag on the host only at log steps (no per-step sync)
    prefetch: int = 2  # batches prepared ahead in a background thread (0: on the critical path)
    # attention heads narrower than this are zero-padded to it for SDPA (0: never): the same attention (under
    # attention dropout the same in distribution: another kernel draws its masks differently), but a width more
    # kernels accept (Pathfinder's heads are 4 wide). None (auto): 8 on CUDA where the attention carries a key
    # mask (6.6x faster attention at Pathfinder's shape: flash refuses masks, the others width 4); elsewhere not
    # (without a mask flash pads width 4 itself: measured no faster). models/backbone.py padded_head_width
    attn_pad_heads: Optional[int] = None
    # attention over each row's valid positions only: no attention work for padding (ListOps' generated
    # rows: 30% of the whole batch's attention work is left, Pathfinder's black pixels: 12%), through
    # flash's variable-length kernel with the batch's valid positions gathered to the front (fixed shapes, no
    # host sync: compiles into the model's graph). The same numbers at every position (up to rounding; attention
    # dropout the same in distribution): valid queries attend to valid keys as under the mask, padded queries
    # take the uniform mean where the readout sees them (the benchmark's), and are never read otherwise. Causal
    # attention (the decoders) takes it where the padding only trails (each valid position attends to the valid
    # ones before it, as without a mask); not a model whose mixing carries padding to valid positions
    # (wavelet-noncausal, fnet), and nothing without a key mask. CUDA under bf16 autocast (flash's kernel); on
    # CUDA in float32 the masked kernels run instead; on the CPU a loop over rows (the same function, slower).
    # models/backbone.py varlen_attention
    attn_varlen: bool = False
    # examples per evaluation forward (0: train.batch_size); a validation pass still covers
    # eval_batches x batch_size examples, so only the grouping changes
    eval_batch_size: int = 0
    logger: Literal["none", "tensorboard", "wandb"] = "none"  # curves also to TensorBoard / W&B (loggers.py)

    def __post_init__(self):
        for key in ("grad_accum", "length_groups"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("length_buckets", "prefetch", "eval_batch_size", "attn_pad_heads"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)}")


# train keys that change no number: logging (also to TensorBoard / W&B), checkpoints, compilation (train.compile:
# see RunConfig.hash), memory and speed switches
# (train.grad_accum splits train.batch_size into micro-batches: the same update)
SPEED_ONLY_KEYS = ("log_every", "num_workers", "checkpoint_every", "compile", "compile_mode", "grad_accum",
                   "memory_check", "length_buckets", "length_groups", "lazy_metrics", "prefetch", "eval_batch_size",
                   "logger", "attn_pad_heads", "attn_varlen")
# keys added after committed runs were made, each with the default that reproduces those runs: at that default a
# key is left out of the hash, so adding a switch never renames (and so never re-runs) a finished run
# (model.cls_mask 'first_token' differs from the earlier behaviour only where a sequence opens with padding, which
# no committed run's task allowed: Task.padding_leads; train.cosine_cycle 'after_warmup' is the cosine every run
# made before it decayed with; train.matmul_precision 'highest' is PyTorch's default, which the trainer never
# changed before)
LATER_KEYS = {"train": {"eval_drop_last": False, "cosine_cycle": "after_warmup", "matmul_precision": "highest"},
              "model": {"cls_mask": "first_token"}}


def drop_later_defaults(d: dict) -> dict:
    """`d` (a config as a dict) without the LATER_KEYS that sit at their default, in place: what fingerprints
    (RunConfig.hash, report.config_id) see, so runs made before a key existed keep theirs."""
    for section, keys in LATER_KEYS.items():
        for k, default in keys.items():
            if d.get(section, {}).get(k, default) == default:
                d.get(section, {}).pop(k, None)
    return d
WHERE_KEYS = ("data_dir", "prepared")  # task keys naming where the data lives (its kind is the row's data_source)


@dataclass
class RunConfig:
    task: TaskConfig
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """Fingerprint of what determines the numbers (not where they are written or on what device)."""
        d = self.to_dict()
        for k in ("out", "device"):
            d.pop(k)
        for k in SPEED_ONLY_KEYS:
            d["train"].pop(k)
        drop_later_defaults(d)
        # train.compile changes no number either, but was hashed before that was settled: it stays in the hashed
        # dict, always as False, so compiled and eager runs share a folder and earlier runs keep their hashes
        d["train"]["compile"] = False
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


TOP_KEYS = ("task", "model", "train", "seed", "device", "out")
MAX_SEED = 2**32 - 1  # numpy's legacy seed range: a larger or negative seed is refused, never wrapped


# ----------------------------------------------------------------------------- typing


def _coerce(value, typ, key: str):
    """Check `value` against the annotation `typ`; return it converted (int -> float, list -> tuple)."""
    origin = typing.get_origin(typ)
    if origin is typing.Union:
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        if value == "auto" and set(args) == {bool, type(None)}:  # train.compile=auto: the same as null
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: got {value!r}")
    if origin is Literal:
        choices = typing.get_args(typ)
        word = "on" if value else "off"
        if isinstance(value, bool) and word in choices:  # YAML 1.1 reads a bare off / on as a boolean: train.amp=off
            value = word
        if value not in choices:
            raise UserError(
                f"{key}: expected one of {', '.join(map(str, choices))}, got {value!r}{closest(value, choices)}"
            )
        return value
    if origin in (tuple, list):
        args = typing.get_args(typ)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise UserError(f"{key}: expected {len(args)} values, got {len(value)}")
        inner = args[0] if args else typing.Any
        vals = [_coerce(v, args[i] if origin is tuple and args[-1] is not Ellipsis else inner, key)
                for i, v in enumerate(value)]
        return tuple(vals) if origin is tuple else vals
    if typ is typing.Any:
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"{key}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not _is_int(value)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, bool):
            raise UserError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}: expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def build_section(cls, values: dict, section: str):
    """Instantiate dataclass `cls` from `values`, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        if k not in hints:
            raise UserError(f"unknown key '{section}.{k}'{closest(k, names, prefix=section + '.')}; "
                            f"valid keys: {', '.join(names)}")
        kwargs[k] = _coerce(v, hints[k], f"{section}.{k}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ checks
        raise UserError(f"{section}: {e}") from None


# ----------------------------------------------------------------------------- layers


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader when built with it (10x faster)


def load_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a UTF-8 text file (byte {e.start}); "
                        "expected a YAML file of config keys") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return data


def parse_set(item: str) -> dict:
    """'train.lr=3e-4' -> {'train': {'lr': 3e-4}}; the value is read as YAML."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set train.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise UserError(f"--set {item!r}: expected key=value with a dotted key, e.g. model.d_model=64")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _normalise(layer: dict, source: str) -> dict:
    """Allow `task: listops` as shorthand for `task: {name: listops}`; check the top-level keys."""
    layer = dict(layer)
    for k in ("task", "model"):
        if isinstance(layer.get(k), str):
            layer[k] = {"name": layer[k]}
    for k in layer:
        if k not in TOP_KEYS:
            raise UserError(f"{source}: unknown key '{k}'{closest(k, TOP_KEYS)}; valid keys: {', '.join(TOP_KEYS)}")
    for k in ("task", "model", "train"):
        if k in layer and not isinstance(layer[k], dict):
            raise UserError(f"{source}: '{k}' must be a mapping, got {layer[k]!r}")
    return layer


def task_yaml_path(task: str) -> Optional[Path]:
    """tasks/<name>.yaml; a variant without its own file (text-1000, pathfinder-easy) uses the YAML its class
    names in `yaml_family`, and nothing else: a hyphen in a name never picks a YAML by itself."""
    from .registry import TASKS

    own = TASK_DIR / f"{task}.yaml"
    if own.is_file():
        return own
    family = getattr(TASKS.get(task), "yaml_family", None) if task in TASKS else None
    if not family:
        return None
    path = TASK_DIR / f"{family}.yaml"
    if not path.is_file():
        raise UserError(f"task '{task}' shares tasks/{family}.yaml (its yaml_family), which does not exist")
    return path


def load_task_spec(path: Path) -> dict:
    """A task YAML as a dict, with the file its `base:` key names (beside it in tasks/) merged under it: settings
    several task YAMLs share (the LRA tasks' conventions and their gpt-init preset) stand in one file; the task's
    own keys win."""
    spec = load_yaml(path)
    base = spec.pop("base", None)
    if base is None:
        return spec
    base_path = path.parent / str(base)
    if not base_path.is_file():
        raise UserError(f"tasks/{path.name}: base '{base}' not found (expected a file beside it in tasks/)")
    shared = load_yaml(base_path)
    extra = set(shared) - set(TOP_KEYS) - {"models", "presets"}
    if extra:
        raise UserError(f"tasks/{base_path.name}: unknown key '{sorted(extra)[0]}' (a base holds config sections, "
                        "models and presets)")
    return deep_merge(shared, spec)


def task_yaml(task: str) -> dict:
    """The YAML of `task_yaml_path` as a dict, its base merged in ({} for a task without one: dataclass defaults
    only)."""
    path = task_yaml_path(task)
    return load_task_spec(path) if path else {}


def resolve(task: Optional[str] = None, model: Optional[str] = None, preset: Optional[str] = None,
            config_file: Optional[str] = None, sets: tuple = (), overrides: Optional[dict] = None,
            grid_layer: Optional[dict] = None) -> RunConfig:
    """Merge every layer and validate. `overrides` are the CLI flag shorthands (highest priority);
    `grid_layer` holds the config keys of a sweep grid file (applied just below --config)."""
    from .registry import MODELS, TASKS

    file_layer = _normalise(load_yaml(config_file), str(config_file)) if config_file else {}
    set_layer: dict = {}
    for item in sets:
        set_layer = deep_merge(set_layer, parse_set(item))
    set_layer = _normalise(deep_merge(set_layer, overrides or {}), "--set")

    for section, given in (("task", task), ("model", model)):  # --set task.name=X must not be silently dropped
        named = set_layer.get(section, {}).get("name")
        if given and named and named != given:
            raise UserError(f"--set {section}.name={named} contradicts --{section} {given}; give one of them")
    task = task or set_layer.get("task", {}).get("name") or file_layer.get("task", {}).get("name")
    model = model or set_layer.get("model", {}).get("name") or file_layer.get("model", {}).get("name")
    if not task:
        raise UserError("no task given: pass --task NAME (see `python -m lra_wavelet list tasks`)")
    if not model:
        raise UserError("no model given: pass --model NAME (see `python -m lra_wavelet list models`)")
    task_cls, model_cls = TASKS.get(task), MODELS.get(model)

    spec_path = task_yaml_path(task)
    spec, where = (load_task_spec(spec_path), f"tasks/{spec_path.name}") if spec_path else ({}, f"tasks/{task}.yaml")
    extra = set(spec) - set(TOP_KEYS) - {"models", "presets"}
    if extra:
        k = sorted(extra)[0]
        raise UserError(f"{where}: unknown key '{k}'{closest(k, TOP_KEYS + ('models', 'presets'))}")
    layers = [({k: v for k, v in spec.items() if k in TOP_KEYS}, where)]
    models_block = spec.get("models") or {}
    for name in _model_lineage(model_cls):
        if name in models_block:
            layers.append((models_block[name], f"{where} models.{name}"))
    if preset:
        presets = spec.get("presets") or {}
        if preset not in presets:
            raise UserError(f"unknown preset '{preset}' for task '{task}'{closest(preset, presets)}; "
                            f"known: {', '.join(sorted(presets)) or 'none'}")
        layers.append((presets[preset], f"{where} presets.{preset}"))
    if set(TOP_KEYS) <= set(file_layer):  # a saved config.yaml: a key added later that it lacks was at its default
        file_layer = copy.deepcopy(file_layer)
        for section, cls in (("task", task_cls.Config), ("model", model_cls.Config), ("train", TrainConfig)):
            names = {f.name for f in dataclasses.fields(cls)}
            for k, default in LATER_KEYS.get(section, {}).items():
                if k in names and isinstance(file_layer.get(section), dict):
                    file_layer[section].setdefault(k, default)
    layers += [(grid_layer or {}, "sweep grid"), (file_layer, str(config_file)), (set_layer, "--set")]

    merged: dict = {}
    for layer, source in layers:
        merged = deep_merge(merged, _normalise(layer, source))
    merged.setdefault("task", {})["name"] = task
    merged.setdefault("model", {})["name"] = model
    explicit = any("data_dir" in (_normalise(layer, source).get("task") or {})  # a --set or --config that names it
                   for layer, source in ((set_layer, "--set"), (file_layer, str(config_file))))
    if not explicit and not merged["task"].get("data_dir") and os.environ.get("LRA_DATA"):
        merged["task"]["data_dir"] = os.environ["LRA_DATA"]

    cfg = RunConfig(
        task=build_section(task_cls.Config, merged.get("task", {}), "task"),
        model=build_section(model_cls.Config, merged.get("model", {}), "model"),
        train=build_section(TrainConfig, merged.get("train", {}), "train"),
        seed=_coerce(merged.get("seed", 0), int, "seed"),
        device=_coerce(merged.get("device", "auto"), str, "device"),
        out=_coerce(merged.get("out", "runs"), str, "out"),
    )
    check(cfg)
    return cfg


def _model_lineage(model_cls) -> list[str]:
    """Registered names from the most general ancestor to the model itself: a variant inherits the
    YAML block of the model it subclasses (wavelet-learnable gets `wavelet`'s block, then its own)."""
    names = [c.registered_name for c in reversed(model_cls.__mro__) if "registered_name" in c.__dict__]
    return names


def check(cfg: RunConfig) -> None:
    t = cfg.train
    for key in ("batch_size", "max_steps", "eval_every", "log_every"):
        if getattr(t, key) <= 0:
            raise UserError(f"train.{key} must be positive, got {getattr(t, key)}")
    for key in ("warmup_steps", "checkpoint_every", "eval_batches", "num_workers"):
        if getattr(t, key) < 0:
            raise UserError(f"train.{key} must be >= 0, got {getattr(t, key)}")
    if not 0 < t.lr < math.inf:
        raise UserError(f"train.lr must be a positive finite number, got {t.lr}")
    if not 0 < t.eps < math.inf:
        raise UserError(f"train.eps must be a positive finite number, got {t.eps}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise UserError(f"train.min_lr_ratio must lie in [0, 1] (a fraction of train.lr), got {t.min_lr_ratio}")
    if not all(0 <= b < 1 for b in t.betas):
        raise UserError(f"train.betas must lie in [0, 1), got {list(t.betas)}")
    if not 0 <= t.grad_clip < math.inf or not 0 <= t.weight_decay < math.inf:
        raise UserError("train.grad_clip and train.weight_decay must be finite and >= 0")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise UserError(f"seed must be an integer in [0, {MAX_SEED}], got {cfg.seed}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, got '{cfg.device}'")
    m = cfg.model
    for key in ("n_layers", "d_model", "n_heads", "d_ff"):
        if getattr(m, key) <= 0:
            raise UserError(f"model.{key} must be positive, got {getattr(m, key)}")
    head_dim = getattr(m, "head_dim", None)
    if head_dim is not None and head_dim <= 0:
        raise UserError(f"model.head_dim must be positive (or null: d_ff), got {head_dim}")
    if m.d_model % m.n_heads:
        raise UserError(f"model.d_model ({m.d_model}) must be divisible by model.n_heads ({m.n_heads})")
    for key in ("n_train", "n_val", "n_test"):
        v = getattr(cfg.task, key)
        if v is not None and v <= 0:
            raise UserError(f"task.{key} must be positive, got {v}")


def deviations(cfg: dict, reference: dict) -> dict:
    """{'train.max_steps': (run's, reference's), ...}: the keys that change numbers where a saved config
    differs from the reference (the seed, the location of the data and speed-only keys aside; a key only
    one side has, from another version of the code, is not compared, except a LATER_KEYS key a saved config
    lacks: that run was made at the key's default)."""
    out = {}
    for section in ("task", "model", "train"):
        mine, ref = {**LATER_KEYS.get(section, {}), **(cfg.get(section) or {})}, reference.get(section) or {}
        skip = {"task": WHERE_KEYS, "train": SPEED_ONLY_KEYS}.get(section, ())
        for k in ref:
            if k in mine and k not in skip and yaml_ready(mine[k]) != yaml_ready(ref[k]):
                out[f"{section}.{k}"] = (mine[k], ref[k])
    return out


BUDGET_KEYS = ("train.max_steps", "train.batch_size", "task.n_train", "task.n_val", "task.n_test")


def reduced(devs: dict) -> dict:
    """The deviations that give a run less than the reference's budget: fewer steps, smaller batches
    (train.batch_size is the whole batch of a step, however many micro-batches train.grad_accum splits it
    into), or capped splits (None, the reference's, means the whole split)."""
    less = lambda mine, ref: mine is not None and (ref is None or mine < ref)  # noqa: E731
    return {k: v for k, v in devs.items() if k in BUDGET_KEYS and less(*v)}


def yaml_ready(d: dict) -> dict:
    """Plain lists and scalars only (tuples become lists), so YAML files stay portable."""
    return json.loads(json.dumps(d))


def save(cfg: RunConfig, path) -> None:
    from .results import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(yaml_ready(cfg.to_dict()), sort_keys=False))
