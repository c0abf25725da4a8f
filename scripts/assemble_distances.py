"""Rule assemble_distances: the tiles of one split -> results/distances/{split}.h5 in index order."""

from inpca.logs import run_script


def main(smk):
    from inpca.tiles import assemble

    tiles = {tuple(name.split("-")): path for name, path in smk.input.items() if name != "index"}
    assemble(tiles, smk.input.index, smk.output[0], smk.wildcards.split)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
