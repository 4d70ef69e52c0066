"""CEL policies: every variable, version_compare, what is refused at creation and why, pending
when a fact group is missing, and run-time errors that fail with their reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustyard.config import PoliciesSettings
from trustyard.policies.expression_check import MAX_DEPTH
from trustyard.policies.expressions import Expression, compile_expression
from trustyard.policies.interfaces import (
    ComponentFact,
    ImageFacts,
    Need,
    Outcome,
    PolicyInvalid,
    VulnCounts,
)
from trustyard.vulnerabilities.ordering import component_version_order

LIMITS = PoliciesSettings()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32

FACTS = ImageFacts(
    repository="dev/app",
    digest=DIGEST,
    media_type="application/vnd.oci.image.index.v1+json",
    tag="1.2-stable",
    tags=("1.2-stable", "latest"),
    size=150_000_000,
    pushed_at=datetime(2026, 5, 30, tzinfo=UTC),
    created_at=datetime(2025, 12, 24, 8, 0),  # naive, as SQLite hands it back: read as UTC
    labels={"team": "payments", "org.opencontainers.image.version": "1.2"},
    platforms=("linux/amd64", "linux/arm64/v8"),
    components=(
        ComponentFact("deb", "openssl", "3.0.11-1~deb12u2", ("Apache-2.0",), "pkg:deb/openssl"),
        ComponentFact("pypi", "django", "4.2.7", ("BSD-3-Clause",), "pkg:pypi/django@4.2.7"),
        ComponentFact("npm", "lodash", "4.17.21", ("MIT",), "pkg:npm/lodash@4.17.21"),
        ComponentFact("golang", "golang.org/x/net", "v0.17.0", (), "pkg:golang/x/net"),
    ),
    vulnerabilities=VulnCounts(critical=0, major=2, minor=5, unknown=1),
    signatures=("ci@example.com",),
)


def compiled(text: str, limits: PoliciesSettings = LIMITS) -> Expression:
    return compile_expression(text, limits, component_version_order)


def judge(text: str, facts: ImageFacts = FACTS) -> tuple[Outcome, str]:
    evaluation = compiled(text).evaluate(facts, NOW)
    (result,) = evaluation.results
    assert result.index == 0
    assert result.rule == {"expression": text}
    return evaluation.outcome, result.reason


# --- every variable -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        ('repository == "dev/app"', True),
        ('repository.startsWith("prod/")', False),
        (f'digest == "{DIGEST}"', True),
        ('media_type.endsWith("index.v1+json")', True),
        ('tag.endsWith("-stable")', True),
        ('tag.matches("^[0-9]+\\\\.[0-9]+-stable$")', True),
        ('"latest" in tags && size(tags) == 2', True),
        ("size > 100000000 && size < 200000000", True),
        ('pushed_at > now - duration("72h")', True),
        ('pushed_at < now - duration("90d")', False),
        ('created_at < timestamp("2026-01-01T00:00:00Z")', True),
        ("created_at.getFullYear() == 2025 && created_at.getMonth() == 11", True),
        ('labels.team == "payments"', True),
        ('labels["org.opencontainers.image.version"] == "1.2"', True),
        ("has(labels.owner)", False),
        ('"linux/arm64/v8" in platforms', True),
        ('platforms.all(p, p.startsWith("linux/"))', True),
        ('components.exists(c, c.name == "django" && c.ecosystem == "pypi")', True),
        ('components.exists(c, c.version == "4.17.21" && c.purl.contains("lodash"))', True),
        ('components.exists(c, "MIT" in c.licenses)', True),
        ('!components.exists(c, "GPL-3.0-only" in c.licenses)', True),
        ('components.filter(c, c.ecosystem == "deb").size() == 1', True),
        ('components.map(c, c.name).exists(n, n == "openssl")', True),
        ('components.exists_one(c, c.name.startsWith("golang.org/"))', True),
        ("vulnerabilities.critical == 0", True),
        ("vulnerabilities.major <= 1", False),
        ("vulnerabilities.minor == 5 && vulnerabilities.unknown == 1", True),
        ("vulnerabilities.all == 8", True),
        ('"ci@example.com" in signatures', True),
        ("size(signatures) == 0", False),
        ('now == timestamp("2026-06-01T12:00:00Z")', True),
        ('.tag == "1.2-stable"', True),  # a leading dot names the root scope
        ("true ? size > 1 : false", True),
        # literals and operators, as the evaluator sees them (chains of grammar levels cut)
        ('tag in ["1.1-stable", "1.2-stable"]', True),
        ('{"payments": 1, "search": 2}[labels.team] == 1', True),
        ("-size < 0 && size % 2 == 0 && size / 1000 * 1000 == size", True),
        ("!(size > 1) || !(vulnerabilities.critical > 0)", True),
        ('double(size) >= 1.5e8 && uint(size) > 1u && string(size).startsWith("15")', True),
        ("has(labels.team) && size(labels) == 2", True),
    ],
)
def test_every_variable(text: str, passes: bool) -> None:
    outcome, reason = judge(text)
    assert outcome is (Outcome.PASSED if passes else Outcome.FAILED), reason
    assert reason == f"the expression is {'true' if passes else 'false'}"


def test_by_digest_the_tag_is_null() -> None:
    by_digest = replace(FACTS, tag=None)
    assert judge("tag == null", by_digest)[0] is Outcome.PASSED
    assert judge('tag != null && tag.endsWith("stable")', by_digest)[0] is Outcome.FAILED
    outcome, reason = judge('tag.endsWith("stable")', by_digest)
    assert outcome is Outcome.FAILED
    assert reason.startswith("the expression could not be evaluated: no such overload")


@pytest.mark.parametrize(
    ("text", "needs"),
    [
        ('tag != "x" && size > 1 && "linux/amd64" in platforms && now > pushed_at', set()),
        ('labels.team == "payments"', {Need.CONFIG}),
        ("created_at != null", {Need.CONFIG}),
        ("size(components) > 0", {Need.SCAN}),
        ("vulnerabilities.critical == 0", {Need.VULNERABILITIES}),
        (
            "vulnerabilities.all > 0 || components.exists(c, c.name == labels.team)",
            {Need.SCAN, Need.VULNERABILITIES, Need.CONFIG},
        ),
        # a comprehension's own variable may share a fact's name: it reads no fact
        ('tags.exists(components, components == "latest")', set()),
    ],
)
def test_needs_follow_the_variables_read(text: str, needs: set[Need]) -> None:
    expression = compiled(text)
    assert expression.needs == needs
    assert expression.evaluate(FACTS, NOW).outcome is Outcome.PASSED


# --- version comparison inside CEL --------------------------------------------------------


@pytest.mark.parametrize(
    ("ecosystem", "lower", "higher"),
    [
        ("deb", "3.0.11-1~deb12u2", "3.0.11-1"),  # a tilde sorts before anything
        ("deb", "9.9", "1:1.0"),  # the epoch first
        ("pypi", "4.2.7", "4.10"),
        ("pypi", "2.0rc1", "2.0"),
        ("npm", "1.0.0-alpha.1", "1.0.0"),
        ("npm", "4.17.9", "4.17.21"),
        ("golang", "v0.9.0", "v0.17.0"),
        ("golang", "v1.2.0-pre", "v1.2.0"),
    ],
)
def test_version_compare_uses_the_ecosystems_order(ecosystem: str, lower: str, higher: str) -> None:
    text = (
        f'version_compare("{ecosystem}", "{lower}", "{higher}") < 0 && '
        f'version_compare("{ecosystem}", "{higher}", "{lower}") > 0 && '
        f'version_compare("{ecosystem}", "{lower}", "{lower}") == 0'
    )
    assert judge(text) == (Outcome.PASSED, "the expression is true")


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        (  # openssl < 3.0.12 under Debian's order
            'components.exists(c, c.name == "openssl" && '
            'version_compare(c.ecosystem, c.version, "3.0.12") < 0)',
            True,
        ),
        (  # django >= 4.2 under PEP 440 (a string comparison would say "4.10" < "4.2")
            'components.exists(c, c.name == "django" && '
            'version_compare(c.ecosystem, c.version, "4.10") >= 0)',
            False,
        ),
        (
            'components.all(c, c.ecosystem != "npm" || '
            'version_compare(c.ecosystem, c.version, "4.17.20") > 0)',
            True,
        ),
    ],
)
def test_version_compare_over_components(text: str, passes: bool) -> None:
    assert judge(text)[0] is (Outcome.PASSED if passes else Outcome.FAILED)


def test_version_compare_without_an_order_fails_saying_so() -> None:
    outcome, reason = judge('version_compare("cobol", "1", "2") < 0')
    assert outcome is Outcome.FAILED
    assert "cannot compare versions '1' and '2' under ecosystem 'cobol'" in reason
    outcome, reason = judge('version_compare("golang", "v1.0.0", "not a version") < 0')
    assert outcome is Outcome.FAILED
    assert "cannot compare versions" in reason


# --- refused at creation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ('tag == "a" &&', "does not parse: unexpected input at line 1"),
        ("tag = 'a'", "does not parse"),
        ('tagg == "a"', "unknown name 'tagg' (the variables are: repository, digest"),
        ('lookup(tag) == "a"', "unknown function 'lookup'"),
        ('tag.lower() == "a"', "unknown function 'lower' on a string"),
        ("vulnerabilities.high == 0", "no field 'high' (the fields are: critical, major"),
        ('components.exists(c, c.licence == "MIT")', "no field 'licence'"),
        ("size.bytes > 1", "an int has no fields"),
        ('size > "500MB"', "`>` does not take an int and a string"),
        ("vulnerabilities.critical == 0.0", "`==` does not take an int and a double"),
        ("size == null", "`==` does not take an int and a null"),
        ('tag + 1 == "a"', "`+` does not take a string and an int"),
        ('"x" in size', "`in` does not take a string and an int"),
        ("size", "the expression gives an int, not a bool"),
        ("labels.team", "the expression gives a string, not a bool"),
        ('components.map(c, c.name) == ["x"] ? 1 : 2', "gives an int, not a bool"),
        ("!size", "`!` needs a bool, not an int"),
        ("size && true", "`&&` needs a bool, not an int"),
        ("components.exists(c, c.name)", "the body of exists() must be a bool, not a string"),
        ("size.exists(x, x > 0)", "exists() walks a list or a map, not an int"),
        ('tags.exists("t", true)', "the first argument of exists() must be a variable name"),
        ("tags.all(t)", "all() takes a variable name and an expression"),
        (
            'components.exists(c, c.licenses.exists(l, l == "MIT"))',
            "exists() inside the body of exists(): comprehensions may not nest",
        ),
        (
            "tags.all(t, tags.exists(u, u == t))",
            "exists() inside the body of all(): comprehensions may not nest",
        ),
        (
            "components.all(c, c in components)",
            "`components` is read inside the body of all()",
        ),
        ('version_compare("pypi", "1.0") < 0', "version_compare() takes 3 argument(s), not 2"),
        ('version_compare("pypi", 1, "2") < 0', "version_compare() takes a string here"),
        ('pushed_at < now - duration("3 months")', "duration('3 months') does not parse"),
        ('pushed_at < timestamp("yesterday")', "timestamp('yesterday') does not parse"),
        ('tag.matches("(unclosed")', "pattern '(unclosed' is not a regular expression"),
        # `regex` writes counted repeats out in full: this one would never finish compiling
        ('tag.matches("((a{1000}){1000}){1000}")', "repeats too much"),
        (
            " || ".join(f'tag.matches("a{{{9000 + i}}}")' for i in range(6)),
            "the patterns of this expression would compile to more than 50000 steps",
        ),
        ("has(size)", "has() takes a field selection"),
        ("has(vulnerabilities.high)", "no field 'high'"),
        # has() swallows the error of a missing group: it would pass this before any scan
        (
            "!has(vulnerabilities.critical) || vulnerabilities.critical == 0",
            "has() tests a key of a map such as labels",
        ),
        ('components.exists(c, has(c.purl) && c.purl != "")', "has() tests a key of a map"),
        ("has(components[0].name)", "has() tests a key of a map"),
        ("has(dyn(vulnerabilities).critical)", "has() tests a key of a map"),
        ('Image{tag: "x"} == null', "message construction"),
        (".size(tags) == 2", "a function called with a leading dot"),
        ("size.getFullYear() == 2026", "getFullYear() takes a timestamp"),
        ("pushed_at.getHours(1, 2) == 0", "getHours() takes a duration or timestamp"),
        ('size.startsWith("1")', "startsWith() takes a string and a string, not int, string"),
        ("size.size() == 1", "size() takes a string, bytes, list or map, not an int"),
        ('tag.size("x") == 1', "size() takes 0 argument(s), not 1"),
        ("(" * 40 + "true" + ")" * 40, f"nests too deeply (past {MAX_DEPTH} levels"),
    ],
)
def test_refused_at_creation_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        compiled(text)
    assert refused.value.where == "expression"
    assert message in refused.value.reason, refused.value.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # cel-python's string pattern would try 2**40 splits of these before failing
        ('tag == "' + "\\\\" * 40, "the string opened at line 1, column 8 does not end"),
        ("tag == '" + "\\\\" * 40 + "\n'", "does not end on its line"),
        ('tag == "a\\\n"', "does not end on its line"),
        ('size > 0 &&\n  tag == """' + "\\\\" * 40, "line 2, column 10 does not end"),
    ],
)
def test_a_string_that_does_not_end_is_refused_at_once(text: str, message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        compiled(text)


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        ('tag != "\\\\" && tag != "\\""', True),
        ("tag != '\"' && tag != \"'\"", True),
        ('labels.team == """payments"""', True),
        ('size("""pay\nments""") >= 8', True),  # a triple-quoted string spans lines
        ('labels.team == r"payments" // a "comment\n && size > 0', True),
        ('tag == "//" || tag == "1.2-stable"', True),
        ("tag == ''", False),
    ],
)
def test_strings_that_end_parse(text: str, passes: bool) -> None:
    assert judge(text)[0] is (Outcome.PASSED if passes else Outcome.FAILED)


def test_too_long_is_refused_before_parsing() -> None:
    limits = PoliciesSettings(max_expression_chars=64)
    text = "size > 0 && " * 5 + "size > 0"
    assert len(text) == 68
    with pytest.raises(PolicyInvalid, match="68 characters long, more than the 64 allowed"):
        compiled(text, limits)
    assert compiled("size > 0 && " * 4 + "size > 0", limits).needs == frozenset()


def test_refusals_point_at_the_place() -> None:
    with pytest.raises(PolicyInvalid, match=r"unknown name 'tagz' \(.*\) \(line 2, column 5\)"):
        compiled('size > 0 &&\n    tagz == "a"')


def test_a_long_chain_of_alternatives_within_the_depth_limit_evaluates() -> None:
    text = " || ".join(f'tag == "v{i}"' for i in range(150)) + ' || tag == "1.2-stable"'
    assert judge(text) == (Outcome.PASSED, "the expression is true")


def test_a_chain_of_unary_operators_is_checked_once_per_level() -> None:
    # each `!` used to type its operand twice: 2**200 walks, a creation that never ended
    assert judge("!" * 200 + "true") == (Outcome.PASSED, "the expression is true")
    assert judge("-" * 100 + "size < 0")[0] is Outcome.FAILED
    with pytest.raises(PolicyInvalid, match="`!` needs a bool, not an int"):
        compiled("!" * 100 + "size")


def test_what_cel_leaves_to_run_time_still_checks() -> None:
    # dyn() hides the type from the check: the non-boolean result fails when evaluated
    outcome, reason = judge("dyn(size)")
    assert outcome is Outcome.FAILED
    assert reason == "the expression gives int 150000000, not true or false"


# --- pending: a fact group not there yet --------------------------------------------------

UNSCANNED = replace(FACTS, components=None, vulnerabilities=None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('components.exists(c, c.name == "openssl")', "components are not known yet"),
        ("size(components) == 0", "components are not known yet"),
        ("vulnerabilities.critical == 0", "vulnerability counts are not known yet"),
        ('!components.exists(c, c.name == "x")', "components are not known yet"),
        ('{"v": vulnerabilities}.size() == 1', "vulnerability counts are not known yet"),
        ("[vulnerabilities].size() == 1", "vulnerability counts are not known yet"),
        ("components.map(c, c.name).size() >= 0", "components are not known yet"),
        ("vulnerabilities != null", "vulnerability counts are not known yet"),
        (
            'tag.endsWith("stable") && vulnerabilities.all == 0 && size(components) < 500',
            "components are not known yet (no finished scan); vulnerability counts are not "
            "known yet (not matched yet)",
        ),
    ],
)
def test_a_missing_fact_group_is_pending(text: str, reason: str) -> None:
    outcome, said = judge(text, UNSCANNED)
    assert outcome is Outcome.PENDING
    assert reason in said


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        # decided without the scan: no need to wait for one
        ('tag == "other" && vulnerabilities.critical == 0', Outcome.FAILED),
        ('vulnerabilities.critical == 0 && tag == "other"', Outcome.FAILED),
        ('tag.endsWith("stable") || components.exists(c, c.name == "x")', Outcome.PASSED),
        ("size > 1", Outcome.PASSED),
    ],
)
def test_an_outcome_decided_without_the_missing_group_is_given(text: str, outcome: Outcome) -> None:
    assert judge(text, UNSCANNED)[0] is outcome


def test_an_empty_bom_is_not_missing() -> None:
    empty = replace(FACTS, components=(), vulnerabilities=VulnCounts())
    assert judge("size(components) == 0 && vulnerabilities.all == 0", empty)[0] is (Outcome.PASSED)


# --- run-time errors fail with their reason -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('labels.owner == "me"', "no such member in mapping: 'owner'"),
        ('labels["owner"] == "me"', "no such key"),
        ('tags[5] == "x"', "invalid_argument"),
        ("size / (size - size) == 1", "divide by zero"),
        ("int(tag) == 1", "return error for overflow"),
        ('tag.matches(labels.team + "(")', "pattern 'payments(' is not a regular expression"),
        ('tag.matches(labels.team + "{1000000}")', "pattern 'payments{1000000}' repeats too much"),
    ],
)
def test_a_run_time_error_fails_with_its_reason(text: str, reason: str) -> None:
    outcome, said = judge(text)
    assert outcome is Outcome.FAILED
    assert said.startswith("the expression could not be evaluated: ")
    assert reason in said, said


def test_a_runaway_pattern_is_stopped_and_fails() -> None:
    limits = PoliciesSettings(regex_timeout_ms=20)
    expression = compile_expression('tag.matches("(a|aa)+$")', limits, component_version_order)
    runaway = replace(FACTS, tag="a" * 60 + "-x")
    (result,) = expression.evaluate(runaway, NOW).results
    assert result.passed is False
    assert result.reason == (
        "the expression could not be evaluated: pattern '(a|aa)+$' ran past its time limit (20 ms)"
    )


def test_a_runaway_pattern_spends_its_time_limit_once_per_evaluation() -> None:
    limits = PoliciesSettings(regex_timeout_ms=20)
    expression = compile_expression(
        'components.exists(c, c.name.matches("(a|aa)+$"))', limits, component_version_order
    )
    many = tuple(ComponentFact("npm", "a" * 60 + f"-{i}", "1") for i in range(1000))
    for _ in range(2):  # and the next evaluation starts with the full limit again
        (result,) = expression.evaluate(replace(FACTS, components=many), NOW).results
        assert result.passed is False
        assert result.reason.endswith("pattern '(a|aa)+$' ran past its time limit (20 ms)")


UNORDERED = tuple(ComponentFact("cobol", f"lib{i}", f"{i}.0") for i in range(1000))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # cel-python quoted both errors into the next at each step: 2**n over the BOM
        (
            'components.exists(c, version_compare(c.ecosystem, c.version, "2.0") < 0)',
            "cannot compare versions '0.0' and '2.0' under ecosystem 'cobol'",
        ),
        ("components.all(c, labels.owner == c.name)", "no such member in mapping: 'owner'"),
        (" || ".join(f'labels.l{i} == "x"' for i in range(60)), "no such member in mapping: 'l0'"),
        (" && ".join(f'labels.l{i} == "x"' for i in range(60)), "no such member in mapping: 'l0'"),
    ],
)
def test_errors_over_many_elements_fail_with_the_first(text: str, reason: str) -> None:
    outcome, said = judge(text, replace(FACTS, components=UNORDERED))
    assert outcome is Outcome.FAILED
    assert said == "the expression could not be evaluated: " + reason + (
        "" if "cobol" not in reason else " (no known order, or a version that does not parse in it)"
    )


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        # a decisive element wins over the errors of others, as `||` and `&&` do
        ('components.exists(c, c.name == "django" || labels.owner == c.name)', Outcome.PASSED),
        ('components.all(c, c.name != "django" && labels.owner == c.name)', Outcome.FAILED),
        ('components.all(c, c.name != "" || labels.owner == c.name)', Outcome.PASSED),
        # without one, the first error fails the expression
        ('components.exists(c, c.name == "x" || labels.owner == c.name)', Outcome.FAILED),
        ('components.exists_one(c, c.name == "django" || labels.owner == c.name)', Outcome.FAILED),
        ("components.filter(c, labels.owner == c.name).size() >= 0", Outcome.FAILED),
        ("components.map(c, labels.owner + c.name).size() >= 0", Outcome.FAILED),
        ('components.exists_one(c, c.name == "django")', Outcome.PASSED),
        ('components.exists_one(c, c.name != "django")', Outcome.FAILED),
        ("components.filter(c, c.licenses.size() == 0).size() == 1", Outcome.PASSED),
        ("dyn(size).exists(x, true)", Outcome.FAILED),
        ("dyn(tags).exists(x, x)", Outcome.FAILED),
        ("dyn(tags).filter(x, x).size() == 0", Outcome.FAILED),
        ('dyn(tags).exists(x, x == "latest") || dyn(size)', Outcome.PASSED),
        ("dyn(size) || true", Outcome.PASSED),
        ("dyn(size) && true", Outcome.FAILED),
    ],
)
def test_comprehensions_and_logic_follow_cel(text: str, outcome: Outcome) -> None:
    assert judge(text)[0] is outcome


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dyn(size).exists(x, true)", "exists() walks a list or a map, not int"),
        ("dyn(tags).exists(x, x)", "the body of exists() gives string, not a bool"),
        ("dyn(size) && true", "no matching overload for _&&_ applied to '(int, bool)'"),
    ],
)
def test_type_errors_at_run_time_say_so(text: str, reason: str) -> None:
    assert reason in judge(text)[1]


def test_an_error_absorbed_by_the_logic_does_not_fail() -> None:
    assert judge('has(labels.owner) && labels.owner == "me"')[0] is Outcome.FAILED
    assert judge('!has(labels.owner) || labels.owner == "me"')[0] is Outcome.PASSED
    assert judge('labels.owner == "me" || tag == "1.2-stable"')[0] is Outcome.PASSED


def test_one_compiled_expression_judges_many_images() -> None:
    expression = compiled('tag.endsWith("-stable") && vulnerabilities.critical == 0')
    outcomes = [
        expression.evaluate(replace(FACTS, tag=t, vulnerabilities=VulnCounts(critical=c)), NOW)
        for t, c in (("1-stable", 0), ("1-stable", 1), ("1-dev", 0))
    ]
    assert [e.outcome for e in outcomes] == [Outcome.PASSED, Outcome.FAILED, Outcome.FAILED]


# --- any text: an expression or a refusal, never another error ----------------------------

_PIECES = st.sampled_from(
    [
        "tag",
        "tags",
        "size",
        "labels",
        "components",
        "vulnerabilities",
        "now",
        "c",
        "x",
        ".",
        ",",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ":",
        "?",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        " && ",
        " || ",
        " == ",
        " < ",
        " in ",
        ".exists(",
        ".all(",
        ".map(",
        ".filter(",
        ".size()",
        ".name",
        ".critical",
        "has(",
        "dyn(",
        "size(",
        "version_compare(",
        "duration(",
        "timestamp(",
        "int(",
        '"',
        "'",
        '"""',
        "\\",
        "\\\\",
        "\n",
        "//",
        "r",
        "b",
        "1",
        "0",
        "1u",
        "1.5",
        "1e3",
        "true",
        "false",
        "null",
        '"a"',
        "'b'",
        " ",
    ]
)


def compiled_or_refused(text: str) -> Expression | PolicyInvalid:
    try:
        return compiled(text)
    except PolicyInvalid as refused:
        return refused


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_any_text_compiles_or_is_refused(text: str) -> None:
    expression = compiled_or_refused(text)
    if isinstance(expression, PolicyInvalid):
        assert expression.where == "expression"
        return
    (result,) = expression.evaluate(UNSCANNED, NOW).results
    assert result.reason
    (result,) = expression.evaluate(FACTS, NOW).results
    assert result.passed is not None or result.reason.startswith("the expression")
