"""The documentation's Python code runs, and the generated pages match the code they describe.

Every fenced ```python block in README.md and docs/**/*.md is executed. The blocks of one page run in order
in one namespace, like a notebook, in a temporary folder that holds:

- `photo.jpg`: a photo of three smiling women (590x350 pixels),
- `photos/`: three photos, one without a face,
- `video.mp4`: a 12-frame clip of `photo.jpg`,
- `faces/happy/` and `faces/sad/`: 20 FER2013 faces each (48x48 greyscale), for training examples,
- `weights/`: the SSD's two weights files, for import examples,

with the weights cache seeded and downloads forbidden (`EMODETECT_OFFLINE=1`). Camera index 0 plays
`video.mp4`, and `cv2.imshow` and `cv2.waitKey` do nothing, so camera examples run too. A block that cannot run
there is marked on the line before its fence with `<!-- no-test: REASON -->`. A block line of the form
`--8<-- "FILE"` or `--8<-- "FILE:SECTION"` is replaced by that file or section, as the site build does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from emodetect import weights
from emodetect.classifiers import CLASSIFIERS
from emodetect.detectors import DETECTORS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
NO_TEST = re.compile(r"^\s*<!--\s*no-test:(?P<reason>.*?)-->\s*$")
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"\s*$')
PYTHON_LANGUAGES = {"python", "py", "python3"}


@dataclass
class CodeBlock:
    """A fenced code block of a Markdown page."""

    path: Path
    line: int  # 1-based line number of the first code line
    language: str
    code: str
    skip_reason: str | None


def extract_blocks(path: Path, text: str) -> list[CodeBlock]:
    """Return the fenced code blocks of a Markdown text, with their `no-test` markers."""
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue

        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        language = info.split()[0].lstrip(".").lower() if info else ""
        # A marker counts when it is the nearest non-blank line above the fence.
        previous = index - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = NO_TEST.match(lines[previous]) if previous >= 0 else None

        body = []
        index += 1
        while index < len(lines) and not re.match(rf"^{re.escape(indent)}{fence[0]}{{{len(fence)},}}\s*$", lines[index]):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        start = index - len(body) + 1 if body else index + 1
        blocks.append(
            CodeBlock(path, start, language, "\n".join(body) + "\n", marker["reason"].strip() if marker else None)
        )
        index += 1
    return blocks


def python_blocks(path: Path) -> list[CodeBlock]:
    return [block for block in extract_blocks(path, path.read_text(encoding="utf-8")) if block.language in PYTHON_LANGUAGES]


def expand_snippets(code: str) -> str:
    """Replace `--8<-- "FILE[:SECTION]"` lines with the file or section, relative to the repository root."""
    expanded = []
    for line in code.splitlines():
        include = SNIPPET.match(line)
        if not include:
            expanded.append(line)
            continue
        text = (ROOT / include["path"]).read_text(encoding="utf-8")
        if include["section"]:
            pattern = rf"--8<-- \[start:{include['section']}\]\n(?P<body>.*?)^[^\n]*--8<-- \[end:{include['section']}\]"
            section = re.search(pattern, text, re.DOTALL | re.MULTILINE)
            assert section, f"Section {include['section']!r} not found in {include['path']}"
            text = section["body"]
        expanded.append(text.rstrip("\n"))
    return "\n".join(expanded) + "\n"


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


@pytest.fixture(scope="module")
def sandbox_source(tmp_path_factory, paper_images, fer_val, shared_dir):
    """Build the files that the documentation's code blocks read, once per module."""
    import cv2

    folder = tmp_path_factory.mktemp("docs-sandbox")
    shutil.copyfile(paper_images / "happy" / "1-2.jpg", folder / "photo.jpg")

    photos = folder / "photos"
    photos.mkdir()
    shutil.copyfile(paper_images / "happy" / "1-2.jpg", photos / "three-women.jpg")
    shutil.copyfile(paper_images / "sad" / "51079685_M.jpg", photos / "girl.jpg")
    shutil.copyfile(paper_images / "happy" / "HAPPY-PEOPLE-CLUB-LOGO.jpg", photos / "logo.jpg")

    frame = cv2.imread(str(folder / "photo.jpg"))
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(folder / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (width, height))
    for _ in range(12):
        writer.write(frame)
    writer.release()

    for label in ("happy", "sad"):
        target = folder / "faces" / label
        target.mkdir(parents=True)
        for source in sorted((fer_val / label).iterdir())[:20]:
            shutil.copyfile(source, target / source.name)

    shutil.copytree(shared_dir / "weights", folder / "weights")
    return folder


@pytest.fixture
def sandbox(sandbox_source, tmp_path, ssd_home, monkeypatch):
    """A fresh copy of the sandbox as the working folder, with the registries and environment restored after."""
    folder = tmp_path / "sandbox"
    shutil.copytree(sandbox_source, folder)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(DETECTORS, "_specs", dict(DETECTORS._specs))
    monkeypatch.setattr(CLASSIFIERS, "_specs", dict(CLASSIFIERS._specs))
    _replace_camera_and_display(monkeypatch, folder / "video.mp4")
    environment = dict(os.environ)
    yield folder
    # A block may set environment variables such as EMODETECT_OFFLINE, which must not leak into other tests.
    os.environ.clear()
    os.environ.update(environment)


def _replace_camera_and_display(monkeypatch, video):
    """Make camera code in the docs runnable: camera indexes play `video`, and windows are not opened."""
    import cv2

    real_capture = cv2.VideoCapture

    def capture(source, *args):
        return real_capture(str(video)) if isinstance(source, int) else real_capture(source, *args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    monkeypatch.setattr(cv2, "imshow", lambda *args: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *args: -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda *args: None)


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_page_code_runs(page, sandbox):
    namespace = {"__name__": "__docs__"}
    for block in python_blocks(page):
        if block.skip_reason is not None:
            continue
        # Leading blank lines make tracebacks report the line numbers of the Markdown file.
        source = "\n" * (block.line - 1) + expand_snippets(block.code)
        exec(compile(source, str(page), "exec"), namespace)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_test_markers_give_reason(page):
    for block in extract_blocks(page, page.read_text(encoding="utf-8")):
        if block.skip_reason is not None:
            assert block.skip_reason, f"{_page_id(page)}:{block.line}: a no-test marker needs a reason"


def test_extractor_finds_indented_and_marked_blocks():
    text = '\n'.join([
        "Text.",
        "```python",
        "x = 1",
        "```",
        "<!-- no-test: needs a camera -->",
        "",
        "```py title=\"camera.py\"",
        "open_camera()",
        "```",
        "!!! note",
        "    ```python",
        "    if x:",
        "        y = 2",
        "    ```",
        "```bash",
        "emodetect models",
        "```",
    ])

    blocks = extract_blocks(Path("page.md"), text)

    assert [block.language for block in blocks] == ["python", "py", "python", "bash"]
    assert [block.line for block in blocks] == [3, 8, 12, 16]
    assert blocks[0].skip_reason is None
    assert blocks[1].skip_reason == "needs a camera"
    assert blocks[2].code == "if x:\n    y = 2\n"


def test_snippet_section_is_expanded():
    code = expand_snippets('--8<-- "examples/custom_backend.py:detector"\n')

    assert "class ProfileHaarDetector(Detector):" in code
    assert "--8<--" not in code
    assert "def main(" not in code


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_page_matches_parser():
    expected = _load_script("generate_cli_docs").render()

    actual = (DOCS / "cli.md").read_text(encoding="utf-8")

    assert actual == expected, "docs/cli.md is out of date; run: python scripts/generate_cli_docs.py"


def test_weights_page_lists_registry():
    page = (DOCS / "weights-and-offline.md").read_text(encoding="utf-8")

    for name, weight in weights.REGISTRY.items():
        assert f"`{name}`" in page, f"{name} is missing from docs/weights-and-offline.md"
        assert weight.sha256 in page, f"the SHA256 of {name} in docs/weights-and-offline.md is not the registry's"
        assert weight.url in page, f"the URL of {name} in docs/weights-and-offline.md is not the registry's"



def test_user_guide_tables_list_every_backend():
    from emodetect import list_classifiers, list_detectors
    from emodetect.classifiers import SHIPPED_MODELS, shipped_model_path
    from emodetect.model_io import read_metadata

    rows = {
        line.split("`")[1]: line
        for line in (DOCS / "user-guide.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }

    for name in list_detectors():
        assert name in rows, f"detector {name!r} is missing from the detector table of docs/user-guide.md"
    for name in list_classifiers():
        assert name in rows, f"classifier {name!r} is missing from the classifier table of docs/user-guide.md"
    for name in SHIPPED_MODELS:
        metadata = read_metadata(shipped_model_path(name))
        height, width = metadata.input_size
        assert ", ".join(metadata.class_names) in rows[name], f"the classes of {name!r} in docs/user-guide.md differ"
        assert f"{height}x{width}" in rows[name], f"the input size of {name!r} in docs/user-guide.md differs"
