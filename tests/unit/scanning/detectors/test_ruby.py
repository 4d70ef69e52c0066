"""The Ruby detector: installed gemspecs, read and never evaluated."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning.detectors.langkit import detect, wanted
from trustyard.scanning.detectors.ruby import DETECTOR

GEMS = "usr/local/bundle/specifications"
SYSTEM = "usr/lib/ruby/gems/3.1.0/specifications"

RAKE = b"""# -*- encoding: utf-8 -*-
# stub: rake 13.0.6 ruby lib

Gem::Specification.new do |s|
  s.name = "rake".freeze
  s.version = "13.0.6"

  s.required_rubygems_version = Gem::Requirement.new(">= 1.3.2".freeze) if \
    s.respond_to? :required_rubygems_version=
  s.metadata = { "bug_tracker_uri" => "https://example.invalid/" } if s.respond_to? :metadata=
  s.require_paths = ["lib".freeze]
  s.authors = ["Hiroshi SHIBATA".freeze, "Eric Hodel".freeze]
  s.description = "Rake is a Make-like program.\\n  s.name = \\"fake\\"".freeze
  s.licenses = ["MIT".freeze]
  s.required_ruby_version = Gem::Requirement.new(">= 2.2".freeze)
  s.rubygems_version = "3.3.5".freeze
  s.summary = "Rake is a Make-like program implemented in Ruby".freeze

  s.installed_by_version = "3.3.5" if s.respond_to? :installed_by_version
end
"""

BIGDECIMAL = b"""# -*- encoding: utf-8 -*-
# stub: bigdecimal 3.1.1 ruby lib

Gem::Specification.new do |s|
  s.name = "bigdecimal".freeze
  s.version = "3.1.1"
  s.licenses = ["Ruby".freeze, "BSD-2-Clause".freeze]
end
"""

NOKOGIRI = b"""# stub: nokogiri 1.13.10 x86_64-linux lib
Gem::Specification.new do |spec|
  spec.name = 'nokogiri'
  spec.version = '1.13.10'
  spec.platform = "x86_64-linux".freeze
  spec.license = "MIT".freeze
end
"""


def test_installed_gemspecs() -> None:
    files = {
        f"{GEMS}/rake-13.0.6.gemspec": RAKE,
        f"{SYSTEM}/default/bigdecimal-3.1.1.gemspec": BIGDECIMAL,
        f"{GEMS}/nokogiri-1.13.10-x86_64-linux.gemspec": NOKOGIRI,
    }
    found = detect(DETECTOR, files)
    assert [(c.ecosystem, c.name, c.version, c.purl, c.licenses, c.locations) for c in found] == [
        (
            "gem",
            "bigdecimal",
            "3.1.1",
            "pkg:gem/bigdecimal@3.1.1",
            "Ruby OR BSD-2-Clause",
            (f"{SYSTEM}/default/bigdecimal-3.1.1.gemspec",),
        ),
        (
            "gem",
            "nokogiri",
            "1.13.10",
            "pkg:gem/nokogiri@1.13.10",
            "MIT",
            (f"{GEMS}/nokogiri-1.13.10-x86_64-linux.gemspec",),
        ),
        ("gem", "rake", "13.0.6", "pkg:gem/rake@13.0.6", "MIT", (f"{GEMS}/rake-13.0.6.gemspec",)),
    ]
    assert {c.detector for c in found} == {"ruby"}


def test_the_stub_line_names_a_gem_whose_fields_are_not_literals() -> None:
    data = b"# stub: odd 0.4.2 ruby lib\nGem::Specification.new do |s|\n  s.name = NAME\nend\n"
    [found] = detect(DETECTOR, {f"{GEMS}/odd-0.4.2.gemspec": data})
    assert (found.name, found.version, found.licenses) == ("odd", "0.4.2", None)


def test_a_gemspec_is_never_evaluated() -> None:
    data = (
        b"Gem::Specification.new do |s|\n"
        b'  s.name = File.read("/etc/hostname")\n'
        b"  s.version = `id`\n"
        b"end\n"
    )
    assert detect(DETECTOR, {f"{GEMS}/evil-1.gemspec": data}) == []


def test_only_installed_gemspecs_count() -> None:
    files = {
        "app/myapp.gemspec": RAKE,  # a project's own gemspec: source, not an installed gem
        "usr/local/bundle/gems/rake-13.0.6/rake.gemspec": RAKE,
        f"{GEMS}/nested/rake-13.0.6.gemspec": RAKE,
    }
    assert detect(DETECTOR, files) == []
    assert wanted(DETECTOR, f"{GEMS}/rake-13.0.6.gemspec")
    assert not wanted(DETECTOR, "app/myapp.gemspec")
    assert not wanted(DETECTOR, f"{GEMS}/rake-13.0.6.gemspec.bak")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), text=st.text(max_size=512))
def test_malformed_gemspecs_never_raise(data: bytes, text: str) -> None:
    files = {
        f"{GEMS}/a.gemspec": data,
        f"{GEMS}/b.gemspec": b"s.name = " + text.encode() + b"\ns.version = " + data,
        f"{GEMS}/c.gemspec": b"# stub: " + text.encode(),
    }
    for component in detect(DETECTOR, files):
        assert component.name
        assert component.purl.startswith("pkg:gem/")
