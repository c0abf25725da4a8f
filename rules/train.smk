# Stage 1: one training job per network of the grid, one import job per recorded run file.


rule runs_table:
    localrule: True
    output:
        "<results>/runs.tsv",
    log:
        "<logs>/runs_table.log",
    params:
        rows=runs_table_rows(STUDY),
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/runs_table.py"


rule train_run:
    wildcard_constraints:
        run=GRID_RUN_PATTERN,
    input:
        # the weights of the corner the run starts from (none for the default init)
        unpack(get_train_inputs),
    output:
        run="<results>/runs/{run}.h5",
    log:
        "<logs>/train/{run}.log",
    benchmark:
        "<logs>/benchmarks/train/{run}.tsv"
    params:
        # The run's canonical config is its identity: a change retrains it. Device, threads and
        # data_dir are read from the config by the script, so changing them retrains nothing.
        run=get_run_config,
        version=RESULTS_VERSION["train"],
        state_dir=get_state_dir,
    threads: config["train"]["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/train.py"


rule import_run:
    wildcard_constraints:
        run=IMPORTED_RUN_PATTERN,
    input:
        unpack(get_import_inputs),
    output:
        "<results>/runs/{run}.h5",
    log:
        "<logs>/import_run/{run}.log",
    params:
        sum_tolerance=config["store"]["sum_tolerance"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/import_run.py"
