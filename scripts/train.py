"""Rule train_run: train one network of the grid -> results/runs/{run}.h5.

Settings it reads: as params (a change reruns the job) the run's config; from the config (how, not what: a
change reruns nothing) dataset (where its files are), device, train.eval_batch_size, train.state_every_epochs.
"""

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
