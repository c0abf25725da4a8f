# Stage 2: the probability store, one file per block of runs plus the reference block and index.tsv.


rule store_reference:
    input:
        unpack(get_reference_inputs),
    output:
        "<results>/store/ref.h5",
    log:
        "<logs>/store_reference.log",
    params:
        dataset=get_dataset_identity(),
        geodesic_points=config["reference"]["geodesic_points"],
        progress_mode=config["progress"]["mode"],
        version=RESULTS_VERSION["store"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/store_reference.py"


rule store_corners:
    input:
        corners=[f"<results>/corners/{corner}.h5" for corner in STUDY.corners],
        reference="<results>/store/ref.h5",
    output:
        f"<results>/store/{CORNERS_BLOCK}.h5",
    log:
        "<logs>/store_corners.log",
    params:
        corners=list(STUDY.corners),
        geodesic_points=config["reference"]["geodesic_points"],
        progress_mode=config["progress"]["mode"],
        sum_tolerance=config["store"]["sum_tolerance"],
        version=RESULTS_VERSION["store"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/store_corners.py"


rule store_block:
    input:
        runs=get_block_runs,
        reference="<results>/store/ref.h5",
    output:
        "<results>/store/{block}.h5",
    log:
        "<logs>/store_block/{block}.log",
    benchmark:
        "<logs>/benchmarks/store_block/{block}.tsv"
    params:
        sum_tolerance=config["store"]["sum_tolerance"],
        progress_mode=config["progress"]["mode"],
        layout=config["store"]["layout"],
        version=RESULTS_VERSION["store"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/store_block.py"


rule store_index:
    input:
        blocks=get_store_blocks(),
    output:
        "<results>/store/index.tsv",
    log:
        "<logs>/store_index.log",
    params:
        blocks=STUDY.point_blocks,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/store_index.py"
