"""Rule pretrain_corner: drive one corner's network far from ignorance -> results/corners/{corner}.pt, .h5.

Settings it reads: as params (a change reruns the job) the corner's config (data set, architecture, resolved
init); from the config (how, not what: a change reruns nothing) dataset (where its files are), device,
train.eval_batch_size, train.state_every_epochs.
"""

from inpca.logs import run_script


def main(smk):
    import json

    from inpca.corners import pretrain_corner

    cfg = smk.config
    pretrain_corner(
        json.loads(smk.params.corner),
        smk.wildcards.corner,
        smk.output.weights,
        smk.output.predictions,
        dataset_spec=cfg["dataset"],
        device=cfg["device"],
        threads=smk.threads,
        eval_batch_size=cfg["train"]["eval_batch_size"],
        state_dir=smk.params.state_dir,
        state_every_epochs=cfg["train"]["state_every_epochs"],
    )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
