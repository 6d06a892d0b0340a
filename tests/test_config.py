from pathlib import Path

import pytest
import yaml

from lra_wavelet import config as C
from lra_wavelet.errors import UserError


def test_merge_order(tmp_path, monkeypatch):
    """defaults < tasks/<task>.yaml < model block < preset < --config < --set."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "listops.yaml").write_text(yaml.safe_dump({
        "train": {"lr": 0.1, "batch_size": 7, "max_steps": 11, "warmup_steps": 3},
        "model": {"d_model": 32, "n_heads": 2},
        "models": {"gpt": {"train": {"batch_size": 8}}, "wavelet": {"model": {"mod_frac": 0.25}}},
        "presets": {"quick": {"train": {"max_steps": 12, "warmup_steps": 4}}},
    }))
    monkeypatch.setattr(C, "TASK_DIR", tasks)
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump({"train": {"warmup_steps": 5, "eval_every": 9}}))
    cfg = C.resolve("listops", "wavelet", "quick", str(f), ("train.eval_every=10",))
    assert cfg.train.grad_clip == C.TrainConfig().grad_clip  # default
    assert cfg.train.lr == 0.1  # task yaml
    assert cfg.train.batch_size == 8  # gpt block, inherited by its variant wavelet
    assert cfg.model.mod_frac == 0.25  # the model's own block
    assert cfg.train.max_steps == 12  # preset
    assert cfg.train.warmup_steps == 5  # --config
    assert cfg.train.eval_every == 10  # --set
    assert C.resolve("listops", "gpt").train.batch_size == 8
    assert C.resolve("listops", "transformer").train.batch_size == 7


def test_a_task_yaml_base_is_merged_under_it_and_a_missing_one_is_named(tmp_path, monkeypatch):
    """`base: FILE` (beside it in tasks/): its sections and presets are merged under the task's own, which win."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "_shared.yaml").write_text(yaml.safe_dump({
        "model": {"init": "lra", "norm_eps": 1.0e-6}, "presets": {"gpt-init": {"model": {"init": "gpt"}}}}))
    (tasks / "listops.yaml").write_text(yaml.safe_dump({"base": "_shared.yaml", "model": {"norm_eps": 1.0e-4},
                                                        "presets": {"quick": {"train": {"max_steps": 3}}}}))
    monkeypatch.setattr(C, "TASK_DIR", tasks)
    cfg = C.resolve("listops", "gpt")
    assert (cfg.model.init, cfg.model.norm_eps) == ("lra", 1.0e-4)  # the base's key, the task's own over it
    assert C.resolve("listops", "gpt", "gpt-init").model.init == "gpt"  # the base's preset
    assert C.resolve("listops", "gpt", "quick").train.max_steps == 3 and sorted(C.task_yaml("listops")["presets"]) == [
        "gpt-init", "quick"]
    (tasks / "listops.yaml").write_text(yaml.safe_dump({"base": "_gone.yaml"}))
    with pytest.raises(UserError, match="tasks/listops.yaml: base '_gone.yaml' not found"):
        C.resolve("listops", "gpt")


@pytest.mark.parametrize("sets,match", [
    (("train.lrr=0.1",), "unknown key 'train.lrr' \\(did you mean 'train.lr'\\?\\)"),
    (("model.d_modle=8",), "did you mean 'model.d_model'"),
    (("trian.lr=1",), "unknown key 'trian' \\(did you mean 'train'\\?\\)"),
    (("train.lr=fast",), "train.lr: expected a number, got 'fast'"),
    (("train.max_steps=1.5",), "train.max_steps: expected an integer"),
    (("train.schedule=cosin",), "did you mean 'cosine'"),
    (("train.cosine_cycle=warmup",), "train.cosine_cycle: expected one of after_warmup, max_steps, got 'warmup'"),
    (("train.max_steps=0",), "train.max_steps must be positive"),
    (("model.mod_frac=2",), "mod_frac must be in \\[0, 1\\]"),
    (("noequals",), "expected key=value"),
    (("train.compile_mode=reduce_overhead",), "did you mean 'reduce-overhead'"),
    (("model.n_heads=0",), "model.n_heads must be positive"),
    (("model.n_layers=-1",), "model.n_layers must be positive"),
    (("train.betas=[2, 3]",), "train.betas must lie in \\[0, 1\\)"),
    (("train.eps=nan",), "train.eps must be a positive finite number"),
    (("train.lr=.inf",), "train.lr must be a positive finite number"),
    (("device=tpu",), "device must be auto, cpu, cuda or cuda:N"),
    (("model=wavspa",), "--set model.name=wavspa contradicts --model wavelet"),
])
def test_bad_keys_and_types_are_one_line_errors(sets, match):
    model = "wavelet"
    with pytest.raises(UserError, match=match) as e:
        C.resolve("listops", model, sets=sets)
    assert "\n" not in str(e.value)


def test_types_are_coerced():
    cfg = C.resolve("listops", "gpt", sets=("train.lr=1e-3", "train.betas=[0.9, 0.95]", "train.compile=true"))
    assert cfg.train.lr == 1e-3 and cfg.train.betas == (0.9, 0.95) and cfg.train.compile is True


def test_saved_config_round_trips(tmp_path):
    cfg = C.resolve("listops", "wavelet", "quick", sets=("seed=3", "model.mod_frac=0.25"))
    C.save(cfg, tmp_path / "config.yaml")
    again = C.resolve(config_file=str(tmp_path / "config.yaml"))
    assert again.to_dict() == cfg.to_dict() and again.hash == cfg.hash


def test_unknown_preset_and_missing_names():
    with pytest.raises(UserError, match="unknown preset 'quik'.*did you mean 'quick'"):
        C.resolve("listops", "gpt", preset="quik")
    with pytest.raises(UserError, match="no task given"):
        C.resolve(None, "gpt")


def test_hash_ignores_where_results_go():
    a = C.resolve("listops", "gpt", sets=("out=/tmp/a",))
    b = C.resolve("listops", "gpt", sets=("out=/tmp/b", "device=cpu"))
    c = C.resolve("listops", "gpt", sets=("seed=1",))
    d = C.resolve("listops", "gpt", sets=("train.compile=true", "train.compile_mode=reduce-overhead",
                                          "train.lazy_metrics=false", "train.prefetch=0", "train.eval_batch_size=64"))
    assert a.hash == b.hash == d.hash != c.hash  # how fast, not what is computed


def test_committed_lra_rows_keep_their_config_hash():
    """The sweep finds a done cell by its config hash: a change to what is hashed (a new key, a new default)
    would orphan every committed row. These are the hashes of rows in results/lra/runs (H200, 2026-12-02)."""
    assert C.resolve("listops", "transformer", sets=("seed=0",)).hash == "33f13437f0"
    assert C.resolve("listops", "wavelet", "gpt-init", sets=("seed=0",)).hash == "218856cff7"  # GPT-style decoder


def test_every_committed_lra_folder_keeps_its_hash_and_the_sweep_finds_it():
    """Each results/lra/runs/<task>/<model>/<run_id>/config.yaml resolves to its folder's hash suffix, and so does
    the reference configuration, or for the decoders run before they took the benchmark's conventions its preset
    gpt-init, or for the decoders at the paper's size its preset paper, at its train.max_steps and named
    deviations (what a sweep with [--preset gpt-init] --set train.max_steps=N [--set train.amp=off ...] looks for): a
    key added later (config.LATER_KEYS), a new default or a task YAML's models: block must rename none.
    Except one change made on purpose: Image, Pathfinder and Path-X took the benchmark's cosine period
    (train.cosine_cycle max_steps), so the Pathfinder runs made before it, at after_warmup, are no longer the
    reference's (a sweep runs the cell again); with --set train.cosine_cycle=after_warmup they still are."""
    folders = sorted((Path(__file__).resolve().parents[1] / "results" / "lra" / "runs").glob("*/*/*/config.yaml"))
    assert len(folders) >= 26
    old_cycle = []
    for f in folders:
        d, suffix = yaml.safe_load(f.read_text()), f.parent.name.rsplit("-", 1)[1]
        assert C.resolve(config_file=str(f)).hash == suffix, f
        sets = (f"seed={d['seed']}", f"train.max_steps={d['train']['max_steps']}")
        paper = (d["model"]["n_layers"], d["model"]["d_model"]) == (10, 128)  # tasks/paper/lra_decoders.yaml's size
        preset = "gpt-init" if d["model"]["init"] == "gpt" else "paper" if paper else None
        # the named deviations a folder may have been run with (the ListOps precision and checkpoint-rule tests)
        plain = C.resolve(d["task"]["name"], d["model"]["name"]).train
        sets += tuple(f"train.{k}={d['train'][k]}" for k in ("amp", "matmul_precision", "test_on")
                      if k in d["train"] and d["train"][k] != getattr(plain, k))
        ref = C.resolve(d["task"]["name"], d["model"]["name"], preset, sets=sets)
        if "cosine_cycle" not in d["train"] and ref.train.cosine_cycle == "max_steps":
            old_cycle.append(f.parent.name)
            assert ref.hash != suffix, f
            sets += ("train.cosine_cycle=after_warmup",)
            ref = C.resolve(d["task"]["name"], d["model"]["name"], preset, sets=sets)
        assert ref.hash == suffix, f
    assert sorted(old_cycle) == ["pathfinder-gpt-s0-dc73270776", "pathfinder-wavelet-s0-b75ef840c2"]


def test_a_saved_config_repeats_its_run_where_the_task_yaml_later_set_a_later_key(tmp_path):
    """A saved config.yaml (all six top-level keys) without train.cosine_cycle was made before the key existed,
    at its default: --config repeats that run, not the task YAML's max_steps; a partial --config file still
    takes the YAML's value."""
    cfg = C.resolve("pathfinder", "gpt", sets=("train.cosine_cycle=after_warmup", "train.max_steps=6240"))
    saved = C.yaml_ready(cfg.to_dict())
    saved["train"].pop("cosine_cycle")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    again = C.resolve(config_file=str(tmp_path / "config.yaml"))
    assert again.train.cosine_cycle == "after_warmup" and again.hash == cfg.hash
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump({"train": {"max_steps": 6240}}))
    partial = C.resolve("pathfinder", "gpt", config_file=str(tmp_path / "partial.yaml"))
    assert partial.train.cosine_cycle == "max_steps" and partial.hash != cfg.hash


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx"])
def test_on_lra_tasks_every_model_has_the_benchmarks_conventions_and_gpt_init_gives_the_decoders_own(task):
    """Every model, the decoders and their variants too, takes the LRA encoder's initialisation, decay and norms
    on the LRA tasks (the GPT-style defaults left the decoders at chance on Text); the decoders keep theirs on the
    pre-training corpora; preset gpt-init gives every model the GPT-style defaults."""
    lra = {"init": "lra", "weight_decay_on": "all", "norm_eps": 1e-6, "gelu": "tanh"}
    gpt = {"init": "gpt", "weight_decay_on": "matrices", "norm_eps": 1e-5, "gelu": "exact"}
    for model in ("transformer", "fnet", "wavspa", "gpt", "wavelet", "wavelet-learnable", "wavelet-ema"):
        for preset, want in ((None, lra), ("gpt-init", gpt)):
            m = C.resolve(task, model, preset).model
            assert {k: getattr(m, k) for k in want} == want, (model, preset)
    if task == "listops":
        assert C.resolve("text8", "wavelet").model.init == "gpt"
    # the benchmark's cosine period (steps_per_cycle = num_train_steps) where its schedule is the cosine; the
    # pre-training corpora keep the default
    cycle = "max_steps" if task in ("image", "pathfinder", "pathx") else "after_warmup"
    for preset in (None, "gpt-init", "quick"):
        t = C.resolve(task, "wavelet", preset).train
        assert t.cosine_cycle == cycle and (t.schedule == "cosine" or cycle == "after_warmup"), preset
    assert C.resolve(task, "gpt", sets=("train.max_steps=6240",)).train.cosine_cycle == cycle
    if task == "listops":
        assert {C.resolve(t, "wavelet").train.cosine_cycle for t in ("text8", "music", "audio")} == {"after_warmup"}


def test_lra_data_fills_data_dir_unless_a_config_sets_it(tmp_path, monkeypatch):
    """$LRA_DATA is the default data root, but a saved config's data_dir (even null) repeats the run as it was."""
    monkeypatch.setenv("LRA_DATA", str(tmp_path))
    assert C.resolve("listops", "gpt").task.data_dir == str(tmp_path)
    saved = C.resolve("listops", "gpt", sets=("task.data_dir=null",))
    assert saved.task.data_dir is None
    C.save(saved, tmp_path / "config.yaml")
    again = C.resolve(config_file=str(tmp_path / "config.yaml"))
    assert again.task.data_dir is None and again.hash == saved.hash


def test_a_hyphenated_task_reads_only_its_own_yaml_unless_it_names_a_family(tmp_path, monkeypatch):
    """A new task 'image-parity' must not inherit Image's 35,000 steps; text-1000 shares text.yaml by declaring it."""
    from lra_wavelet.data.image import ImageTask
    from lra_wavelet.registry import TASKS

    monkeypatch.setitem(TASKS._items, "image-parity", type("ImageParity", (ImageTask,), {}))
    cfg = C.resolve("image-parity", "gpt")
    assert cfg.train.max_steps == C.TrainConfig().max_steps and cfg.train.batch_size == C.TrainConfig().batch_size
    assert C.resolve("image", "gpt").train.max_steps == 35000
    assert C.task_yaml_path("text-1000").name == "text.yaml"  # declared: yaml_family = "text"
    assert C.task_yaml_path("pathfinder-easy").name == "pathfinder.yaml"
    assert C.resolve("text-1000", "gpt").train.max_steps == C.resolve("text", "gpt").train.max_steps
    monkeypatch.setitem(TASKS._items, "image-typo", type("ImageTypo", (ImageTask,), {"yaml_family": "imag"}))
    with pytest.raises(UserError, match="task 'image-typo' shares tasks/imag.yaml .*does not exist"):
        C.resolve("image-typo", "gpt")


@pytest.mark.parametrize("sets,match", [
    (("model.head_dim=0",), "model.head_dim must be positive"),
    (("train.min_lr_ratio=5",), "train.min_lr_ratio must lie in \\[0, 1\\]"),
    (("train.min_lr_ratio=-0.1",), "train.min_lr_ratio must lie in \\[0, 1\\]"),
    (("seed=-1",), "seed must be an integer in \\[0, 4294967295\\], got -1"),
    (("seed=12345678901234567890",), "seed must be an integer in \\[0, 4294967295\\]"),
])
def test_out_of_range_values_are_errors(sets, match):
    with pytest.raises(UserError, match=match):
        C.resolve("listops", "gpt", sets=sets)


def test_a_binary_config_file_is_a_one_line_error(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(UserError, match="cfg.yaml: not a UTF-8 text file") as e:
        C.resolve("listops", "gpt", config_file=str(f))
    assert "\n" not in str(e.value)


def test_deviations_name_what_changes_numbers_only():
    ref = C.resolve("listops", "gpt").to_dict()
    quick = C.resolve("listops", "gpt", "quick", sets=("seed=3", "train.log_every=1", "task.data_dir=/x")).to_dict()
    dev = C.deviations(quick, ref)
    assert dev["train.max_steps"] == (quick["train"]["max_steps"], ref["train"]["max_steps"])
    assert not {"seed", "train.log_every", "task.data_dir"} & set(dev)
    assert C.deviations(ref, ref) == {}


def test_reduced_names_less_budget_only():
    devs = {"train.max_steps": (80, 5000), "model.d_model": (32, 512), "task.n_train": (2000, None)}
    assert set(C.reduced(devs)) == {"train.max_steps", "task.n_train"}
    # train.grad_accum splits the step's batch into micro-batches: the same update, so never a deviation
    ref = C.resolve("listops", "gpt").to_dict()
    assert C.deviations(C.resolve("listops", "gpt", sets=("train.grad_accum=4",)).to_dict(), ref) == {}
    assert set(C.reduced({"train.max_steps": (9000, 5000), "train.batch_size": (8, 32)})) == {"train.batch_size"}
