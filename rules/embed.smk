# Stage 4: InPCA of each split's distance matrix, read from its tiles.


rule embed:
    input:
        # the tiles themselves: the assembled matrix (target `distances`) would be a second copy
        unpack(get_embedding_tiles),
        unpack(get_train_embedding),
        index="<results>/store/index.tsv",
    output:
        "<results>/embedding/{split}.h5",
    log:
        "<logs>/embed/{split}.log",
    benchmark:
        "<logs>/benchmarks/embed/{split}.tsv"
    params:
        n_components=config["embedding"]["n_components"],
        solver=config["embedding"]["solver"],
        version=RESULTS_VERSION["embedding"],
    # BLAS threads for the eigensolver; local runs scale this down to --cores
    threads: 4
    resources:
        mem_mb=embed_mem_mb,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/embed.py"
