"""The study plan (inpca.study): grid expansion, run ids and blocks."""

import copy

import pytest

from inpca.errors import ConfigError
from inpca.study import block_of





def test_grid_expands_to_the_cartesian_product_with_stable_readable_ids(plan):
    s = plan()
    assert len(s.runs) == 8
    assert all(rid.split("-")[0] in ("fc", "allcnn") for rid in s.runs)
    assert {rid.split("-")[1] for rid in s.runs} == {"sgdn", "adam"}
    assert list(s.runs) == sorted(s.runs)


def test_reordering_the_grid_changes_no_id(plan, base_config):
    reordered = copy.deepcopy(base_config)
    entry = reordered["grid"][0]
    entry["arch"].reverse()
    entry["optimizer"].reverse()
    entry["seed"] = [1, 0]
    split = {"grid": [dict(entry, seed=0), dict(entry, seed=1)]}  # regrouped into two entries
    assert set(plan(reordered).runs) == set(plan().runs) == set(plan(split).runs)


def test_equal_numbers_written_as_int_or_float_give_the_same_id(plan, base_config):
    a = copy.deepcopy(base_config)
    a["grid"][0]["weight_decay"] = 0
    b = copy.deepcopy(base_config)
    b["grid"][0]["weight_decay"] = 0.0
    assert set(plan(a).runs) == set(plan(b).runs)


def test_every_training_field_changes_the_id(plan, base_config):
    base = set(plan().runs)
    for key, value in [("batch_size", 32), ("weight_decay", 1e-4), ("augment", True), ("epochs", 3),
                       ("warmup_epochs", 1), ("precision", "bf16"), ("lr_schedule", "constant")]:
        cfg = copy.deepcopy(base_config)
        cfg["grid"][0][key] = value
        assert not set(plan(cfg).runs) & base, key
    cfg = copy.deepcopy(base_config)
    cfg["checkpoints"] = {"schedule": "log"}
    assert not set(plan(cfg).runs) & base
    cfg = copy.deepcopy(base_config)
    cfg["dataset"] = {"name": "digits", "split_seed": 1}
    assert not set(plan(cfg).runs) & base


def test_settings_that_do_not_change_training_keep_ids(plan, base_config):
    cfg = copy.deepcopy(base_config)
    cfg.update(device="cpu", train={"threads": 2}, store={"blocks": 4}, plots={"color_by": "seed"})
    assert set(plan(cfg).runs) == set(plan().runs)


def test_duplicate_runs_across_entries_are_reported(plan, base_config):
    cfg = copy.deepcopy(base_config)
    cfg["grid"].append({"arch": {"name": "fc", "width": 8, "depth": 1},
                        "optimizer": {"name": "adam", "lr": 1e-3}, "seed": 1})
    with pytest.raises(ConfigError, match=r"grid\[0\] and grid\[1\] both expand to run fc-adam-s1-"):
        plan(cfg)


def test_blocks_are_a_stable_function_of_the_id_and_cover_every_run(plan):
    s = plan()
    assert sorted(r for runs in s.blocks.values() for r in runs) == sorted(s.runs)
    for block, runs in s.blocks.items():
        assert all(block_of(r, 4) == block for r in runs)
    assert s.point_blocks[0] == "ref"
    n = len(s.point_blocks)
    assert len(s.tiles) == n * (n + 1) // 2


def test_adding_a_run_changes_exactly_one_block(plan, base_config):
    before = plan()
    cfg = copy.deepcopy(base_config)
    cfg["grid"].append({"arch": {"name": "fc", "width": 32, "depth": 2}, "optimizer": {"name": "adam", "lr": 1e-3}})
    after = plan(cfg)
    changed = [b for b in after.blocks if after.blocks[b] != before.blocks.get(b)]
    assert len(changed) == 1


def test_architecture_defaults_are_filled_before_the_id_is_hashed(plan):
    """{allcnn} and {allcnn, width: 1.0} are one network: one id, and a duplicate if both are asked for."""
    def ids(arch, optimizer={"name": "sgd", "lr": 0.1}):
        return list(plan({"grid": [{"arch": arch, "optimizer": optimizer}]}).runs)

    assert ids({"name": "allcnn"}) == ids({"name": "allcnn", "width": 1.0}) == ids({"name": "allcnn", "width": 1})
    assert ids({"name": "fc", "width": 64, "depth": 2}) == ids({"name": "fc", "widths": [64, 64]})
    assert ids({"name": "wrn"}) == ids({"name": "wrn", "depth": 10, "widen": 4, "base": 8})
    assert ids({"name": "fc"}, {"name": "sgd", "lr": 0.1}) == ids({"name": "fc"}, {"name": "sgd", "lr": 0.1,
                                                                                  "momentum": 0, "nesterov": False})
    with pytest.raises(ConfigError, match=r"grid\[0\] \(twice\) both expand to run allcnn-sgd-s0-"):
        plan({"grid": [{"arch": [{"name": "allcnn"}, {"name": "allcnn", "width": 1.0}],
                         "optimizer": {"name": "sgd", "lr": 0.1}}]})


def test_checkpoint_keys_of_another_schedule_do_not_change_ids(plan, base_config):
    cfg = copy.deepcopy(base_config)
    cfg["checkpoints"] = {"schedule": "paper", "count": 99}
    assert set(plan(cfg).runs) == set(plan().runs)
