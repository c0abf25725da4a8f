"""The notebook API over a finished study (inpca.results), on a hand-made results folder."""

import numpy as np
import pytest

import inpca.results
from inpca.errors import ResultsError
from inpca.files import write_h5

BLOCKS = {"ref": 2, "b000": 3}


def make_results(root, stale=()):
    """results/store/index.tsv and the train tiles of a 5-point study in blocks ref and b000 (+ stale tiles)."""
    points = [(block, row) for block, n in BLOCKS.items() for row in range(n)]
    rng = np.random.default_rng(0)
    D = rng.random((len(points), len(points)))
    D = D + D.T
    np.fill_diagonal(D, 0.0)
    (root / "store").mkdir(parents=True)
    lines = ["point\tblock\trow\trun\tkind"] + [f"{i}\t{block}\t{row}\t{'P0' if block == 'ref' else 'r1'}\t"
                                              f"{'reference' if block == 'ref' else 'run'}"
                                              for i, (block, row) in enumerate(points)]
    (root / "store/index.tsv").write_text("\n".join(lines) + "\n")
    start = {"ref": 0, "b000": 2}
    for a, b in [("ref", "ref"), ("ref", "b000"), ("b000", "b000"), *stale]:
        if a in start and b in start:
            tile = D[start[a]:start[a] + BLOCKS[a], start[b]:start[b] + BLOCKS[b]]
        else:
            tile = np.ones((7, 7))

        def fill(f, tile=tile):
            f.create_dataset("D", data=tile)
            f.attrs.update({"metric": "bhattacharyya", "n_samples": 10})

        write_h5(root / f"distances/train/tiles/{a}-{b}.h5", fill)
    return D


def test_distances_read_the_tiles_the_study_lists_and_ignore_a_stale_one(tmp_path):
    """A tile of block b004 stays when store.blocks is lowered; it once raised a bare KeyError: 'b004'."""
    D = make_results(tmp_path, stale=[("b004", "b004"), ("ref", "b004")])
    with inpca.results.load(tmp_path) as study:
        assert np.array_equal(study.distances("train")[()], D)


def test_a_missing_tile_is_one_line_naming_it_and_the_command_that_makes_it(tmp_path):
    make_results(tmp_path)
    (tmp_path / "distances/train/tiles/ref-b000.h5").unlink()
    with inpca.results.load(tmp_path) as study, pytest.raises(ResultsError) as info:
        study.distances("train")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'distances/train/tiles/ref-b000.h5'}: not made yet (1 of the study's 3 "
                              "tiles missing); make them with: ")
    assert message.endswith(" --cores all distances") and "\n" not in message


def test_a_tiled_matrix_given_a_tile_of_a_block_the_index_does_not_list_names_it(tmp_path):
    from inpca.tiles import TiledMatrix

    make_results(tmp_path, stale=[("b004", "b004")])
    tiles = {tuple(p.stem.split("-")): p for p in (tmp_path / "distances/train/tiles").glob("*.h5")}
    with pytest.raises(ResultsError, match=r"b004-b004.h5: a tile of blocks b004 x b004, but .*index.tsv lists the "
                                           r"blocks ref, b000; a stale file of an earlier study\?"):
        TiledMatrix(tiles, tmp_path / "store/index.tsv")
