"""The block eigensolver of the exact embedding (inpca.block_eigen, InPCA(solver="block")): a planted
spectrum with negative eigenvalues and small gaps, agreement with the dense solver and ARPACK, the
passes over real tile files, determinism, rank-deficient and degenerate inputs."""

import csv

import h5py
import numpy as np
import pytest

from inpca.block_eigen import MAX_BLOCKS, double_centred_eigsh, stored_parts
from inpca.embedding import InPCA
from inpca.files import write_h5
from inpca.tiles import TiledMatrix
from unit.test_embedding import geodesic_distances
from unit.test_embedding import trajectory_distances  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

# The wanted spectrum, sorted by |lambda|: both signs, |lambda_2| / |lambda_3| = 1.001 and
# |lambda_10| / |lambda_11| = 1.002, and below it a tail of mixed signs.
PLANTED_TOP = np.array([60.0, -30.0, 29.97, 20.0, -15.0, 12.0, 11.5, -11.0, 10.5, 10.0])
M_PLANTED = 500
OFFSET = 4.0  # the smallest even offset that keeps D >= 0 here


def planted_distances(M=M_PLANTED, seed=5):
    """D whose W = -1/2 J D J has the spectrum PLANTED_TOP, then lambda_11 = -9.98 and a tail of
    190 eigenvalues of both signs decaying from 9.5, plus a bulk (M - 201 - 1 directions) at OFFSET / 2.

    W0 = V diag(lambda0) V^T with V orthonormal and orthogonal to 1 gives the squared pseudo-Euclidean
    distances D0_ij = W0_ii + W0_jj - 2 W0_ij, so that -1/2 J D0 J = W0. Adding c to every distance
    off the diagonal (c (1 1^T - I)) makes D non-negative and adds c / 2 to every eigenvalue in the
    range of J, so lambda0 = wanted - c / 2. Returns (D, wanted eigenvalues, their eigenvectors)."""
    rng = np.random.default_rng(seed)
    tail = np.geomspace(9.5, 0.5, 190) * np.where(rng.random(190) < 0.4, -1.0, 1.0)
    wanted = np.concatenate([PLANTED_TOP, [-9.98], tail])
    basis = rng.standard_normal((M, wanted.size + 1))
    basis[:, 0] = 1.0
    V = np.linalg.qr(basis)[0][:, 1:]  # orthonormal, orthogonal to the constant vector
    c = OFFSET
    W0 = (V * (wanted - c / 2)) @ V.T
    diagonal = np.diag(W0)
    D = diagonal[:, None] + diagonal[None, :] - 2.0 * W0 + c * (1.0 - np.eye(M))
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0.0)
    assert D.min() >= 0.0
    return D, wanted, V


def relative_rms(a, b):
    return np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2))


def test_planted_spectrum_with_negative_eigenvalues_and_small_gaps():
    D, wanted, V = planted_distances()
    k = PLANTED_TOP.size
    model = InPCA(n_components=k, solver="block").fit(D)
    assert model.solver_ == "block" and 1 <= model.n_passes_ <= 12
    np.testing.assert_allclose(model.eigenvalues_, PLANTED_TOP, rtol=1e-10)
    assert (model.eigenvalues_ < 0).sum() == 3
    # each eigenvector, though lambda_2 and lambda_3 differ by 0.1 %, and lambda_10 by 0.2 % from
    # lambda_11 (left out)
    cosines = np.abs(np.sum(model.components_ * V[:, :k], axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-10)
    dense = InPCA(n_components=k, solver="dense").fit(D)
    np.testing.assert_allclose(model.eigenvalues_, dense.eigenvalues_, rtol=1e-10)
    assert relative_rms(model.coords_[:, :3], dense.coords_[:, :3]) < 1e-8
    np.testing.assert_allclose(model.explained_stress_, dense.explained_stress_, atol=1e-12)
    assert model.frobenius_norm_ == pytest.approx(np.sqrt(np.sum(wanted**2) + (M_PLANTED - 202) * (OFFSET / 2) ** 2),
                                                    rel=1e-12)


def test_a_full_basis_restarts_and_still_converges():
    """A block of 4 with room for 10 blocks: the 10 pairs need thick restarts (56 passes, where a
    basis of 100 blocks needs 34)."""
    D, _, V = planted_distances()
    fitted = double_centred_eigsh(D, 10, block_bytes=2**20, tol=1e-12, block_size=4, max_basis=40)
    assert fitted.n_passes > 40 / 4  # it did restart
    order = np.argsort(-np.abs(fitted.eigenvalues))
    np.testing.assert_allclose(fitted.eigenvalues[order], PLANTED_TOP, rtol=1e-10)
    cosines = np.abs(np.sum(fitted.eigenvectors[:, order] * V[:, :10], axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-9)


def test_no_convergence_within_the_passes_allowed_is_an_error():
    D, _, _ = planted_distances()
    with pytest.raises(np.linalg.LinAlgError, match="did not converge in 3 passes"):
        double_centred_eigsh(D, 10, block_bytes=2**20, tol=1e-12, block_size=2, max_basis=12, max_passes=3)


def test_block_agrees_with_dense_and_lanczos(trajectory_distances):  # noqa: F811
    D = trajectory_distances
    dense = InPCA(n_components=10, solver="dense").fit(D)
    lanczos = InPCA(n_components=10, solver="lanczos").fit(D)
    block = InPCA(n_components=10, solver="block").fit(D)
    assert (block.eigenvalues_ < 0).any()
    for reference in (dense, lanczos):
        np.testing.assert_allclose(block.eigenvalues_, reference.eigenvalues_, rtol=1e-10)
        np.testing.assert_allclose(block.coords_, reference.coords_, atol=1e-9)
        assert relative_rms(block.coords_[:, :3], reference.coords_[:, :3]) < 1e-9
        np.testing.assert_allclose(block.explained_stress_, reference.explained_stress_, atol=1e-12)
        np.testing.assert_allclose(block.column_means_, reference.column_means_, rtol=1e-13)
    assert block.frobenius_norm_ == pytest.approx(dense.frobenius_norm_, rel=1e-12)
    assert block.n_passes_ < lanczos.n_matvec_ / 3
    assert block.n_matvec_ == block.n_passes_ * 40  # k + 30 vectors per pass
    # out-of-sample projection of the fitted points gives their coordinates back
    np.testing.assert_allclose(block.transform(D), block.coords_, atol=1e-9)


def test_block_fits_are_bit_identical_and_the_seed_changes_only_rounding(trajectory_distances):  # noqa: F811
    first = InPCA(n_components=6, solver="block", random_state=3).fit(trajectory_distances)
    second = InPCA(n_components=6, solver="block", random_state=3).fit(trajectory_distances)
    np.testing.assert_array_equal(first.eigenvalues_, second.eigenvalues_)
    np.testing.assert_array_equal(first.components_, second.components_)
    assert first.frobenius_norm_ == second.frobenius_norm_
    other = InPCA(n_components=6, solver="block", random_state=4).fit(trajectory_distances)
    assert not np.array_equal(other.components_, first.components_)
    np.testing.assert_allclose(other.eigenvalues_, first.eigenvalues_, rtol=1e-11)
    np.testing.assert_allclose(other.components_, first.components_, atol=1e-9)


def test_large_common_offset_takes_the_exactly_centred_norm_in_a_later_pass(trajectory_distances):  # noqa: F811
    """J (c 1 1^T) J = 0: the offset leaves W unchanged, but the one-pass expansion of ||W||_F would
    cancel most digits (see test_embedding); the block solver sums the centred entries in its second
    pass instead of making one more."""
    reference = InPCA(n_components=5, solver="block").fit(trajectory_distances)
    shifted = InPCA(n_components=5, solver="block").fit(trajectory_distances + 1e4)
    assert shifted.frobenius_norm_ == pytest.approx(reference.frobenius_norm_, rel=1e-12)
    np.testing.assert_allclose(shifted.eigenvalues_, reference.eigenvalues_, rtol=1e-9)
    assert shifted.n_passes_ <= reference.n_passes_ + 1


def test_rank_deficient_and_degenerate_inputs():
    # 60 points at 3 distinct places: W has rank 2, the other 3 wanted eigenvalues are 0
    places = geodesic_distances(np.array([0.0, 0.4, 1.0]), labels=(3, 1))
    repeat = np.repeat(np.arange(3), 20)
    D = places[np.ix_(repeat, repeat)]
    block = InPCA(n_components=5, solver="block").fit(D)
    dense = InPCA(n_components=5, solver="dense").fit(D)
    np.testing.assert_allclose(block.eigenvalues_[:2], dense.eigenvalues_[:2], rtol=1e-10)
    np.testing.assert_allclose(block.eigenvalues_[2:], 0.0, atol=1e-12 * dense.eigenvalues_[0])
    np.testing.assert_allclose(block.coords_[:, :2], dense.coords_[:, :2], atol=1e-9)
    # the equidistant simplex: W = J / 2, one eigenvalue 1/2 with multiplicity M - 1
    M = 50
    simplex = InPCA(n_components=4, solver="block").fit(1.0 - np.eye(M))
    np.testing.assert_allclose(simplex.eigenvalues_, 0.5, rtol=1e-12)
    np.testing.assert_allclose(simplex.components_.T @ simplex.components_, np.eye(4), atol=1e-12)
    # fewer points than a block: the Krylov space is the whole range of J after a pass or two
    small = geodesic_distances(np.linspace(0, 1, 12), labels=(3, 0, 7))
    exact = InPCA(n_components=8, solver="dense").fit(small).eigenvalues_  # down to 4e-8 lambda_1
    np.testing.assert_allclose(InPCA(n_components=8, solver="block").fit(small).eigenvalues_, exact,
                               rtol=1e-10, atol=1e-14 * exact[0])


def test_auto_uses_lanczos_in_memory_and_block_for_a_matrix_on_disk(tmp_path):
    estimator = InPCA(n_components=10)
    D = np.zeros((5000, 5000))
    assert estimator._choose_solver(5000, 10, D) == "lanczos"
    path = tmp_path / "d.npy"
    np.save(path, np.zeros((3, 3)))
    assert estimator._choose_solver(5000, 10, np.load(path, mmap_mode="r")) == "block"
    with h5py.File(tmp_path / "d.h5", "w") as f:
        assert estimator._choose_solver(5000, 10, f.create_dataset("D", shape=(5000, 5000), dtype=np.float32)) == "block"
    assert estimator._choose_solver(1000, 10, np.load(path, mmap_mode="r")) == "dense"  # small: dense
    assert InPCA(n_components=49, solver="block")._choose_solver(50, 49, D) == "dense"  # k >= M - 1


# -- passes over tile files --------------------------------------------------------------------

def write_tiles(D, sizes, folder, dtype=np.float32):
    """D cut into the upper block-triangle of tiles of `sizes` points, written as the tile step
    writes them (inpca.files, dataset D, metric and n_samples), and an index.tsv; -> {pair: path}."""
    names = [f"b{i:03d}" for i in range(len(sizes))]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    tiles = {}
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            b = names[j]
            tile = D[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]].astype(dtype)

            def fill(f, tile=tile):
                f.create_dataset("D", data=tile, track_times=False)
                f.attrs.update({"metric": "bhattacharyya", "n_samples": 6})

            tiles[(a, b)] = folder / f"{a}-{b}.h5"
            write_h5(tiles[(a, b)], fill)
    with open(folder / "index.tsv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["point", "block", "row", "run", "kind"])
        for i, name in enumerate(names):
            for row in range(sizes[i]):
                writer.writerow([bounds[i] + row, name, row, f"run{i}", "run"])
    return tiles, folder / "index.tsv"


def bytes_of_one_pass(sizes, rows_per_slab, itemsize=4):
    """Every tile off the diagonal whole, every diagonal tile from its diagonal on, slab by slab."""
    total = sum(a * b for i, a in enumerate(sizes) for b in sizes[i + 1:])
    for size in sizes:
        total += sum((min(size, r0 + rows_per_slab) - r0) * (size - r0) for r0 in range(0, size, rows_per_slab))
    return total * itemsize


def test_tiles_yield_every_stored_number_once(tmp_path, trajectory_distances):  # noqa: F811
    D = trajectory_distances
    sizes = [150, 200, 250]
    tiles, index = write_tiles(D, sizes, tmp_path, dtype=np.float64)
    rebuilt = np.zeros_like(D)
    covered = np.zeros(D.shape, dtype=int)
    block_bytes = 8 * 250 * 64  # slabs of 64 rows
    with TiledMatrix(tiles, index) as tiled:
        for rows, columns, part, mirrored in stored_parts(tiled, block_bytes):
            rebuilt[rows, columns] = part
            covered[rows, columns] += 1
            if mirrored:
                rebuilt[columns, rows] = part.T
                covered[columns, rows] += 1
        assert tiled.bytes_read == bytes_of_one_pass(sizes, 64, itemsize=8) < tiled.stored_bytes
    assert np.all(covered == 1)
    assert np.array_equal(rebuilt, D)


def test_the_block_solver_reads_each_tile_once_per_pass(tmp_path, trajectory_distances):  # noqa: F811
    D = trajectory_distances
    sizes = [100, 150, 150, 200]
    tiles, index = write_tiles(D, sizes, tmp_path)
    block_bytes = 8 * 200 * 48  # slabs of 48 rows: several per tile
    in_memory = InPCA(n_components=10, solver="lanczos").fit(D.astype(np.float32).astype(np.float64))
    with TiledMatrix(tiles, index) as tiled:
        block = InPCA(n_components=10, solver="block", block_bytes=block_bytes).fit(tiled)
        assert tiled.bytes_read == block.n_passes_ * bytes_of_one_pass(sizes, 48)
        assert block.n_passes_ <= 12
    with TiledMatrix(tiles, index) as tiled:
        lanczos = InPCA(n_components=10, solver="lanczos", block_bytes=block_bytes).fit(tiled)
        lanczos_reads = tiled.bytes_read / tiled.stored_bytes
    print(f"passes over the tiles: block {block.n_passes_}, Lanczos {lanczos_reads:.1f} ({lanczos.n_matvec_} products)")
    assert lanczos_reads > 2 * block.n_passes_
    np.testing.assert_allclose(block.eigenvalues_, in_memory.eigenvalues_, rtol=1e-10)
    assert relative_rms(block.coords_[:, :3], in_memory.coords_[:, :3]) < 1e-9
    np.testing.assert_allclose(block.explained_stress_, lanczos.explained_stress_, atol=1e-12)


def test_the_first_pass_shows_every_stored_number_once_to_check_part(trajectory_distances):  # noqa: F811
    D = trajectory_distances
    seen = np.zeros(D.shape, dtype=int)

    def check_part(part, i0, j0):
        assert np.array_equal(part, D[i0:i0 + part.shape[0], j0:j0 + part.shape[1]])
        seen[i0:i0 + part.shape[0], j0:j0 + part.shape[1]] += 1

    fitted = double_centred_eigsh(D, 5, block_bytes=8 * 600 * 50, tol=1e-12, check_part=check_part)
    assert fitted.n_passes > 1  # and only the first pass was shown
    # each position read at most once, and of every pair (i, j), (j, i) at least one
    assert seen.max() == 1 and np.all(seen + seen.T >= 1)
    assert seen.sum() < 0.6 * D.size  # about half: the upper row blocks


def test_hdf5_and_memmap_inputs_go_through_upper_row_blocks(tmp_path, trajectory_distances):  # noqa: F811
    D = trajectory_distances
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("D", data=D.astype(np.float32), chunks=(32, D.shape[1]))
    np.save(tmp_path / "d.npy", D)
    reference = InPCA(n_components=8, solver="dense").fit(D.astype(np.float32).astype(np.float64))
    with h5py.File(tmp_path / "d.h5") as f:
        from_file = InPCA(n_components=8, solver="block", block_bytes=2**16).fit(f["D"])
    np.testing.assert_allclose(from_file.eigenvalues_, reference.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(from_file.coords_, reference.coords_, atol=1e-9)
    mapped = InPCA(n_components=8, solver="block", block_bytes=2**16).fit(np.load(tmp_path / "d.npy", mmap_mode="r"))
    np.testing.assert_allclose(mapped.eigenvalues_, InPCA(n_components=8, solver="dense").fit(D).eigenvalues_,
                               rtol=1e-10)


def test_the_basis_stays_within_max_blocks_on_realistic_input(trajectory_distances):  # noqa: F811
    """Trajectory distances converge before the basis is full (no restart, no extra memory)."""
    model = InPCA(n_components=10, solver="block").fit(trajectory_distances)
    assert model.n_passes_ <= MAX_BLOCKS
