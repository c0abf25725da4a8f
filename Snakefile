# inpca: train a grid of networks, record their predictions, and map all training trajectories into
# one picture with InPCA (Mao et al., PNAS 2024). This file is the table of contents; each stage
# lives in rules/<stage>.smk, and each rule runs a thin script of scripts/ that turns the job into a
# call of the `inpca` package (a script may serve several rules of one kind, e.g. assemble_distances.py).

from snakemake.utils import min_version

min_version("9.19")


# The default study; a --configfile is a whole study of its own and replaces it (rules/common.smk).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/corners.smk"
include: "rules/train.smk"
include: "rules/store.smk"
include: "rules/distance.smk"
include: "rules/embed.smk"
include: "rules/plots.smk"
include: "rules/trajectories.smk"
include: "rules/analysis.smk"
include: "rules/atlas.smk"


# Each target also asks for the intermediates it is built from (get_kept_files in rules/common.smk):
# Snakemake rebuilds a missing intermediate only when a target asks for it.


rule all:
    default_target: True
    localrule: True
    input:
        get_all_outputs(),


rule corners:
    localrule: True
    input:
        get_corner_files(),


rule train:
    localrule: True
    input:
        get_corner_files(),
        get_run_files(),


rule store:
    localrule: True
    input:
        get_run_files(),
        "<results>/runs.tsv",
        "<results>/store/index.tsv",
        get_store_blocks(),


rule distances:
    localrule: True
    input:
        expand("<results>/distances/{split}.h5", split=STUDY.splits),
        get_kept_files(),


rule embedding:
    localrule: True
    input:
        expand("<results>/embedding/{split}.h5", split=STUDY.splits),
        get_kept_files(),


rule plots:
    localrule: True
    input:
        get_plot_files(),
        get_kept_files(),


rule trajectories:
    localrule: True
    input:
        "<results>/trajectories/index.tsv",
        expand("<results>/analysis/{split}/equal_progress.h5", split=STUDY.splits),
        get_kept_files(trajectories=True),


rule analysis:
    localrule: True
    input:
        get_analysis_files(),
        get_kept_files(trajectories=True),


rule atlas:
    localrule: True
    input:
        "<results>/runs.tsv",
        get_atlas_outputs(),
