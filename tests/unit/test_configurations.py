"""What a configuration of a study is (inpca.configurations), on hand-built trajectories tables: values
compared after normalisation, the factor each config field belongs to, the architecture and the label of
each row. The labels' finer cases (corners, collisions) are tested with the analysis that shows them
(test_analysis.py); this module is the one the analysis and the atlas both import."""

import numpy as np
import pandas as pd
import pytest

from inpca import analysis, configurations
from inpca.configurations import (FACTORS, archs_of, check_trajectories, config_frame, configuration_archs,
                                  configuration_labels, factor_of, geodesic_mask, geodesic_row, normalised, run_mask)
from inpca.errors import ResultsError


def table():
    rows = [{"run": f"{arch}-{opt}-s{seed}", "kind": "run", "arch.name": arch, "optimizer.name": opt,
             "optimizer.lr": lr, "seed": seed, "batch_size": 64}
            for arch, opt, lr in (("fc", "sgd", 0.1), ("fc", "adam", 0.001), ("allcnn", "sgd", 0.1)) for seed in (0, 1)]
    rows.append({"run": "geodesic", "kind": "geodesic"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("value, text", [(None, ""), (np.nan, ""), ("nan", ""), (True, "true"), ("False", "false"),
                                         (3.0, "3"), (np.int64(128), "128"), ("0.10", "0.1"), (5e-05, "5e-05"),
                                         ("[32, 32]", "[32,32]"), ('{"b": 1, "a": 2}', '{"a":2,"b":1}'), (" sgd ", "sgd")])
def test_values_are_compared_as_canonical_text(value, text):
    assert normalised(value) == text


@pytest.mark.parametrize("column, factor", [("arch.name", "architecture"), ("arch.widths", "width/depth"),
                                            ("optimizer.lr", "learning rate"), ("optimizer.momentum", "optimizer"),
                                            ("warmup_epochs", "lr schedule"), ("init.seed", "initialization"),
                                            ("dataset.name", "other")])
def test_every_config_field_belongs_to_one_factor(column, factor):
    assert factor_of(column) == factor and factor in FACTORS


def test_rows_archs_and_labels_of_a_table():
    trajectories = table()
    assert run_mask(trajectories).tolist() == [True] * 6 + [False]
    assert geodesic_mask(trajectories).tolist() == [False] * 6 + [True] and geodesic_row(trajectories) == 6
    assert archs_of(trajectories).tolist() == ["fc"] * 4 + ["allcnn"] * 2 + ["geodesic"]
    frame = config_frame(trajectories)
    assert frame.loc[6].tolist() == [""] * frame.shape[1]  # the geodesic has no config
    labels = configuration_labels(trajectories)
    assert labels.tolist() == ["fc \u00b7 sgd lr 0.1"] * 2 + ["fc \u00b7 adam lr 0.001"] * 2 + \
        ["allcnn \u00b7 sgd lr 0.1"] * 2 + ["geodesic"]
    assert configuration_archs(trajectories) == ["allcnn", "fc", "fc", "geodesic"]


def test_a_table_that_is_not_one_is_refused_in_one_line():
    with pytest.raises(ResultsError, match="expected a pandas DataFrame, got list"):
        check_trajectories([])
    with pytest.raises(ResultsError, match="missing column"):
        configuration_labels(pd.DataFrame({"run": ["a"]}))
    with pytest.raises(ResultsError, match="expected one row of kind 'geodesic', found 0"):
        geodesic_row(table().iloc[:6])
    with pytest.raises(ResultsError, match="'nope' is not a configuration"):
        configuration_archs(table(), ["nope"])


def test_the_analysis_names_the_same_functions():
    assert analysis.configuration_labels is configurations.configuration_labels
    assert analysis.configuration_archs is configurations.configuration_archs and analysis.FACTORS is FACTORS
