"""The .NET detector: NuGet packages from an application's *.deps.json."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning.detectors.langkit import detect, wanted
from trustyard.scanning.detectors.dotnet import DETECTOR

DEPS = "app/MyApp.deps.json"

DOC: dict[str, Any] = {
    "runtimeTarget": {"name": ".NETCoreApp,Version=v6.0/linux-x64"},
    "targets": {
        ".NETCoreApp,Version=v6.0": {
            "MyApp/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.1"}},
            "Newtonsoft.Json/13.0.1": {
                "runtime": {"lib/net6.0/Newtonsoft.Json.dll": {"assemblyVersion": "13.0.0.0"}}
            },
        },
        ".NETCoreApp,Version=v6.0/linux-x64": {
            "SQLitePCLRaw.lib.e_sqlite3/2.1.2": {
                "native": {"runtimes/linux-x64/native/libe_sqlite3.so": {}}
            },
            "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/6.0.9": {
                "runtime": {"System.Private.CoreLib.dll": {}}
            },
        },
    },
    "libraries": {
        "MyApp/1.0.0": {"type": "project", "serviceable": False, "sha512": ""},
        "Newtonsoft.Json/13.0.1": {
            "type": "package",
            "serviceable": True,
            "sha512": "sha512-x",
            "path": "newtonsoft.json/13.0.1",
        },
        "SQLitePCLRaw.lib.e_sqlite3/2.1.2": {"type": "package", "serviceable": True},
        "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/6.0.9": {
            "type": "runtimepack",
            "serviceable": False,
        },
        "Some.Reference/1.0.0": {"type": "reference"},
        "NoVersion": {"type": "package"},
    },
}


def test_packages_and_runtime_packs_of_a_deps_json() -> None:
    found = detect(DETECTOR, {DEPS: json.dumps(DOC).encode()})
    assert [(c.ecosystem, c.name, c.version, c.purl, c.locations) for c in found] == [
        (
            "nuget",
            "Microsoft.NETCore.App.Runtime.linux-x64",
            "6.0.9",
            "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@6.0.9",
            (DEPS, "app/System.Private.CoreLib.dll"),
        ),
        (
            "nuget",
            "Newtonsoft.Json",
            "13.0.1",
            "pkg:nuget/Newtonsoft.Json@13.0.1",
            (DEPS, "app/Newtonsoft.Json.dll"),
        ),
        (
            "nuget",
            "SQLitePCLRaw.lib.e_sqlite3",
            "2.1.2",
            "pkg:nuget/SQLitePCLRaw.lib.e_sqlite3@2.1.2",
            (DEPS, "app/libe_sqlite3.so"),
        ),
    ]
    assert {(c.detector, c.licenses) for c in found} == {("dotnet", None)}


def test_wanted_files() -> None:
    assert wanted(DETECTOR, DEPS)
    assert wanted(DETECTOR, "Program Files/App/App.deps.json")
    assert not wanted(DETECTOR, "app/MyApp.runtimeconfig.json")
    assert not wanted(DETECTOR, "app/MyApp.dll")


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=1024),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["libraries", "targets", "type", "a/1", "runtime", "package"])
                | st.text(max_size=6),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    ),
)
def test_malformed_deps_json_never_raises(data: bytes, value: Any) -> None:
    files = {
        "a.deps.json": data,
        "b.deps.json": json.dumps(value).encode(),
        "c.deps.json": json.dumps({"libraries": value, "targets": {"t": value}}).encode(),
    }
    for component in detect(DETECTOR, files):
        assert component.purl.startswith("pkg:nuget/")
