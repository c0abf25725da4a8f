"""Rule train_run: train one network of the grid -> results/runs/{run}.h5."""

from inpca.logs import run_script


def main(smk):
    import json

    from inpca.train import train_run

    cfg = smk.config
    train_run(
        json.loads(smk.params.run),
        smk.wildcards.run,
        smk.output.run,
        dataset_spec=cfg["dataset"],
        device=cfg["device"],
        threads=smk.threads,
        eval_batch_size=cfg["train"]["eval_batch_size"],
        state_dir=smk.params.state_dir,
        state_every_epochs=cfg["train"]["state_every_epochs"],
        start_weights=smk.input.get("corner"),
    )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
