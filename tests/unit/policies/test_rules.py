"""policies/rules.py: every field and operator of the rule language on real facts, each with
the reason it gives; what each refusal at creation says and where it points; the ecosystems'
own version orders (deb, PyPI, npm, Go) through the real `component_version_order`; a runaway
pattern stopped by its time limit; the stored (canonical) form read back as itself."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.config import PoliciesSettings
from trustyard.policies.interfaces import (
    ComponentFact,
    Condition,
    ImageFacts,
    Need,
    Outcome,
    PolicyInvalid,
    VulnCounts,
)
from trustyard.policies.rules import (
    FIELD_ALIASES,
    FIELDS,
    NUMBER_OPERATORS,
    OPERATOR_ALIASES,
    STRING_OPERATORS,
    TIME_OPERATORS,
    RuleList,
    compile_rules,
)
from trustyard.vulnerabilities.ordering import component_version_order

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LIMITS = PoliciesSettings()
DIGEST = "sha256:" + "ab" * 32

FACTS = ImageFacts(
    repository="dev/app",
    digest=DIGEST,
    media_type="application/vnd.oci.image.manifest.v1+json",
    tag="1.2-stable",
    tags=("1.2-stable", "latest"),
    size=150_000_000,
    pushed_at=NOW - timedelta(days=10),
    created_at=datetime(2026, 11, 1, tzinfo=UTC),
    labels={"org.opencontainers.image.vendor": "Acme", "tier": "gold"},
    platforms=("linux/amd64", "linux/arm64/v8"),
    components=(
        ComponentFact("deb", "openssl", "3.0.11-1~deb12u2", ("Apache-2.0",)),
        ComponentFact("deb", "libc6", "2.36-9+deb12u4", ("LGPL-2.1", "GPL-2.0")),
        ComponentFact("pypi", "Django", "4.2.7", ("BSD-3-Clause",)),
        ComponentFact("npm", "lodash", "4.17.21", ("MIT",)),
        ComponentFact("npm", "left-pad", "1.3.0-beta.2", ("MIT",)),
        ComponentFact("golang", "golang.org/x/net", "v0.17.0", ("BSD-3-Clause",)),
        ComponentFact("golang", "stdlib", "go1.21.3", ("BSD-3-Clause",)),
        ComponentFact("binary", "busybox", "1.36.1"),
    ),
    vulnerabilities=VulnCounts(critical=0, major=3, minor=5, unknown=1),
)


def rules(*items: Mapping[str, Any], limits: PoliciesSettings = LIMITS) -> RuleList:
    return compile_rules(list(items), limits, component_version_order)


def judge(field: str, operator: str, values: Sequence[Any], facts: ImageFacts = FACTS) -> Any:
    """The one rule's result on `facts`."""
    compiled = rules({"field": field, "operator": operator, "values": list(values)})
    return compiled.evaluate(facts, NOW).results[0]


def check(
    field: str,
    operator: str,
    values: Sequence[Any],
    passed: bool | None,
    reason: str,
    facts: ImageFacts = FACTS,
) -> None:
    result = judge(field, operator, values, facts)
    assert (result.passed, result.reason) == (passed, reason)


def test_the_rule_list_is_a_condition_and_says_what_it_needs() -> None:
    compiled: Condition = rules(
        {"field": "tag", "operator": "eq", "values": ["x"]},
        {"field": "component.name", "operator": "eq", "values": ["x"]},
        {"field": "label.a", "operator": "eq", "values": ["x"]},
    )
    assert compiled.needs == {Need.SCAN, Need.CONFIG}
    assert rules({"field": "tag", "operator": "eq", "values": ["x"]}).needs == frozenset()
    assert rules({"field": "vulnerability.all", "operator": "eq", "values": [0]}).needs == {
        Need.VULNERABILITIES
    }
    assert rules({"field": "created", "operator": "after", "values": ["2026-01-01"]}).needs == {
        Need.CONFIG
    }
    assert rules({"field": "license", "operator": "oneof", "values": ["MIT"]}).needs == {Need.SCAN}


def test_every_rule_must_pass_and_each_reports() -> None:
    compiled = rules(
        {"field": "tag", "operator": "ew", "values": ["stable"]},
        {"field": "vulnerability.critical", "operator": "lte", "values": [0]},
        {"field": "component.name", "operator": "neq", "values": ["bash"]},
    )
    evaluation = compiled.evaluate(FACTS, NOW)
    assert evaluation.outcome is Outcome.PASSED
    assert [r.index for r in evaluation.results] == [0, 1, 2]
    assert evaluation.results[1].rule == {
        "field": "vulnerability.critical",
        "operator": "lte",
        "values": ["0"],
    }
    failing = replace(FACTS, vulnerabilities=VulnCounts(critical=3))
    evaluation = compiled.evaluate(failing, NOW)
    assert evaluation.outcome is Outcome.FAILED
    assert [r.passed for r in evaluation.results] == [True, False, True]
    assert evaluation.results[1].reason == "critical vulnerabilities: 3, not <= 0"


def test_an_empty_rule_list_passes_every_image() -> None:
    assert rules().evaluate(FACTS, NOW).outcome is Outcome.PASSED


# --- string fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "values", "passed", "reason"),
    [
        ("eq", ["1.2-stable"], True, "tag '1.2-stable' equals '1.2-stable'"),
        ("eq", ["1.2"], False, "tag '1.2-stable' does not equal '1.2'"),
        ("eq", ["a", "b"], False, "tag '1.2-stable' does not equal any of 'a', 'b'"),
        ("neq", ["latest"], True, "tag '1.2-stable' does not equal 'latest'"),
        ("neq", ["1.2-stable"], False, "tag '1.2-stable' equals '1.2-stable'"),
        ("sw", ["1."], True, "tag '1.2-stable' starts with '1.'"),
        ("sw", ["v", "1.2"], True, "tag '1.2-stable' starts with '1.2'"),
        ("sw", ["v"], False, "tag '1.2-stable' does not start with 'v'"),
        ("ew", ["stable"], True, "tag '1.2-stable' ends with 'stable'"),
        ("ew", ["-rc"], False, "tag '1.2-stable' does not end with '-rc'"),
        ("c", ["-st"], True, "tag '1.2-stable' contains '-st'"),
        ("c", ["dev"], False, "tag '1.2-stable' does not contain 'dev'"),
        ("oneof", ["1.2-stable", "1.3"], True, "tag '1.2-stable' is one of '1.2-stable', '1.3'"),
        ("oneof", ["1.3", "1.4"], False, "tag '1.2-stable' is not one of '1.3', '1.4'"),
        ("noneof", ["1.3", "1.4"], True, "tag '1.2-stable' is not one of '1.3', '1.4'"),
        ("noneof", ["1.2-stable"], False, "tag '1.2-stable' is one of '1.2-stable'"),
        (
            "matches",
            [r"^\d+\.\d+-stable$"],
            True,
            r"tag '1.2-stable' matches '^\\d+\\.\\d+-stable$'",
        ),
        ("matches", ["stab"], True, "tag '1.2-stable' matches 'stab'"),  # a search, unanchored
        ("matches", ["^v"], False, "tag '1.2-stable' does not match '^v'"),
    ],
)
def test_tag(operator: str, values: list[str], passed: bool, reason: str) -> None:
    check("tag", operator, values, passed, reason)


@pytest.mark.parametrize("operator", STRING_OPERATORS)
def test_a_rule_on_the_tag_fails_when_the_image_is_judged_by_digest(operator: str) -> None:
    check("tag", operator, ["x"], False, "no tag (judged by digest)", replace(FACTS, tag=None))


def test_repository_and_digest() -> None:
    check("repository", "sw", ["dev/"], True, "repository 'dev/app' starts with 'dev/'")
    check("repository", "eq", ["prod/app"], False, "repository 'dev/app' does not equal 'prod/app'")
    check("digest", "eq", [DIGEST], True, f"digest {DIGEST!r} equals {DIGEST!r}")
    check("digest", "sw", ["sha512:"], False, f"digest {DIGEST!r} does not start with 'sha512:'")


@pytest.mark.parametrize(
    ("operator", "values", "passed", "reason"),
    [
        ("eq", ["linux/arm64/v8"], True, "platform 'linux/arm64/v8' equals 'linux/arm64/v8'"),
        ("eq", ["linux/s390x"], False, "no platform equals 'linux/s390x'"),
        ("neq", ["linux/s390x"], True, "no platform equals 'linux/s390x'"),
        ("neq", ["linux/amd64"], False, "platform 'linux/amd64' equals 'linux/amd64'"),
        ("sw", ["linux/arm"], True, "platform 'linux/arm64/v8' starts with 'linux/arm'"),
        ("ew", ["/v7"], False, "no platform ends with '/v7'"),
        ("c", ["arm64"], True, "platform 'linux/arm64/v8' contains 'arm64'"),
        ("oneof", ["windows/amd64", "linux/amd64"], True,
         "platform 'linux/amd64' is one of 'windows/amd64', 'linux/amd64'"),
        ("noneof", ["windows/amd64"], True, "no platform is one of 'windows/amd64'"),
        ("noneof", ["linux/amd64"], False, "platform 'linux/amd64' is one of 'linux/amd64'"),
        ("matches", ["^linux/(amd|arm)64"], True,
         "platform 'linux/amd64' matches '^linux/(amd|arm)64'"),
        ("matches", ["windows"], False, "no platform matches 'windows'"),
    ],
)  # fmt: skip
def test_platform_any_of_the_images(
    operator: str, values: list[str], passed: bool, reason: str
) -> None:
    check("platform", operator, values, passed, reason)


def test_an_image_without_platforms_has_none_that_matches() -> None:
    bare = replace(FACTS, platforms=())
    check("platform", "eq", ["linux/amd64"], False, "no platform equals 'linux/amd64'", bare)
    check("platform", "neq", ["linux/amd64"], True, "no platform equals 'linux/amd64'", bare)


@pytest.mark.parametrize(
    ("field", "operator", "values", "passed", "reason"),
    [
        ("component.name", "eq", ["openssl"], True, "component 'openssl' equals 'openssl'"),
        ("component", "eq", ["bash"], False, "no component equals 'bash'"),
        ("component.name", "neq", ["bash"], True, "no component equals 'bash'"),  # absent
        ("component.name", "neq", ["openssl"], False, "component 'openssl' equals 'openssl'"),
        ("component.name", "sw", ["golang.org/"], True,
         "component 'golang.org/x/net' starts with 'golang.org/'"),
        ("component.name", "ew", ["-pad"], True, "component 'left-pad' ends with '-pad'"),
        ("component.name", "c", ["ssl"], True, "component 'openssl' contains 'ssl'"),
        ("component.name", "oneof", ["log4j", "lodash"], True,
         "component 'lodash' is one of 'log4j', 'lodash'"),
        ("component.name", "noneof", ["log4j", "struts"], True,
         "no component is one of 'log4j', 'struts'"),
        ("component.name", "noneof", ["busybox"], False,
         "component 'busybox' is one of 'busybox'"),
        ("component.name", "matches", ["^lib(c|ssl)"], True,
         "component 'libc6' matches '^lib(c|ssl)'"),
        # PyPI's names in PEP 503's form (pip reads them so), the others exactly
        ("component.name", "eq", ["django"], True, "component 'Django' equals 'django'"),
        ("component.name", "neq", ["DJANGO"], False, "component 'Django' equals 'DJANGO'"),
        ("component.name", "oneof", ["flask", "django"], True,
         "component 'Django' is one of 'flask', 'django'"),
        ("component.name", "sw", ["dj"], False, "no component starts with 'dj'"),
        ("component.name", "eq", ["LODASH"], False, "no component equals 'LODASH'"),
        ("component.name", "eq", ["Golang.org/x/net"], False,
         "no component equals 'Golang.org/x/net'"),
    ],
)  # fmt: skip
def test_component_name(
    field: str, operator: str, values: list[str], passed: bool, reason: str
) -> None:
    check(field, operator, values, passed, reason)


@pytest.mark.parametrize(
    ("field", "operator", "values", "passed", "reason"),
    [
        ("license.name", "oneof", ["MIT", "ISC"], True, "license 'MIT' is one of 'MIT', 'ISC'"),
        ("license", "oneof", ["AGPL-3.0"], False, "no license is one of 'AGPL-3.0'"),
        ("license.name", "noneof", ["AGPL-3.0", "SSPL-1.0"], True,
         "no license is one of 'AGPL-3.0', 'SSPL-1.0'"),
        ("license.name", "noneof", ["GPL-2.0"], False, "license 'GPL-2.0' is one of 'GPL-2.0'"),
        ("license.name", "eq", ["Apache-2.0"], True, "license 'Apache-2.0' equals 'Apache-2.0'"),
        ("license.name", "neq", ["GPL-3.0"], True, "no license equals 'GPL-3.0'"),
        ("license.name", "sw", ["GPL"], True, "license 'GPL-2.0' starts with 'GPL'"),
        ("license.name", "ew", ["-3.0"], False, "no license ends with '-3.0'"),
        ("license.name", "c", ["BSD"], True, "license 'BSD-3-Clause' contains 'BSD'"),
        ("license.name", "matches", ["^L?GPL-"], True, "license 'LGPL-2.1' matches '^L?GPL-'"),
    ],
)  # fmt: skip
def test_license(field: str, operator: str, values: list[str], passed: bool, reason: str) -> None:
    check(field, operator, values, passed, reason)


@pytest.mark.parametrize(
    ("operator", "values", "passed", "reason"),
    [
        ("eq", ["gold"], True, "label 'tier': 'gold' equals 'gold'"),
        ("eq", ["silver"], False, "label 'tier': 'gold' does not equal 'silver'"),
        ("neq", ["silver"], True, "label 'tier': 'gold' does not equal 'silver'"),
        ("sw", ["go"], True, "label 'tier': 'gold' starts with 'go'"),
        ("ew", ["ld"], True, "label 'tier': 'gold' ends with 'ld'"),
        ("c", ["ol"], True, "label 'tier': 'gold' contains 'ol'"),
        ("oneof", ["gold", "platinum"], True, "label 'tier': 'gold' is one of 'gold', 'platinum'"),
        ("noneof", ["bronze"], True, "label 'tier': 'gold' is not one of 'bronze'"),
        ("matches", ["^g.l"], True, "label 'tier': 'gold' matches '^g.l'"),
    ],
)
def test_label(operator: str, values: list[str], passed: bool, reason: str) -> None:
    check("label.tier", operator, values, passed, reason)


@pytest.mark.parametrize("operator", STRING_OPERATORS)
def test_a_missing_label_fails_positive_operators_and_passes_negative_ones(operator: str) -> None:
    check("label.owner", operator, ["x"], operator in ("neq", "noneof"), "no label 'owner'")


def test_a_label_key_keeps_its_case_and_dots() -> None:
    compiled = rules({"field": "Label.org.opencontainers.image.vendor", "operator": "eq",
                      "values": ["Acme"]})  # fmt: skip
    assert compiled.canonical[0]["field"] == "label.org.opencontainers.image.vendor"
    assert compiled.evaluate(FACTS, NOW).passed
    check("label.Tier", "eq", ["gold"], False, "no label 'Tier'")


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "operator", "value", "passed", "reason"),
    [
        ("vulnerability.critical", "eq", 0, True, "critical vulnerabilities: 0, = 0"),
        ("vulnerability_critical", "lte", "0", True, "critical vulnerabilities: 0, <= 0"),
        ("vulnerability.major", "lte", 0, False, "major vulnerabilities: 3, not <= 0"),
        ("vulnerability_major", "gt", 2, True, "major vulnerabilities: 3, > 2"),
        ("vulnerability.minor", "gte", 6, False, "minor vulnerabilities: 5, not >= 6"),
        ("vulnerability_minor", "lt", 6, True, "minor vulnerabilities: 5, < 6"),
        ("vulnerability.unknown", "neq", 1, False, "unknown vulnerabilities: 1, not != 1"),
        ("vulnerability_unknown", "neq", 0, True, "unknown vulnerabilities: 1, != 0"),
        ("vulnerability.all", "eq", 9, True, "all vulnerabilities: 9, = 9"),
        ("vulnerability_all", "lt", 9.0, False, "all vulnerabilities: 9, not < 9"),
    ],
)
def test_vulnerability_counts(
    field: str, operator: str, value: Any, passed: bool, reason: str
) -> None:
    check(field, operator, [value], passed, reason)


def test_vulnerability_rules_wait_for_the_match() -> None:
    unmatched = replace(FACTS, vulnerabilities=None)
    result = judge("vulnerability.critical", "eq", [0], unmatched)
    assert result.passed is None
    assert result.reason == "waiting for the image's vulnerability match"
    compiled = rules(
        {"field": "tag", "operator": "eq", "values": ["1.2-stable"]},
        {"field": "vulnerability.all", "operator": "eq", "values": [0]},
    )
    assert compiled.evaluate(unmatched, NOW).outcome is Outcome.PENDING
    compiled = rules(
        {"field": "tag", "operator": "eq", "values": ["other"]},
        {"field": "vulnerability.all", "operator": "eq", "values": [0]},
    )
    assert compiled.evaluate(unmatched, NOW).outcome is Outcome.FAILED  # a failure decides


@pytest.mark.parametrize(
    ("operator", "value", "passed", "reason"),
    [
        ("lt", "500MB", True, "size: 150000000 bytes, < 500MB (500000000 bytes)"),
        ("lte", "150000000", True, "size: 150000000 bytes, <= 150000000"),
        ("gt", 150_000_000, False, "size: 150000000 bytes, not > 150000000"),
        ("gte", "0.1GiB", True, "size: 150000000 bytes, >= 0.1GiB (107374182 bytes)"),
        ("eq", "150 MB", True, "size: 150000000 bytes, = 150 MB (150000000 bytes)"),
        ("neq", "150000kB", False, "size: 150000000 bytes, not != 150000kB (150000000 bytes)"),
        ("lt", "100MiB", False, "size: 150000000 bytes, not < 100MiB (104857600 bytes)"),
    ],
)
def test_size(operator: str, value: Any, passed: bool, reason: str) -> None:
    check("size", operator, [value], passed, reason)


# --- component versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "values", "passed", "reason"),
    [
        # deb: dpkg's order, `~` before the release
        ("lt", ["openssl", "3.0.11-1"], True,
         "component 'openssl' 3.0.11-1~deb12u2 (deb) < 3.0.11-1"),
        ("lt", ["openssl", "3.0.12"], True, "component 'openssl' 3.0.11-1~deb12u2 (deb) < 3.0.12"),
        ("gte", ["openssl", "3.0.11-1~deb12u1"], True,
         "component 'openssl' 3.0.11-1~deb12u2 (deb) >= 3.0.11-1~deb12u1"),
        ("gt", ["libc6", "1:2.0"], False, "component 'libc6' 2.36-9+deb12u4 (deb) is not > 1:2.0"),
        # PyPI: PEP 440 (4.2.7 > 4.2rc1 > 4.2a1; 4.10 > 4.9)
        ("gte", ["Django", "4.2"], True, "component 'Django' 4.2.7 (pypi) >= 4.2"),
        ("gte", ["django", "4.2"], True, "component 'Django' 4.2.7 (pypi) >= 4.2"),  # PEP 503
        ("lt", ["pypi:DJANGO", "5"], True, "component 'Django' 4.2.7 (pypi) < 5"),
        ("gt", ["pypi:Django", "4.2rc1"], True, "component 'Django' 4.2.7 (pypi) > 4.2rc1"),
        ("lt", ["Django", "4.10"], True, "component 'Django' 4.2.7 (pypi) < 4.10"),
        ("eq", ["Django", "4.2.7.0"], True, "component 'Django' 4.2.7 (pypi) = 4.2.7.0"),
        ("gte", ["Django", "5.0"], False, "component 'Django' 4.2.7 (pypi) is not >= 5.0"),
        # npm: SemVer (a pre-release below its release)
        ("lt", ["left-pad", "1.3.0"], True, "component 'left-pad' 1.3.0-beta.2 (npm) < 1.3.0"),
        ("gt", ["left-pad", "1.3.0-beta.10"], False,
         "component 'left-pad' 1.3.0-beta.2 (npm) is not > 1.3.0-beta.10"),
        ("gte", ["npm:lodash", "4.17.21"], True, "component 'lodash' 4.17.21 (npm) >= 4.17.21"),
        ("neq", ["lodash", "4.17.21"], False,
         "component 'lodash' 4.17.21 (npm) is not != 4.17.21"),
        # Go: modules with their `v`, the toolchain's go1.x
        ("lt", ["golang.org/x/net", "v0.23.0"], True,
         "component 'golang.org/x/net' v0.17.0 (golang) < v0.23.0"),
        ("gte", ["go:golang.org/x/net", "0.17"], True,
         "component 'golang.org/x/net' v0.17.0 (golang) >= 0.17"),
        ("lt", ["stdlib", "go1.21.10"], True, "component 'stdlib' go1.21.3 (golang) < go1.21.10"),
        ("lte", ["golang:stdlib", "1.20"], False,
         "component 'stdlib' go1.21.3 (golang) is not <= 1.20"),
    ],
)  # fmt: skip
def test_component_version_in_its_ecosystems_order(
    operator: str, values: list[str], passed: bool, reason: str
) -> None:
    check("component.version", operator, values, passed, reason)


def test_component_version_without_such_a_component_fails() -> None:
    check("component.version", "lt", ["bash", "5"], False, "no component named 'bash'")
    check("component.version", "lt", ["Lodash", "5.0.0"], False, "no component named 'Lodash'")
    check("component.version", "lt", ["deb:django", "5"], False,
          "no component named 'django' in deb")  # fmt: skip
    check("component.version", "lt", ["npm:openssl", "5.0.0"], False,
          "no component named 'openssl' in npm")  # fmt: skip


def test_component_version_of_an_ecosystem_without_an_order_fails_saying_so() -> None:
    check("component.version", "gte", ["busybox", "1.36"], False,
          "component 'busybox' 1.36.1 (binary): "
          "no known version order compares it with 1.36")  # fmt: skip


def test_component_version_passes_when_any_component_of_the_name_compares_so() -> None:
    two = replace(FACTS, components=(
        ComponentFact("npm", "minimist", "0.0.8"), ComponentFact("npm", "minimist", "1.2.8"),
    ))  # fmt: skip
    check("component.version", "gte", ["minimist", "1.2.6"], True,
          "component 'minimist' 1.2.8 (npm) >= 1.2.6", two)  # fmt: skip
    check("component.version", "gt", ["minimist", "2.0.0"], False,
          "component 'minimist' 0.0.8 (npm), 1.2.8 (npm) is not > 2.0.0", two)  # fmt: skip


def test_a_name_with_a_colon_that_is_no_ecosystem_is_the_whole_name() -> None:
    maven = replace(FACTS, components=(
        ComponentFact("maven", "org.apache.commons:commons-text", "1.9"),
    ))  # fmt: skip
    compiled = rules({"field": "component.version", "operator": "gte",
                      "values": ["org.apache.commons:commons-text", "1.10.0"]})  # fmt: skip
    result = compiled.evaluate(maven, NOW).results[0]
    assert (result.passed, result.reason) == (
        False, "component 'org.apache.commons:commons-text' 1.9 (maven) is not >= 1.10.0"
    )  # fmt: skip
    prefixed = rules({"field": "component.version", "operator": "lt",
                      "values": ["maven:org.apache.commons:commons-text", "1.10.0"]})  # fmt: skip
    assert prefixed.evaluate(maven, NOW).passed


def test_component_version_that_its_ecosystem_cannot_read_fails_saying_so() -> None:
    # npm's SemVer has no shorthand "2"; without an ecosystem prefix it is read at evaluation
    check("component.version", "gt", ["lodash", "2"], False,
          "component 'lodash' 4.17.21 (npm): '2' is not a version of its ecosystem")  # fmt: skip


def test_scan_rules_wait_for_the_bom() -> None:
    unscanned = replace(FACTS, components=None)
    for field, operator, values in [
        ("component.name", "neq", ["x"]),
        ("component.version", "lt", ["x", "1"]),
        ("license.name", "noneof", ["x"]),
    ]:
        result = judge(field, operator, values, unscanned)
        assert (result.passed, result.reason) == (
            None,
            "waiting for a scan of the image (no BOM yet)",
        )


def test_an_image_with_an_empty_bom_has_no_component() -> None:
    empty = replace(FACTS, components=())
    check("component.name", "neq", ["openssl"], True, "no component equals 'openssl'", empty)
    check("license.name", "oneof", ["MIT"], False, "no license is one of 'MIT'", empty)


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "operator", "value", "passed", "reason"),
    [
        ("pushed", "olderthan", "1w", True,
         "pushed 2026-11-27T12:00:00Z (1w3d ago), older than 1w"),
        ("pushed", "olderthan", "1w3d", False,
         "pushed 2026-11-27T12:00:00Z (1w3d ago), not older than 1w3d"),
        ("pushed", "newerthan", "1d12h", False,
         "pushed 2026-11-27T12:00:00Z (1w3d ago), not newer than 1d12h"),
        ("pushed", "newerthan", "240h1m", True,
         "pushed 2026-11-27T12:00:00Z (1w3d ago), newer than 240h1m"),
        ("pushed", "before", "2026-12-01T00:00:00Z", True,
         "pushed 2026-11-27T12:00:00Z, before 2026-12-01T00:00:00Z"),
        ("pushed", "after", "2026-11-27T13:00:00+02:00", True,
         "pushed 2026-11-27T12:00:00Z, after 2026-11-27T11:00:00Z"),
        ("pushed", "after", "2026-11-28", False,
         "pushed 2026-11-27T12:00:00Z, not after 2026-11-28T00:00:00Z"),
        ("created", "before", "2026-11-01T00:00:00.5Z", True,
         "created 2026-11-01T00:00:00Z, before 2026-11-01T00:00:00.500000Z"),
        ("created", "after", "2026-11-01T00:00:00Z", False,
         "created 2026-11-01T00:00:00Z, not after 2026-11-01T00:00:00Z"),
        ("created", "olderthan", "30d", True,
         "created 2026-11-01T00:00:00Z (5w1d12h ago), older than 30d"),
        ("created_at", "newerthan", "90d", True,
         "created 2026-11-01T00:00:00Z (5w1d12h ago), newer than 90d"),
    ],
)  # fmt: skip
def test_times(field: str, operator: str, value: str, passed: bool, reason: str) -> None:
    check(field, operator, [value], passed, reason)


def test_an_image_without_a_creation_time_fails_created_rules() -> None:
    bare = replace(FACTS, created_at=None)
    for operator, value in [("before", "2030-01-01"), ("newerthan", "1d")]:
        check("created", operator, [value], False, "no creation time in the image config", bare)


# --- the runaway pattern -----------------------------------------------------------------------


def test_a_runaway_pattern_is_stopped_by_the_time_limit_and_fails_its_rule() -> None:
    limits = PoliciesSettings(regex_timeout_ms=50)
    compiled = rules(
        {"field": "tag", "operator": "matches", "values": ["(a|a)*$"]},
        {"field": "tag", "operator": "sw", "values": ["a"]},
        limits=limits,
    )
    evaluation = compiled.evaluate(replace(FACTS, tag="a" * 30 + "b"), NOW)
    assert evaluation.outcome is Outcome.FAILED
    first, second = evaluation.results
    assert first.passed is False
    assert first.reason == "pattern '(a|a)*$' ran past its time limit (50 ms)"
    assert second.passed is True  # the other rules still report


def test_a_runaway_pattern_over_the_components_fails_its_rule() -> None:
    many = replace(FACTS, components=tuple(
        ComponentFact("npm", "a" * 30 + f"b{i}", "1.0.0") for i in range(20)
    ))  # fmt: skip
    result = judge("component.name", "matches", ["^lib", "(a|a)*$"], many)
    assert (result.passed, result.reason) == (
        False, "pattern '(a|a)*$' ran past its time limit (100 ms)"
    )  # fmt: skip


def test_the_patterns_of_a_list_share_one_limit_per_image() -> None:
    # after a runaway, a later pattern finds no time left; the next image starts afresh
    compiled = rules(
        {"field": "tag", "operator": "matches", "values": ["(a|a)*$"]},
        {"field": "repository", "operator": "matches", "values": ["^dev/"]},
        limits=PoliciesSettings(regex_timeout_ms=20),
    )
    runaway = compiled.evaluate(replace(FACTS, tag="a" * 30 + "b"), NOW).results
    assert [(r.passed, r.reason) for r in runaway] == [
        (False, "pattern '(a|a)*$' ran past its time limit (20 ms)"),
        (False, "pattern '^dev/' ran past its time limit (20 ms)"),
    ]
    calm = compiled.evaluate(replace(FACTS, tag="1.2"), NOW).results
    assert [(r.passed, r.reason) for r in calm] == [
        (True, "tag '1.2' matches '(a|a)*$'"),
        (True, "repository 'dev/app' matches '^dev/'"),
    ]


# --- refusals at creation ----------------------------------------------------------------------

R = {"field": "tag", "operator": "eq", "values": ["x"]}


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        ("tag eq x", "rules", "a list of rules"),
        ({"field": "tag"}, "rules", "a list of rules"),
        ([R] * 51, "rules", "51 rules; a policy holds at most 50"),
        (["tag"], "rules[0]", "a rule is an object"),
        ([R, {"field": "tag", "operator": "eq"}], "rules[1]", "the rule has no 'values'"),
        ([{"operator": "eq", "values": ["x"]}], "rules[0]", "the rule has no 'field'"),
        ([{"field": "tag", "values": ["x"]}], "rules[0]", "the rule has no 'operator'"),
        ([{**R, "extra": 1}], "rules[0]", "unknown key 'extra'"),
        ([{**R, "Field": "tag"}], "rules[0]", "a key is given twice"),
        ([{**R, "field": "colour"}], "rules[0].field", "unknown field 'colour' (known: tag,"),
        ([{**R, "field": 3}], "rules[0].field", "a field is a name"),
        ([{**R, "field": "label."}], "rules[0].field", "names a label of 1 to 256 characters"),
        ([{**R, "operator": "like"}], "rules[0].operator", "unknown operator 'like' (known: eq,"),
        ([{**R, "operator": None}], "rules[0].operator", "an operator is a name"),
        ([{**R, "operator": "gt"}], "rules[0].operator",
         "field 'tag' does not take operator 'gt' (it takes: eq, neq, sw, ew, c, oneof, noneof, "
         "matches)"),
        ([{"field": "size", "operator": "sw", "values": ["1"]}], "rules[0].operator",
         "field 'size' does not take operator 'sw' (it takes: eq, neq, gt, gte, lt, lte)"),
        ([{"field": "pushed", "operator": "lt", "values": ["1"]}], "rules[0].operator",
         "field 'pushed' does not take operator 'lt' (it takes: before, after, olderthan, "
         "newerthan)"),
        ([{"field": "vulnerability.all", "operator": "before", "values": ["1"]}],
         "rules[0].operator", "does not take operator 'before'"),
        ([{**R, "values": "x"}], "rules[0].values", "values is a list of strings"),
        ([{**R, "values": []}], "rules[0].values", "a rule needs at least one value"),
        ([{**R, "values": ["x"] * 101}], "rules[0].values", "101 values; a rule holds at most 100"),
        ([{**R, "values": ["x", None]}], "rules[0].values[1]", "a value is a string or a number"),
        ([{**R, "values": [True]}], "rules[0].values[0]", "a value is a string or a number"),
        ([{**R, "values": [float("nan")]}], "rules[0].values[0]",
         "a value is a string or a number"),
        ([{**R, "values": ["x" * 1025]}], "rules[0].values[0]", "longer than 1024 characters"),
        ([{**R, "values": [10**5000]}], "rules[0].values[0]", "longer than 1024 characters"),
        ([{**R, "operator": "matches", "values": ["ok", "(unclosed"]}], "rules[0].values[1]",
         "'(unclosed' is not a regular expression: missing )"),
        ([{"field": "vulnerability.critical", "operator": "lte", "values": [-1]}],
         "rules[0].values[0]", "'-1' is not a count: a whole number"),
        ([{"field": "vulnerability.critical", "operator": "lte", "values": ["few"]}],
         "rules[0].values[0]", "'few' is not a count"),
        ([{"field": "vulnerability.critical", "operator": "lte", "values": [0.5]}],
         "rules[0].values[0]", "'0.5' is not a count"),
        ([{"field": "vulnerability.critical", "operator": "lte", "values": [0, 1]}],
         "rules[0].values", "this rule takes one value"),
        ([{"field": "size", "operator": "lt", "values": ["500 parsecs"]}], "rules[0].values[0]",
         "'500 parsecs' is not a size: bytes, or a number with a unit"),
        ([{"field": "size", "operator": "lt", "values": ["-5MB"]}], "rules[0].values[0]",
         "is not a size"),
        ([{"field": "size", "operator": "lt", "values": ["99999999EiB"]}], "rules[0].values[0]",
         "larger than any image"),
        ([{"field": "pushed", "operator": "before", "values": ["yesterday"]}],
         "rules[0].values[0]", "'yesterday' is not an RFC 3339 time"),
        ([{"field": "pushed", "operator": "before", "values": ["2026-02-30T00:00:00Z"]}],
         "rules[0].values[0]", "is not a real time"),
        ([{"field": "pushed", "operator": "before", "values": ["2026-01-01T00:00:00"]}],
         "rules[0].values[0]", "is not an RFC 3339 time"),  # no offset
        ([{"field": "pushed", "operator": "olderthan", "values": ["3 days"]}],
         "rules[0].values[0]", "'3 days' is not a duration: a number and a unit, w d h m or s"),
        ([{"field": "pushed", "operator": "olderthan", "values": ["12h1d"]}],
         "rules[0].values[0]", "largest first"),
        ([{"field": "pushed", "operator": "olderthan", "values": ["40000d"]}],
         "rules[0].values[0]", "'40000d' is longer than 36525 days"),
        ([{"field": "pushed", "operator": "after", "values": ["1d", "2d"]}], "rules[0].values",
         "this rule takes one value"),
        ([{"field": "component.version", "operator": "lt", "values": ["openssl"]}],
         "rules[0].values", "this rule takes 2 values: [name, version]"),
        ([{"field": "component.version", "operator": "lt", "values": [" ", "1"]}],
         "rules[0].values[0]", "the component's name is empty"),
        ([{"field": "component.version", "operator": "lt", "values": ["x", ""]}],
         "rules[0].values[1]", "the version is empty"),
        ([{"field": "component.version", "operator": "lt", "values": ["pypi:django", "four"]}],
         "rules[0].values[1]", "'four' is not a version of the pypi ecosystem"),
        ([{"field": "component.version", "operator": "sw", "values": ["x", "1"]}],
         "rules[0].operator", "field 'component.version' does not take operator 'sw'"),
    ],
)  # fmt: skip
def test_refused_at_creation_with_a_clear_message(data: Any, where: str, message: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        compile_rules(data, LIMITS, component_version_order)
    assert refused.value.where == where
    assert message in refused.value.reason


def test_the_limits_come_from_the_settings() -> None:
    small = PoliciesSettings(max_rules=2, max_values=3)
    rules(R, R, limits=small)
    rules({**R, "values": ["a", "b", "c"]}, limits=small)
    with pytest.raises(PolicyInvalid, match="3 rules; a policy holds at most 2"):
        rules(R, R, R, limits=small)
    with pytest.raises(PolicyInvalid, match="4 values; a rule holds at most 3"):
        rules({**R, "values": ["a", "b", "c", "d"]}, limits=small)


# --- names and the stored form ----------------------------------------------------------------


@pytest.mark.parametrize(("alias", "canonical"), sorted(OPERATOR_ALIASES.items()))
def test_operator_aliases_are_read_case_insensitively(alias: str, canonical: str) -> None:
    field = "tag"
    if canonical in NUMBER_OPERATORS and canonical not in STRING_OPERATORS:
        field = "size"
    elif canonical in TIME_OPERATORS:
        field = "pushed"
    value = {"pushed": "1d" if "than" in canonical else "2026-01-01", "size": "1"}.get(field, "x")
    written = alias.upper().replace("_", " ")  # "NOT ONE OF", "STARTS WITH"
    compiled = rules({"field": field, "operator": written, "values": [value]})
    assert compiled.canonical[0]["operator"] == canonical


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("TAG", "tag"),
        ("Component", "component.name"),
        ("license", "license.name"),
        ("vulnerability_all", "vulnerability.all"),
        ("Vulnerability_Critical", "vulnerability.critical"),
        ("vulnerability_major", "vulnerability.major"),
        ("vulnerability_minor", "vulnerability.minor"),
        ("vulnerability_unknown", "vulnerability.unknown"),
        ("labels.tier", "label.tier"),
        (" Platform ", "platform"),
    ],
)
def test_field_aliases_are_stored_under_their_canonical_name(alias: str, canonical: str) -> None:
    operator = "lte" if canonical.startswith("vuln") else "eq"
    compiled = rules({"field": alias, "operator": operator, "values": ["0"]})
    assert compiled.canonical[0]["field"] == canonical


def test_numbers_are_stored_as_strings() -> None:
    compiled = rules(
        {"field": "vulnerability.all", "operator": "lte", "values": [3]},
        {"field": "size", "operator": "lt", "values": [1.5e9]},
        {"field": "tag", "operator": "oneof", "values": [1, 2.5]},
    )
    assert [r["values"] for r in compiled.canonical] == [["3"], ["1500000000"], ["1", "2.5"]]


def test_the_stored_form_is_a_copy() -> None:
    compiled = rules(R)
    compiled.canonical[0]["values"].append("y")
    assert compiled.canonical == [R]


def test_a_stored_tuple_of_rules_compiles_as_a_list_does() -> None:
    # PolicyRecord.rules is a tuple of mappings
    assert compile_rules((R,), LIMITS, component_version_order).canonical == [R]


_STRING_FIELDS = [n for n, s in FIELDS.items() if s.kind.value == "string"] + ["label.k"]
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_STRING_RULES = st.builds(
    lambda f, o, v: {"field": f, "operator": o, "values": v},
    st.sampled_from(_STRING_FIELDS),
    st.sampled_from([o for o in STRING_OPERATORS if o != "matches"]),
    st.lists(_text, min_size=1, max_size=4),
)
_NUMBER_RULES = st.builds(
    lambda f, o, n: {"field": f, "operator": o, "values": [n]},
    st.sampled_from([n for n in FIELDS if n.startswith("vulnerability.")]),
    st.sampled_from(NUMBER_OPERATORS),
    st.integers(0, 10**9).map(str),
)
_SIZE_RULES = st.builds(
    lambda o, n, u: {"field": "size", "operator": o, "values": [f"{n}{u}"]},
    st.sampled_from(NUMBER_OPERATORS),
    st.integers(0, 10**6),
    st.sampled_from(["", "B", "kB", "KiB", "MB", "MiB", "GB", "GiB", "TB", " MB"]),
)
_TIME_RULES = st.builds(
    lambda f, o, d, t: {"field": f, "operator": o,
                        "values": [d if o in ("olderthan", "newerthan") else t]},
    st.sampled_from(["pushed", "created"]),
    st.sampled_from(TIME_OPERATORS),
    st.sampled_from(["90d", "12h", "30m", "2w", "1d12h", "45s"]),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda t: t.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    ),
)  # fmt: skip
_VERSION_RULES = st.builds(
    lambda o, n, v: {"field": "component.version", "operator": o, "values": [n, v]},
    st.sampled_from(NUMBER_OPERATORS),
    st.sampled_from(["openssl", "pypi:django", "npm:lodash", "go:golang.org/x/net", "deb:bash"]),
    st.sampled_from(["1.0.0", "2.3.4", "4.2.0"]),
)
RULES = st.lists(
    _STRING_RULES | _NUMBER_RULES | _SIZE_RULES | _TIME_RULES | _VERSION_RULES, max_size=8
)


@given(RULES)
def test_the_stored_form_reads_back_as_itself(data: list[dict[str, Any]]) -> None:
    compiled = compile_rules(data, LIMITS, component_version_order)
    assert compiled.canonical == data  # written in canonical names already
    again = compile_rules(compiled.canonical, LIMITS, component_version_order)
    assert again.canonical == compiled.canonical
    assert again.needs == compiled.needs
    assert again.evaluate(FACTS, NOW) == compiled.evaluate(FACTS, NOW)


_ALIASED_FIELDS = {"component": "component.name", "license": "license.name",
                   "vulnerability_all": "vulnerability.all", "labels.k": "label.k"}  # fmt: skip


@given(RULES, st.data())
def test_aliases_and_case_store_the_canonical_form(
    data: list[dict[str, Any]], draw: st.DataObject
) -> None:
    written = []
    for rule in data:
        names = [a for a, c in _ALIASED_FIELDS.items() if c == rule["field"]] + [rule["field"]]
        field = draw.draw(st.sampled_from(names))
        aliases = [a for a, c in OPERATOR_ALIASES.items() if c == rule["operator"]]
        operator = draw.draw(st.sampled_from(aliases))
        if draw.draw(st.booleans()):  # a label's key keeps its case
            head, dot, key = field.partition(".") if field.startswith("label") else (field, "", "")
            field, operator = head.upper() + dot + key, operator.upper()
        written.append({"field": field, "operator": operator, "values": rule["values"]})
    assert compile_rules(written, LIMITS, component_version_order).canonical == data


@given(st.lists(st.dictionaries(_text, _text | st.integers() | st.none(), max_size=4), max_size=4))
def test_any_junk_is_refused_or_compiled_never_an_other_error(junk: list[Any]) -> None:
    with contextlib.suppress(PolicyInvalid):
        compile_rules(junk, LIMITS, component_version_order)


_ANY_VALUE = (
    _text
    | st.integers()
    | st.floats()
    | st.booleans()
    | st.none()
    | st.sampled_from(["0", "1d", "500MB", "2026-01-01", "pypi:django", "4.2", "(a|a)*$", "[z-a]"])
)
_ANY_RULE = st.fixed_dictionaries(
    {
        "field": st.sampled_from([*FIELD_ALIASES, "label.x", "labels.", "bogus"])
        | _text
        | st.none(),
        "operator": st.sampled_from(sorted(OPERATOR_ALIASES)) | _text | st.integers(),
        "values": st.lists(_ANY_VALUE, max_size=3) | _ANY_VALUE,
    }
)
_BARE = replace(FACTS, tag=None, components=None, vulnerabilities=None, created_at=None)


@given(st.lists(_ANY_RULE, max_size=4))
def test_any_rule_is_refused_or_judges_every_image_with_a_reason(data: list[Any]) -> None:
    try:
        compiled = compile_rules(data, LIMITS, component_version_order)
    except PolicyInvalid as refused:
        where = refused.where
        compiled = None
    if compiled is None:
        assert where.startswith("rules[")
        return
    for facts in (FACTS, _BARE):
        for result in compiled.evaluate(facts, NOW).results:
            assert result.reason
    again = compile_rules(compiled.canonical, LIMITS, component_version_order)
    assert again.canonical == compiled.canonical
