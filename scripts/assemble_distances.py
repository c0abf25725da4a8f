"""Rules assemble_distances and assemble_equal_progress: the tiles of one split -> one matrix in index order
(results/distances/{split}.h5, results/analysis/{split}/equal_progress.h5).

Settings it reads: as params (a change reruns the job) none.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.tiles import assemble, named_tiles

    assemble(named_tiles(smk.input), smk.input.index, smk.output[0], smk.wildcards.split)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
