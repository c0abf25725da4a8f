"""Rule embed: InPCA of one split's distance tiles, read in place -> results/embedding/{split}.h5.

Settings it reads: as params (a change reruns the job) embedding.n_components, embedding.solver (which tiles
it reads, distances or landmark columns, the rule's inputs decide: embedding.method); from the config
(how, not what: a change reruns nothing) threads: (BLAS threads).
"""

from inpca.logs import run_script


def main(smk):
    from inpca.embedding_file import embed
    from inpca.tiles import named_tiles

    embed(
        named_tiles(smk.input),
        smk.input.index,
        smk.output[0],
        split=smk.wildcards.split,
        n_components=smk.params.n_components,
        solver=smk.params.solver,
        train_embedding=smk.input.get("train_embedding"),
        threads=smk.threads,
    )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
