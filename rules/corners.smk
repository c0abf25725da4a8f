# Stage 0 (only in a study with a non-default `init`): one job per corner, a network driven far from
# ignorance (pre-trained on random labels or a small subset, or perturbed), that its runs start from.


rule pretrain_corner:
    wildcard_constraints:
        corner=CORNER_PATTERN,
    output:
        weights="<results>/corners/{corner}.pt",
        predictions="<results>/corners/{corner}.h5",
    log:
        "<logs>/pretrain_corner/{corner}.log",
    benchmark:
        "<logs>/benchmarks/pretrain_corner/{corner}.tsv"
    params:
        # The corner's config (data set, architecture, resolved init) is its identity: runs that
        # differ in anything else share it, and only a change to it pre-trains again.
        corner=get_corner_config,
        version=RESULTS_VERSION["corners"],
        state_dir=get_corner_state_dir,
    threads: config["train"]["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=corner_mem_mb,
        runtime=corner_runtime,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/pretrain_corner.py"
