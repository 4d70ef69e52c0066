"""Generated versions of each scheme, for the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

_small = st.integers(0, 12)
_semver_core = st.builds(lambda a, b, c: f"{a}.{b}.{c}", _small, _small, _small)
_pre_ids = st.lists(
    st.sampled_from(["alpha", "beta", "rc", "0", "1", "2", "10", "x-y"]), min_size=1, max_size=3
)
SEMVERS = st.builds(
    lambda core, pre, build: (
        core + (f"-{'.'.join(pre)}" if pre else "") + (f"+{build}" if build else "")
    ),
    _semver_core,
    st.none() | _pre_ids,
    st.none() | st.sampled_from(["b1", "incompatible"]),
)
GOS = SEMVERS | st.builds(
    lambda base, stamp: f"{base}-{stamp}-abcdef123456",
    st.sampled_from(["0.0.0", "0.1.1-0.", "1.2.3-pre.0."]).map(lambda b: b.rstrip(".")),
    st.integers(20180101000000, 20261231235959),
)
PEP440S = st.builds(
    lambda epoch, release, pre, post, dev: (
        (f"{epoch}!" if epoch else "")
        + ".".join(map(str, release))
        + (f"{pre[0]}{pre[1]}" if pre else "")
        + (f".post{post}" if post is not None else "")
        + (f".dev{dev}" if dev is not None else "")
    ),
    st.integers(0, 2),
    st.lists(_small, min_size=1, max_size=4),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), _small),
    st.none() | _small,
    st.none() | _small,
)
DPKGS = st.builds(
    lambda epoch, upstream, revision: (
        (f"{epoch}:" if epoch is not None else "") + upstream + (f"-{revision}" if revision else "")
    ),
    st.none() | st.integers(0, 3),
    st.from_regex(r"[0-9][0-9a-z.+~]{0,8}", fullmatch=True),
    st.none() | st.from_regex(r"[0-9a-z+.~]{1,6}", fullmatch=True),
)
APKS = st.from_regex(
    r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}[a-c]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]{0,2}){0,2}(-r[0-9]{1,2})?",
    fullmatch=True,
)
RPMS = st.builds(
    lambda epoch, version, release: (
        (f"{epoch}:" if epoch is not None else "") + version + f"-{release}"
    ),
    st.none() | st.integers(0, 2),
    st.from_regex(r"[0-9][0-9a-z.~^_]{0,8}", fullmatch=True),
    st.from_regex(r"[0-9][0-9a-z.~^_]{0,6}", fullmatch=True),
)
COMPOSERS = st.builds(
    lambda prefix, core, modifier, dev, build: prefix + core + modifier + dev + build,
    st.sampled_from(["", "v"]),
    st.lists(_small.map(str), min_size=1, max_size=4).map(".".join)
    | st.sampled_from(["2010-01-02", "20100102-203040", "2010.01", "20150920.0.0"]),
    st.just("")
    | st.builds(
        lambda sep, stability, number: sep + stability + number,
        st.sampled_from(["", "-", ".", "_"]),
        st.sampled_from(["alpha", "a", "beta", "b", "RC", "rc", "patch", "pl", "p", "stable"]),
        st.sampled_from(["", "0", "1", "2", "10", ".1", "-2", "1.2"]),
    ),
    st.sampled_from(["", "", "-dev", ".dev"]),
    st.sampled_from(["", "", "+build.1"]),
) | st.sampled_from(["1.x-dev", "2.1.x-dev", "v1.*-dev"])  # numeric branches
