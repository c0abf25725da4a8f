"""A study's results folder and the commands that make it: the marker that names a folder's study, the
folder a config file's study writes to, and the Snakemake command a remedy prints. A leaf of the
package (standard library only), so that the config (:mod:`inpca.config`) and the errors
(:mod:`inpca.errors`, whose remedies print these commands) both use it without importing each other.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

#: The default study's folder; the study of a config file `<name>.yaml` writes to `results-<name>`.
DEFAULT_RESULTS = "results"
#: The file in a study's folder that names the config file whose study it holds.
STUDY_MARKER = ".inpca-study"


def snakemake_command(workdir=None) -> str:
    """How to start the Snakemake that runs this process, as the user would type it in the study's
    folder: ``snakemake`` when that name finds it on PATH, else its path (relative when it lies below
    the working directory, or below `workdir` for a command that first changes to it, e.g.
    ``.venv/bin/snakemake`` after ``make run``). Rule scripts and the
    notebook API run under the Python of Snakemake's environment, whose bin folder holds it."""
    beside = Path(sys.executable).parent / "snakemake"
    if not beside.exists():
        return "snakemake"
    found = shutil.which("snakemake")
    if found and os.path.samefile(found, beside):
        return "snakemake"
    try:
        return str(beside.relative_to(Path(workdir or Path.cwd()).resolve()))
    except ValueError:
        return str(beside)


def folder_of_config(config_file: Path) -> str:
    """The folder of the study of a config file: `results` for a config.yaml, else `results-<name>`."""
    return DEFAULT_RESULTS if config_file.name == "config.yaml" else f"{DEFAULT_RESULTS}-{config_file.stem}"


def study_config_file(owner: str) -> str:
    """The config file that is the study, from an owner string of :func:`results_folder` (the last of
    the config files it names)."""
    return owner.split(", ")[-1]


def study_command(path=None, target: str = "") -> str:
    """The Snakemake command that makes `target` (default: everything) of the study holding `path` (a
    file or folder under a study's results folder): with ``--configfile`` when the folder's marker names
    another config file than config.yaml, so that a printed remedy reruns that study, not the default
    one. The target goes before --configfile, which takes every word after it as a config file."""
    configfile, workdir = "", None
    folder = study_folder(path) if path is not None else None
    if folder is not None:
        config_file = study_config_file((folder / STUDY_MARKER).read_text().strip())
        configfile = "" if Path(config_file).name == "config.yaml" else f" --configfile {config_file}"
        workdir = folder.resolve().parent
    return f"{_snakemake_in(workdir)} --cores all{' ' + target if target else ''}{configfile}"


def _snakemake_in(workdir: Path | None) -> str:
    """How to start Snakemake for the study run from `workdir` (the folder above its results): Snakemake
    runs a study from the folder that holds its Snakefile, so when that is not the working directory
    (a notebook, the atlas command elsewhere) the command starts with cd there, and runs as printed
    from anywhere."""
    if workdir is None or not (workdir / "Snakefile").is_file() or workdir == Path.cwd().resolve():
        return snakemake_command()
    return f"cd {shlex.quote(str(workdir))} && {snakemake_command(workdir)}"


def command_for_folder(folder) -> str:
    """The command that would make the results folder `folder` that does not exist yet: the default
    study for `results`, and for `results-NAME` the study of NAME.yaml (beside the Snakefile or in
    presets/; when there is none, that is said); a folder named by some config's `results:` key cannot
    be traced back to it, which is said."""
    folder = Path(folder)
    workdir = folder.resolve().parent
    command = f"{_snakemake_in(workdir)} --cores all"
    if folder.name == DEFAULT_RESULTS:
        return command
    if folder.name.startswith(f"{DEFAULT_RESULTS}-"):
        stem = folder.name[len(DEFAULT_RESULTS) + 1:]
        candidates = [Path(f"{stem}{ext}") for ext in (".yaml", ".yml")]
        candidates += [Path("presets") / c for c in candidates]
        config_file = next((c for c in candidates if (workdir / c).is_file()), None)
        if config_file is None:
            return f"{command} --configfile {candidates[0]} (no such file in {workdir}: that study's config file)"
        return f"{command} --configfile {config_file}"
    return f"{command} --configfile <the config file whose results: key names {folder}>"


def study_folder(path) -> Path | None:
    """The results folder of the study that holds `path` (the nearest folder at or above it with the
    study marker), or None for a file that no study made (a user's own recording, say)."""
    here = Path(path)
    return next((folder for folder in (here, *here.parents) if (folder / STUDY_MARKER).is_file()), None)


def study_config_files(folder) -> list[Path] | None:
    """The config files a study's folder was made from (its marker names them, relative to the folder
    of the Snakefile, which holds the results folder), or None when the folder has no marker."""
    marker = Path(folder) / STUDY_MARKER
    if not marker.is_file():
        return None
    return [Path(folder).resolve().parent / name for name in marker.read_text().strip().split(", ")]
