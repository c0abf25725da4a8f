# Stage 3: Bhattacharyya distances, one job per pair of store blocks (all of them, or each block's
# distances to the landmarks of the other with embedding.method landmarks), assembled on demand.


rule distance_tile:
    input:
        a="<results>/store/{a}.h5",
        b="<results>/store/{b}.h5",
    output:
        "<results>/distances/{split}/tiles/{a}-{b}.h5",
    log:
        "<logs>/distance_tile/{split}/{a}-{b}.log",
    benchmark:
        "<logs>/benchmarks/distance_tile/{split}/{a}-{b}.tsv"
    params:
        metric=config["distance"]["metric"],
        dtype=config["distance"]["dtype"],
        sum_tolerance=config["store"]["sum_tolerance"],
        version=RESULTS_VERSION["distance"],
    threads: config["distance"]["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=tile_mem_mb,
        runtime=tile_runtime,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/distance_tile.py"


rule landmark_tile:
    input:
        a="<results>/store/{a}.h5",
        b="<results>/store/{b}.h5",
    output:
        "<results>/distances/{split}/landmark_tiles/{a}-{b}.h5",
    log:
        "<logs>/landmark_tile/{split}/{a}-{b}.log",
    benchmark:
        "<logs>/benchmarks/landmark_tile/{split}/{a}-{b}.tsv"
    params:
        metric=config["distance"]["metric"],
        dtype=config["distance"]["dtype"],
        sum_tolerance=config["store"]["sum_tolerance"],
        every=config["embedding"]["landmark_every"],
        version=RESULTS_VERSION["distance"],
    threads: config["distance"]["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=tile_mem_mb,
        runtime=tile_runtime,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/landmark_tile.py"


rule assemble_distances:
    input:
        unpack(get_tiles),
        index="<results>/store/index.tsv",
    output:
        "<results>/distances/{split}.h5",
    log:
        "<logs>/assemble_distances/{split}.log",
    benchmark:
        "<logs>/benchmarks/assemble_distances/{split}.tsv"
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/assemble_distances.py"
