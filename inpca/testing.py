"""What the project's tests and benchmarks share: the real Snakemake run on a copy of this workflow, and
data written in real formats.

- :func:`copy_workflow`, :func:`snakemake`, :func:`dry_run`, :func:`job_counts`,
  :func:`split_distances`: the workflow's files and a study config copied into a folder, the
  Snakemake of this environment run there, its "Job stats" read back, a finished study's distances
  read from its tiles (tests/workflow, tests/cluster, benchmarks/dag.py).
- :func:`write_tiny_cifar10`, :func:`tiny_cifar10_arrays`: a tiny CIFAR-10 in the real on-disk format
  (Python-2 pickles of byte-string keys, as the official tarball extracts), with no download.
- :func:`chromium`, :func:`check_entry`, :func:`report_results`, :func:`missing_browser`: a Snakemake
  report opened in headless Chromium as a reader opens it (tests/workflow's browser test).

Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from .tiles import TiledMatrix, study_tile_paths

REPO = Path(__file__).resolve().parents[1]  # the repository: the workflow beside the package
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "report", "profiles", "envs", "inpca"]  # the schema is in inpca/


def copy_workflow(dest: Path, config: dict | None = None) -> Path:
    """The workflow's files and a study config (default: the tiny tests/workflow/config.yaml) in dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    text = (REPO / "tests/workflow/config.yaml").read_text()
    (dest / "config.yaml").write_text(text if config is None else yaml.safe_dump(config))
    return dest


def snakemake(workdir: Path, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
    """The real Snakemake of this venv on 2 cores in `workdir`; with `check`, a failure shows its output."""
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def dry_run(workdir: Path, *args) -> dict[str, int]:
    """Job counts of `snakemake -n`."""
    proc = snakemake(workdir, "-n", *args)
    return job_counts(proc.stdout + proc.stderr)


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (printed by dry runs and real runs), rule -> count, no total."""
    counts = {}
    if "Job stats:" in output:
        for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if not match:
                break
            counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def split_distances(workdir: Path, split: str):
    """The (M, M) distances of a finished study, read from its tiles (no assembled copy is made)."""
    index = workdir / "results/store/index.tsv"
    return TiledMatrix(study_tile_paths(workdir / f"results/distances/{split}/tiles", index), index)


# --------------------------------------------------------------------------------------------
# a tiny CIFAR-10 on disk
#
# Usage: root = write_tiny_cifar10(tmp_path / "cifar"), then pass root as dataset.data_dir.
#
# Format.  The official ``cifar-10-python.tar.gz`` extracts to ``cifar-10-batches-py/`` holding
# ``data_batch_1..5``, ``test_batch`` and ``batches.meta``: Python 2 pickles (protocol 2) of dicts
# whose keys are Python 2 ``str`` -- i.e. byte strings.  Loaded in Python 3 with
# ``encoding="bytes"`` the keys read as ``b"data"``, ``b"labels"``, ...; loaded the way torchvision
# does (``encoding="latin1"``) they read as ``"data"``, ``"labels"``.  A Python 3 ``bytes`` key
# would stay ``bytes`` under latin1 and torchvision would fail with ``KeyError: 'data'``, so this
# writer emits Python-2 string opcodes (``SHORT_BINSTRING``/``BINSTRING``) for keys and string
# values, exactly like the real files.  ``b"data"`` is uint8 (n, 3072) (row = 1024 R, 1024 G,
# 1024 B values of a 32x32 image, row-major), ``b"labels"`` a list of ints in 0..9.
#
# The md5 sums differ from the real files; inpca.data's CIFAR loader checks existence and
# readability instead of md5 (see ``inpca.data._cifar_class``).

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Py2Str(bytes):
    """Marks a byte string to be pickled as a Python 2 ``str``."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add an opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj: _Py2Str) -> None:
        data = bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _s(text: str) -> _Py2Str:
    return _Py2Str(text.encode("ascii"))


def _batch(label: str, x: np.ndarray, y: np.ndarray, start: int) -> dict:
    return {
        _s("batch_label"): _s(label),
        _s("labels"): [int(v) for v in y],
        _s("data"): np.ascontiguousarray(x, dtype=np.uint8),
        _s("filenames"): [_s(f"tiny_{start + i:06d}.png") for i in range(len(y))],
    }


def tiny_cifar10_arrays(n_train: int = 50, n_test: int = 20, seed: int = 0):
    """The arrays :func:`write_tiny_cifar10` writes: (x_train, y_train, x_test, y_test) with x
    uint8 NCHW (n, 3, 32, 32) and y int64, train in data_batch_1..5 order."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = np.resize(np.arange(10, dtype=np.int64), n)
        rng.shuffle(y)
        out += [x, y]
    return tuple(out)


def write_tiny_cifar10(root, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Create ``root/cifar-10-batches-py/`` with ``n_train`` train images split over
    data_batch_1..5 (as evenly as possible) and ``n_test`` test images; returns ``root``.

    The images are random uint8; the labels cycle through all 10 classes (shuffled), so every
    class occurs once n >= 10.  The same (n_train, n_test, seed) always writes the same bytes.
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    os.makedirs(folder, exist_ok=True)
    x_train, y_train, x_test, y_test = tiny_cifar10_arrays(n_train, n_test, seed)
    flat_train = x_train.reshape(n_train, 3072)
    bounds = np.linspace(0, n_train, len(TRAIN_FILES) + 1).round().astype(int)
    for i, name in enumerate(TRAIN_FILES):
        a, b = bounds[i], bounds[i + 1]
        _dump(_batch(f"training batch {i + 1} of 5", flat_train[a:b], y_train[a:b], a), folder / name)
    _dump(_batch("testing batch 1 of 1", x_test.reshape(n_test, 3072), y_test, 0), folder / "test_batch")
    per_batch = int(bounds[1] - bounds[0])
    _dump(
        {_s("num_cases_per_batch"): per_batch, _s("label_names"): [_s(c) for c in CLASSES], _s("num_vis"): 3072},
        folder / "batches.meta",
    )
    return root

# --------------------------------------------------------------------------------------------
# a report in a real browser
#
# A Snakemake report opened in headless Chromium the way a reader opens it: click the category in the
# menu, pick the entry's toggle and row, press its eye button; then what the entry shows (an image, or
# a page in an iframe). Used by the workflow test of the report.
#
# Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`; .ci/run
# installs them in CI) and are driven with selenium, told the driver's path so that selenium never
# tries to download a browser or driver of its own. The machines have no internet: Chromium starts
# without its background connections (update checks, sync, QUIC), with a fresh profile.

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Chromium's own flags: headless as root (no sandbox), no GPU, and nothing that reaches the network.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000",
                  # the 3-D map needs WebGL; without a GPU Chromium draws it in software (SwiftShader)
                  "--enable-unsafe-swiftshader")
TIMEOUT_S = 60


def chromium_paths() -> tuple[str | None, str | None]:
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    return browser, shutil.which("chromedriver")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        return ("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                ".ci/run installs them in CI)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium with a fresh profile, quit (and its profile removed) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    with tempfile.TemporaryDirectory(prefix="inpca-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            driver.set_page_load_timeout(TIMEOUT_S)
            yield driver
        finally:
            driver.quit()


def wait_for(driver, condition, what: str, timeout=TIMEOUT_S):
    """condition(driver)'s first truthy value; an AssertionError naming `what` after `timeout` seconds."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(WebDriverException,)).until(
            condition)
    except WebDriverException:  # TimeoutException is one
        raise AssertionError(f"{what}: not there after {timeout} s") from None


def report_results(driver, report_html: Path) -> tuple[dict, dict]:
    """The report's entries as its page holds them: path -> {labels, mime_type, data_uri, ...}, and
    path -> category."""
    driver.get(Path(report_html).resolve().as_uri())
    wait_for(driver, lambda d: d.execute_script("return typeof categories !== 'undefined' && categories"),
             "the report's categories")
    results = driver.execute_script("return results")
    categories = driver.execute_script("return categories")
    category_of = {path: cat for cat, subcats in categories.items() for paths in subcats.values() for path in paths}
    return results, category_of


def click(driver, find, what: str, until, timeout=TIMEOUT_S):
    """Click the element that `find(driver)` returns, as a reader does, until `until(driver)` shows
    that the click took effect; returns what `until` returned.

    The report is a page that draws itself: after it loads, its menu animates into place (CSS
    transitions) and its scripts attach their handlers. Meanwhile Chromium refuses a click that would
    land on another element ("element click intercepted"), and a click that lands before the handler
    is attached does nothing. So the element is looked up afresh and clicked again until its effect is
    there, or `timeout` passes."""
    def took_effect(d):
        element = find(d)
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        try:
            return wait_for(d, until, what, timeout=5)
        except AssertionError:
            return None

    return wait_for(driver, took_effect, what, timeout)


def open_entry(driver, report_html: Path, category: str, labels: dict, data_uri: str):
    """Open one entry as a reader does; returns the element that shows it (the <img> or <iframe> whose
    source is the entry's `data_uri`, its file in a .zip report)."""
    from selenium.webdriver.common.by import By

    driver.get(Path(report_html).resolve().as_uri())
    click(driver, lambda d: d.find_element(By.XPATH, f"//nav//a[normalize-space()={_xpath_str(category)}]"),
          f"the table of {category!r} after a click on its menu entry",
          until=lambda d: d.find_element(By.CSS_SELECTOR, "nav table"))
    # a label with two values is a toggle above the table; the others are its columns. The menu is
    # drawn again after each click, so elements are looked up afresh, never kept across a click.
    toggles = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav fieldset'), f => f.querySelector('span').textContent)")
    for name in toggles:
        toggle = f"toggle-{name}-{labels[name]}"
        click(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"nav fieldset label[for={_css_str(toggle)}]"),
              f"the toggle {name}={labels[name]!r} of {category!r} switched on",
              until=lambda d: d.find_element(By.ID, toggle).is_selected())

    def row_number(d):
        table = d.find_element(By.CSS_SELECTOR, "nav table")
        columns = [th.get_attribute("textContent") for th in table.find_elements(By.CSS_SELECTOR, "thead th")][:-1]
        want = [labels.get(column, "") for column in columns]
        for number, row in enumerate(table.find_elements(By.CSS_SELECTOR, "tbody tr"), start=1):
            if [td.get_attribute("textContent").strip() for td in row.find_elements(By.TAG_NAME, "td")][:-1] == want:
                return number
        return None

    number = wait_for(driver, row_number, f"the row {labels} in the report's {category!r} table", timeout=10)
    eye = f"nav table tbody tr:nth-child({number}) a[iconname=eye]"
    return click(driver, lambda d: d.find_element(By.CSS_SELECTOR, eye),
                 f"the view of {category} {labels} after a click on its eye button",
                 until=lambda d: d.execute_script(
                     "return Array.from(document.querySelectorAll('img, iframe'))"
                     ".find(e => e.getAttribute('src') === arguments[0])", data_uri))


def check_entry(driver, report_html: Path, path: str, entry: dict, category: str, workdir: Path) -> str:
    """Open the entry at `path` (relative to `workdir`) and assert that its content rendered; returns
    what was checked, in words."""
    where = f"{category} {entry['labels']} ({path})"
    mime = entry["mime_type"]
    try:
        shown = open_entry(driver, report_html, category, entry["labels"], entry["data_uri"])
    except AssertionError as error:
        raise AssertionError(f"{error} (a {mime} entry; the report shows images and HTML, other types "
                             "are only offered as downloads)") from None
    if mime.startswith("image/"):
        assert shown.tag_name == "img", f"{where}: a {shown.tag_name}, not an image"
        width = wait_for(driver, lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", shown), f"{where}: the image loaded", 20)
        with open(workdir / path, "rb") as f:
            assert width == int.from_bytes(f.read(24)[16:20], "big"), f"{where}: image {width} px wide"
        return f"image {width} px wide"
    assert mime == "text/html", f"{where}: a {mime} entry"
    assert shown.tag_name == "iframe", f"{where}: a {shown.tag_name}, not a page"
    driver.switch_to.frame(shown)
    try:
        if Path(path).name == "trajectories.html":
            return _check_plotly(driver, shown, where)
        if Path(path).name == "summary.html":
            return _check_summary(driver, where, entry["labels"]["split"])
        text = wait_for(driver, lambda d: d.find_element("tag name", "body").text.strip(), f"{where}: text", 20)
        return f"page with {len(text)} characters of text"
    finally:
        driver.switch_to.default_content()


def _check_plotly(driver, frame, where: str) -> str:
    """The interactive map: plotly drew its traces with WebGL (red P0/P* markers and time-like axis
    outside the legend, which is SVG and has a red marker of its own)."""
    state = wait_for(driver, lambda d: d.execute_script(
        "const g = document.querySelector('.js-plotly-plot');"
        "const c = g && g.querySelector('.gl-container canvas');"
        "return g && g._fullLayout && c && c.width > 0 && {traces: g.data.length, text: document.body.innerText};"),
        f"{where}: the plotly figure with its WebGL canvas")
    assert "WebGL is not supported" not in state["text"], f"{where}: {state['text'][:200]}"
    assert state["traces"] >= 3, f"{where}: {state['traces']} traces"
    legend = driver.execute_script(
        "const r = document.querySelector('.legend').getBoundingClientRect();"
        "return [r.left, r.top, r.right, r.bottom].map(Math.round);")
    driver.switch_to.default_content()
    settle()
    pixels = frame_pixels(frame)
    left, top, right, bottom = legend
    pixels[max(top, 0):bottom, max(left, 0):right] = 255  # blank out the legend
    red = int(((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum())
    assert red > 50, f"{where}: no red P0/P* markers or time-like axis drawn ({red} red pixels)"
    return f"plotly figure, {state['traces']} traces, {red} red pixels drawn by WebGL"


def _check_summary(driver, where: str, split: str) -> str:
    """summary.html: its headings shown as headings."""
    from selenium.webdriver.common.by import By

    h1 = wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1"), f"{where}: the summary's heading", 20)
    assert h1.is_displayed() and h1.text == f"Analysis of the {split} split", f"{where}: heading {h1.text!r}"
    headings = [h.text for h in driver.find_elements(By.TAG_NAME, "h2") if h.is_displayed()]
    assert "Excluded runs" in headings and len(headings) >= 5, f"{where}: headings {headings}"
    size = driver.execute_script("return parseFloat(getComputedStyle(arguments[0]).fontSize)", h1)
    body = driver.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
    assert size > body, f"{where}: the heading is not rendered larger than the text ({size} <= {body} px)"
    return f"summary page, {len(headings)} sections: {', '.join(headings)}"


def _xpath_str(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


def _css_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def frame_pixels(element):
    """The element's screenshot as an (H, W, 3) uint8 array (what the reader sees of it)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(element.screenshot_as_png)) as image:
        return np.array(image.convert("RGB"))  # a writable copy


def settle(seconds=0.5):
    """Let a WebGL frame that has just been drawn reach the screen before a screenshot."""
    time.sleep(seconds)
