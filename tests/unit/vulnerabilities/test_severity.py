"""Severity: CVSS scores as the specifications' own examples give them, DTR's buckets, the
record's label when no vector scores, the fixture's real records, and nothing that raises."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.vulnerabilities.fixture_db import VULNDB, record_paths
from trustyard.errors import Invalid
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.osv import Record, parse_record
from trustyard.vulnerabilities.severity import (
    NO_RATING,
    Bucket,
    Rating,
    VectorInvalid,
    bucket_for_label,
    bucket_for_score,
    rate,
    rate_group,
    score_vector,
)

# CVSS v3.1 Examples (FIRST, the document that goes with the specification): the base
# vectors and scores of its worked cases. v3.0's base equations are the same for these.
V3_EXAMPLES = [
    ("CVE-2013-1937 phpMyAdmin XSS", "AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVE-2013-0375 MySQL SQL injection", "AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVE-2014-3566 SSLv3 POODLE", "AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),
    ("CVE-2012-1516 VMware guest to host", "AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
    ("CVE-2009-0783 Apache Tomcat XML parser", "AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 4.2),
    ("CVE-2012-0384 Cisco IOS", "AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
    ("CVE-2015-1098 Apple iWork", "AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 7.8),
    ("CVE-2014-0160 Heartbleed", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
    ("CVE-2014-6271 Shellshock", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVE-2008-1447 DNS cache poisoning", "AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 6.8),
    ("CVE-2014-2005 Sophos login bypass", "AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 6.8),
    ("CVE-2010-0467 Joomla directory traversal", "AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 5.8),
    ("CVE-2013-6014 Juniper proxy ARP", "AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:H", 9.3),
]

# CVSS v2 Complete Guide, section 3.3's examples.
V2_EXAMPLES = [
    ("CVE-2002-0392 Apache chunked encoding", "AV:N/AC:L/Au:N/C:N/I:N/A:C", 7.8),
    ("CVE-2003-0818 Windows ASN.1", "AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
    ("CVE-2003-0062 NOD32 buffer overflow", "AV:L/AC:H/Au:N/C:C/I:C/A:C", 6.2),
]

# CVSS v4.0: the calculator's all-high network vector, the whole scale's top and bottom.
V4_EXAMPLES = [
    ("network, high impact", "AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
    ("everything high", "AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10.0),
    ("no impact", "AV:P/AC:H/AT:P/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0),
]


@pytest.mark.parametrize(("case", "vector", "score"), V3_EXAMPLES, ids=[c[0] for c in V3_EXAMPLES])
def test_cvss3_specification_examples(case: str, vector: str, score: float) -> None:
    for version in ("3.1", "3.0"):
        result = score_vector(f"CVSS:{version}/{vector}")
        assert (result.score, result.version) == (score, version), case


@pytest.mark.parametrize(("case", "vector", "score"), V2_EXAMPLES, ids=[c[0] for c in V2_EXAMPLES])
def test_cvss2_guide_examples(case: str, vector: str, score: float) -> None:
    assert score_vector(vector).score == score, case  # OSV writes v2 without a prefix
    assert score_vector(f"CVSS:2.0/{vector}").score == score
    assert score_vector(vector).version == "2.0"


@pytest.mark.parametrize(("case", "vector", "score"), V4_EXAMPLES, ids=[c[0] for c in V4_EXAMPLES])
def test_cvss4_scores(case: str, vector: str, score: float) -> None:
    result = score_vector(f"CVSS:4.0/{vector}")
    assert (result.score, result.version) == (score, "4.0"), case


@pytest.mark.parametrize(
    ("score", "bucket"),
    [
        (10.0, Bucket.CRITICAL),
        (7.0, Bucket.CRITICAL),
        (6.9, Bucket.MAJOR),
        (4.0, Bucket.MAJOR),
        (3.9, Bucket.MINOR),
        (0.0, Bucket.MINOR),
    ],
)
def test_dtr_buckets(score: float, bucket: Bucket) -> None:
    assert bucket_for_score(score) is bucket


def test_labels_name_the_cvss_scale() -> None:
    assert bucket_for_label("CRITICAL") is bucket_for_label("high") is Bucket.CRITICAL
    assert bucket_for_label("MODERATE") is bucket_for_label("medium") is Bucket.MAJOR
    assert bucket_for_label("LOW") is bucket_for_label("negligible") is Bucket.MINOR
    assert bucket_for_label("UNKNOWN") is None
    assert [bucket.rank for bucket in Bucket] == [3, 2, 1, 0]  # critical .. unknown


@pytest.mark.parametrize(
    "vector",
    [
        "",
        "CVSS:3.1/AV:N",  # metrics missing
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:X",  # a value the metric has not
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",
        "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no such version
        "CVSS:5.0/AV:N",
        "CVSS:4.0/AV:N/AC:L",
        "AV:N/AC:L/Au:N",
        "HIGH",
    ],
)
def test_a_malformed_vector_is_the_typed_error(vector: str) -> None:
    with pytest.raises(VectorInvalid) as caught:
        score_vector(vector)
    assert isinstance(caught.value, Invalid)


# --- rating records -------------------------------------------------------------------


def _record(**fields: Any) -> Record:
    data: dict[str, Any] = {
        "id": "TEST-1",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "versions": ["1.0.0"]}],
    }
    data.update(fields)
    return parse_record(data)


V2 = "AV:N/AC:L/Au:N/C:C/I:C/A:C"  # 10.0
V30 = "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H"  # 6.5
V31_LOW = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"  # 3.1
V31_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"  # 9.3


def _sev(*vectors: tuple[str, str]) -> list[dict[str, str]]:
    return [{"type": kind, "score": vector} for kind, vector in vectors]


def test_the_newest_version_of_the_standard_wins() -> None:
    every = _record(
        severity=_sev(("CVSS_V2", V2), ("CVSS_V3", V31_LOW), ("CVSS_V4", V4), ("CVSS_V3", V30))
    )
    assert (rate(every).version, rate(every).score) == ("4.0", 9.3)
    # v3.1 over v3.0 even when v3.0 scores higher, v3.0 over a v2 that scores 10
    three = rate(_record(severity=_sev(("CVSS_V3", V30), ("CVSS_V3", V31_LOW))))
    assert (three.version, three.score, three.bucket) == ("3.1", 3.1, Bucket.MINOR)
    assert rate(_record(severity=_sev(("CVSS_V2", V2), ("CVSS_V3", V30)))).version == "3.0"
    assert rate(_record(severity=_sev(("CVSS_V2", V2)))) == Rating(Bucket.CRITICAL, 10.0, V2, "2.0")


def test_of_two_vectors_of_one_version_the_higher_score() -> None:
    rating = rate(_record(severity=_sev(("CVSS_V3", V31_LOW), ("CVSS_V3", V31_HIGH))))
    assert (rating.score, rating.vector, rating.bucket) == (7.5, V31_HIGH, Bucket.CRITICAL)


def test_a_malformed_vector_warns_and_the_next_one_rates() -> None:
    broken = "CVSS:4.0/AV:N/AC:L/AT:N"
    rating = rate(_record(severity=_sev(("CVSS_V4", broken), ("CVSS_V3", V30))))
    assert (rating.version, rating.score, rating.bucket) == ("3.0", 6.5, Bucket.MAJOR)
    assert len(rating.warnings) == 1
    assert "TEST-1" in rating.warnings[0]
    assert broken in rating.warnings[0]


def test_the_label_when_no_vector_scores() -> None:
    labelled = _record(
        severity=_sev(("CVSS_V3", "CVSS:3.1/garbage")),
        database_specific={"severity": "MODERATE"},
    )
    rating = rate(labelled)
    assert (rating.bucket, rating.score, rating.vector, rating.label) == (
        Bucket.MAJOR,
        None,
        None,
        "MODERATE",
    )
    assert len(rating.warnings) == 1


def test_the_label_is_kept_beside_a_score() -> None:
    rating = rate(
        _record(severity=_sev(("CVSS_V3", V31_HIGH)), database_specific={"severity": "low"})
    )
    assert (rating.bucket, rating.label) == (Bucket.CRITICAL, "LOW")  # the score decides


def test_an_ubuntu_priority_is_a_label() -> None:
    rating = rate(_record(severity=_sev(("Ubuntu", "medium"))))
    assert (rating.bucket, rating.label, rating.score) == (Bucket.MAJOR, "MEDIUM", None)
    assert rating.warnings == ()


def test_unknown_without_vector_or_label() -> None:
    assert rate(_record()) == NO_RATING
    assert NO_RATING.bucket is Bucket.UNKNOWN
    odd = rate(_record(database_specific={"severity": "UNKNOWN"}))
    assert (odd.bucket, odd.label) == (Bucket.UNKNOWN, "UNKNOWN")
    other = rate(_record(severity=_sev(("CVSS_V9", "x"))))
    assert other.bucket is Bucket.UNKNOWN
    assert "CVSS_V9" in other.warnings[0]


def test_a_packages_own_severity_replaces_the_records() -> None:
    record = _record(
        affected=[
            {
                "package": {"ecosystem": "npm", "name": "a"},
                "versions": ["1.0.0"],
                "severity": _sev(("CVSS_V3", V31_LOW)),
            },
            {"package": {"ecosystem": "npm", "name": "b"}, "versions": ["1.0.0"]},
        ],
        severity=_sev(("CVSS_V3", V31_HIGH)),
    )
    assert rate(record, [record.affected[0]]).score == 3.1
    assert rate(record, [record.affected[1]]).score == 7.5
    assert rate(record).score == 7.5


def test_merged_records_pool_their_vectors_and_labels() -> None:
    pysec = _record(id="PYSEC-1", aliases=["CVE-1"])
    ghsa = _record(
        id="GHSA-1", aliases=["CVE-1"], severity=_sev(("CVSS_V3", V30)), database_specific={}
    )
    labelled = _record(id="OSV-1", aliases=["CVE-1"], database_specific={"severity": "HIGH"})
    rating = rate_group([(pysec, ()), (ghsa, ()), (labelled, ())])
    assert (rating.score, rating.bucket, rating.label) == (6.5, Bucket.MAJOR, "HIGH")
    index = Index.of([pysec, ghsa])
    (finding,) = index.findings("npm", "left-pad", "1.0.0")
    assert finding.record_ids == ("GHSA-1", "PYSEC-1")
    assert (finding.severity.score, finding.severity.vector) == (6.5, V30)


# --- the fixture's real records ----------------------------------------------------------

# id -> (bucket, CVSS 3.1 base score or None, GHSA's label); scores checked with FIRST's
# v3.1 equations by the cvss library, labels as the records give them.
NPM = {
    "GHSA-29mw-wpgm-hmr9": (Bucket.MAJOR, 5.3, "MODERATE"),
    "GHSA-35jh-r3h4-6jhm": (Bucket.CRITICAL, 7.2, "HIGH"),
    "GHSA-p6mc-m468-83gw": (Bucket.CRITICAL, 7.4, "HIGH"),
    "GHSA-vh95-rmgr-6w4m": (Bucket.MAJOR, 5.6, "MODERATE"),
    "GHSA-xvch-5gv4-984h": (Bucket.CRITICAL, 9.8, "CRITICAL"),
    "GHSA-3cqr-58rm-57f8": (Bucket.CRITICAL, 8.1, "HIGH"),
    "GHSA-765h-qjxv-5f44": (Bucket.CRITICAL, 9.8, "CRITICAL"),
    "GHSA-f2jv-r9rf-7988": (Bucket.CRITICAL, 9.8, "CRITICAL"),
    "GHSA-g9r4-xpmj-mj65": (Bucket.CRITICAL, None, "HIGH"),  # no vector: the label rates
    "GHSA-q2c6-c6pm-g3gh": (Bucket.CRITICAL, None, "HIGH"),
    "GHSA-4w2v-q235-vp99": (Bucket.MAJOR, 5.9, "MODERATE"),
    "GHSA-cph5-m8f7-6c5x": (Bucket.CRITICAL, 7.5, "HIGH"),
    "GHSA-wf5p-g6vw-rhxx": (Bucket.MAJOR, 6.5, "MODERATE"),
}


@pytest.fixture(scope="module")
def npm() -> dict[str, Record]:
    paths = sorted((VULNDB / "npm").glob("*.json"))
    return {r.id: r for r in (parse_record(p.read_bytes()) for p in paths)}


@pytest.mark.parametrize(
    ("ecosystem", "package", "version"),
    [
        ("npm", "lodash", "4.17.15"),
        ("npm", "minimist", "1.2.0"),
        ("npm", "handlebars", "4.5.2"),
        ("npm", "axios", "0.21.0"),
    ],
)
def test_expected_matches_carry_their_buckets(
    npm: dict[str, Record], ecosystem: str, package: str, version: str
) -> None:
    findings = Index.of(npm.values()).findings(ecosystem, package, version)
    assert findings
    for finding in findings:
        bucket, score, label = NPM[finding.id]
        assert (finding.severity.bucket, finding.severity.score) == (bucket, score), finding.id
        assert finding.severity.label == label
        assert finding.severity.version == (None if score is None else "3.1")
        assert finding.severity.warnings == ()


def test_ghsa_labels_agree_with_the_scores(npm: dict[str, Record]) -> None:
    # GHSA derives its label from the CVSS score, so both give the same bucket.
    for record in npm.values():
        rating = rate(record)
        assert rating.label is not None
        if rating.score is not None:
            assert bucket_for_label(rating.label) is rating.bucket, record.id


def test_the_fixture_rates_without_warnings() -> None:
    counts: dict[str, int] = {}
    for path in record_paths():
        data = path.read_bytes()
        if b'"severity"' not in data:
            continue  # Go's records have neither vectors nor labels
        rating = rate(parse_record(json.loads(data)))
        assert rating.warnings == (), path.name
        assert rating.bucket is not Bucket.UNKNOWN, path.name
        counts[rating.version or "label"] = counts.get(rating.version or "label", 0) + 1
    assert counts == {"3.1": 205, "3.0": 10, "label": 3}


def test_a_pysec_record_with_a_v30_vector() -> None:
    record = parse_record((VULNDB / "pypi" / "PYSEC-2018-117.json").read_bytes())
    assert rate(record) == Rating(Bucket.MAJOR, 6.5, V30, "3.0")


def test_a_go_record_is_unknown() -> None:
    go = sorted((VULNDB / "go").glob("GO-2023-*.json"))[0]
    assert rate(parse_record(go.read_bytes())) == NO_RATING


# --- nothing raises ------------------------------------------------------------------

_METRICS = {
    "AV": "NALP",
    "AC": "LH",
    "PR": "NLH",
    "UI": "NR",
    "S": "UC",
    "C": "NLH",
    "I": "NLH",
    "A": "NLH",
}
V31_VECTORS = st.builds(
    lambda values: (
        "CVSS:3.1/" + "/".join(f"{m}:{v}" for m, v in zip(_METRICS, values, strict=True))
    ),
    st.tuples(*(st.sampled_from(list(values)) for values in _METRICS.values())),
)
VECTOR_LIKE = st.lists(
    st.sampled_from(["CVSS:3.1", "CVSS:4.0", "CVSS:2.0", "AV:N", "AC:L", "Au:N", "S:U", "C:H"])
    | st.text(max_size=8),
    max_size=12,
).map("/".join)


@settings(max_examples=150, deadline=None)
@given(V31_VECTORS)
def test_every_base_vector_scores_within_the_scale(vector: str) -> None:
    rating = rate(_record(severity=_sev(("CVSS_V3", vector))))
    assert rating.score is not None
    assert 0.0 <= rating.score <= 10.0
    assert rating.bucket is bucket_for_score(rating.score)
    assert round(rating.score, 1) == rating.score


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["CVSS_V2", "CVSS_V3", "CVSS_V4", "Ubuntu", "other"]),
    st.text(max_size=60) | VECTOR_LIKE,
    st.none() | st.text(max_size=12),
)
def test_any_text_rates_and_never_raises(kind: str, text: str, label: str | None) -> None:
    fields: dict[str, Any] = {}
    if text.strip():
        fields["severity"] = _sev((kind, text))
    if label is not None:
        fields["database_specific"] = {"severity": label}
    rating = rate(_record(**fields))
    assert isinstance(rating.bucket, Bucket)
    with contextlib.suppress(VectorInvalid):
        score_vector(text)
