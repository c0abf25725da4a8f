"""Rule atlas_place: one run of the study placed in the atlas checkpoint by checkpoint, with the forecast
of its end at each -> results/atlas/{run}.atlas.tsv (inpca.atlas.Atlas.trace).

Settings it reads: as params (a change reruns the job) atlas.path, atlas.split, atlas.k.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.atlas import Atlas
    from inpca.files import write_table

    with Atlas.load(smk.params.atlas) as atlas:
        write_table(atlas.trace(smk.input.run, split=smk.params.split, k=smk.params.k), smk.output[0])


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
