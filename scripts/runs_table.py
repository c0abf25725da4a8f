"""Rule runs_table: every run of the study and its fields -> results/runs.tsv.

Settings it reads: as params (a change reruns the job) the runs' configs.
"""

from inpca.logs import run_script


def main(smk):
    import csv

    rows = smk.params.rows
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(smk.output[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
