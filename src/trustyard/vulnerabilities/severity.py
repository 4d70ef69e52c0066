"""How bad one vulnerability is: a CVSS score, DTR's bucket, and the record's own label.

DTR sorted vulnerabilities into three buckets by CVSS score: critical (7.0 and above), major
(4.0 to 6.9) and minor (below 4.0). `rate` gives a record (or the records merged into one
finding) a `Rating` in that order of preference:

1. a CVSS vector of `severity[]`, scored with the `cvss` library (Red Hat's implementation of
   the FIRST specifications of v2.0, v3.0, v3.1 and v4.0). The base score: the record rates the
   vulnerability itself, not anyone's environment. OSV allows several vectors in one list and
   ranks none; we take the newest version of the standard that scores (4.0, then 3.1, 3.0, 2.0),
   as each version replaces the one before it (3.1 fixed 3.0's rounding; NVD no longer scores
   v2), and the highest score among vectors of that version. A package's own `severity` in
   `affected[]` replaces the record's (the schema allows only one of the two).
2. else the record's own label: `database_specific.severity` of the entry or the record
   (GHSA writes CRITICAL, HIGH, MODERATE, LOW), or an `Ubuntu` priority of `severity[]`, put in
   the bucket of the CVSS rating scale it names (HIGH is 7.0 to 8.9, so critical here);
3. else the bucket is `unknown`.

A vector the library cannot read, or of an unknown type, is left out with a warning in the
rating and the next candidate is used; nothing raises from here. The label is kept beside a
CVSS rating too, since reports show both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from trustyard.errors import Invalid
from trustyard.vulnerabilities.osv import Affected, Record, Severity

CVSS_TYPES = frozenset({"CVSS_V2", "CVSS_V3", "CVSS_V4"})
LABEL_TYPES = frozenset({"Ubuntu"})
# Newest first: the preferred version of the standard when a record gives several.
VERSIONS = ("4.0", "3.1", "3.0", "2.0")
_VERSION_RANK = {v: len(VERSIONS) - i for i, v in enumerate(VERSIONS)}


class Bucket(StrEnum):
    CRITICAL = "critical"  # CVSS 7.0 and above
    MAJOR = "major"  # 4.0 to 6.9
    MINOR = "minor"  # below 4.0
    UNKNOWN = "unknown"  # no score and no label

    @property
    def rank(self) -> int:
        """3 for critical down to 0 for unknown (for the worst of several, `--fail-on`)."""
        return _BUCKET_RANK[self]


_BUCKET_RANK = {Bucket.UNKNOWN: 0, Bucket.MINOR: 1, Bucket.MAJOR: 2, Bucket.CRITICAL: 3}

# Labels by the CVSS qualitative scale they name (v3.1 section 5: None 0.0, Low 0.1-3.9,
# Medium 4.0-6.9, High 7.0-8.9, Critical 9.0-10.0), GHSA's MODERATE for Medium, Ubuntu's
# negligible below Low and Red Hat's IMPORTANT for High.
_LABELS = {
    "CRITICAL": Bucket.CRITICAL,
    "HIGH": Bucket.CRITICAL,
    "IMPORTANT": Bucket.CRITICAL,
    "MODERATE": Bucket.MAJOR,
    "MEDIUM": Bucket.MAJOR,
    "LOW": Bucket.MINOR,
    "NEGLIGIBLE": Bucket.MINOR,
    "NONE": Bucket.MINOR,
}


def bucket_for_score(score: float) -> Bucket:
    if score >= 7.0:
        return Bucket.CRITICAL
    if score >= 4.0:
        return Bucket.MAJOR
    return Bucket.MINOR


def bucket_for_label(label: str) -> Bucket | None:
    """The bucket of a database's label, None for one that names no severity (UNKNOWN)."""
    return _LABELS.get(label.strip().upper())


@dataclass(frozen=True, slots=True)
class Rating:
    """`bucket` always; `score`, `vector` and `version` ("4.0", "3.1", "3.0", "2.0") when a
    CVSS vector scored; `label` the record's own label (upper case) when it has one;
    `warnings` name the vectors left out."""

    bucket: Bucket
    score: float | None = None
    vector: str | None = None
    version: str | None = None
    label: str | None = None
    warnings: tuple[str, ...] = ()


NO_RATING = Rating(Bucket.UNKNOWN)


class VectorInvalid(Invalid):
    """A CVSS vector that no version of the standard reads."""

    def __init__(self, vector: str, reason: str) -> None:
        shown = vector[:120]
        super().__init__(f"CVSS vector {shown!r}: {reason}", {"vector": shown, "reason": reason})
        self.vector = vector
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Score:
    score: float  # the base score, 0.0 to 10.0
    version: str  # "4.0", "3.1", "3.0" or "2.0"


def score_vector(vector: str) -> Score:
    """The base score of a CVSS vector; the version is the vector's own (`CVSS:3.1/...`,
    `CVSS:4.0/...`; no prefix, or `CVSS:2.0/`, for v2). `VectorInvalid` if it does not read."""
    scored = _score(vector)
    if isinstance(scored, str):
        raise VectorInvalid(vector, scored)
    return scored


@lru_cache(maxsize=8192)
def _score(vector: str) -> Score | str:
    """The score, or why there is none (cached either way: records repeat their vectors)."""
    from cvss import CVSS2, CVSS3, CVSS4

    text = vector.strip()
    try:
        if text.startswith("CVSS:4.0/"):
            version, base = "4.0", CVSS4(text).scores()[0]
        elif text.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            version, base = text[5:8], CVSS3(text).scores()[0]
        elif text.startswith("CVSS:2.0/"):
            version, base = "2.0", CVSS2(text[9:]).scores()[0]
        elif text.startswith("CVSS:"):
            return "a CVSS version this scorer does not know"
        else:
            version, base = "2.0", CVSS2(text).scores()[0]
        value = float(base)
    except Exception as e:  # the library's CVSSError, and any surprise of its own
        return str(e)[:200] or type(e).__name__
    if not math.isfinite(value) or not 0 <= value <= 10:
        return f"no base score ({value!r})"
    return Score(value, version)


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: Score
    vector: str


def rate(record: Record, entries: Iterable[Affected] = ()) -> Rating:
    """The rating of `record` for the package of `entries` (its `affected[]` entries that
    matched; none: the record as a whole)."""
    return rate_group([(record, entries)])


def rate_group(hits: Iterable[tuple[Record, Iterable[Affected]]]) -> Rating:
    """One rating for records merged into one finding (PYSEC-x and GHSA-y naming one CVE):
    their vectors and labels pooled, chosen as `rate` chooses."""
    candidates: list[_Candidate] = []
    labels: list[str] = []
    warnings: list[str] = []
    for record, matched in hits:
        entries = tuple(matched)
        package_level = tuple(s for entry in entries for s in entry.severity)
        for severity in package_level or record.severity:
            _consider(record.id, severity, candidates, labels, warnings)
        for entry in entries:
            _add_label(_label_of(entry.database_specific), labels)
        _add_label(record.severity_label, labels)
    known = [label for label in labels if bucket_for_label(label) is not None]
    label = max(known, key=_label_rank) if known else (labels[0] if labels else None)
    if candidates:
        best = max(candidates, key=lambda c: (_VERSION_RANK[c.score.version], c.score.score))
        return Rating(
            bucket=bucket_for_score(best.score.score),
            score=best.score.score,
            vector=best.vector,
            version=best.score.version,
            label=label,
            warnings=tuple(warnings),
        )
    bucket = bucket_for_label(label) if label is not None else None
    return Rating(bucket=bucket or Bucket.UNKNOWN, label=label, warnings=tuple(warnings))


def _consider(
    record_id: str,
    severity: Severity,
    candidates: list[_Candidate],
    labels: list[str],
    warnings: list[str],
) -> None:
    if severity.type in LABEL_TYPES:
        _add_label(severity.score, labels)
        return
    shown = severity.score[:120]
    if severity.type not in CVSS_TYPES:
        warnings.append(f"{record_id}: severity type {severity.type[:40]!r} is not known")
        return
    scored = _score(severity.score)
    if isinstance(scored, str):
        warnings.append(f"{record_id}: {severity.type} {shown!r} left out: {scored}")
        return
    candidates.append(_Candidate(scored, severity.score))


def _label_of(database_specific: Mapping[str, object]) -> str | None:
    value = database_specific.get("severity")
    return value if isinstance(value, str) else None


def _add_label(label: str | None, labels: list[str]) -> None:
    if label is not None and label.strip():
        normal = label.strip().upper()[:40]
        if normal not in labels:
            labels.append(normal)


def _label_rank(label: str) -> int:
    bucket = bucket_for_label(label)
    return bucket.rank if bucket is not None else -1
