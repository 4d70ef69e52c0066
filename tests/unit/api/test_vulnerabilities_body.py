"""The JSON report of an image's vulnerabilities (vulnerabilities/exports.py) is what the
route's OpenAPI document says: every field the model names, no other (schemathesis checks
answers against the document, but its world has no findings to fill the nested ones)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tests.unit.vulnerabilities.test_exports import sample
from trustyard.api.vulnerabilities import ImageVulnerabilitiesOut
from trustyard.vulnerabilities import exports


def same_fields(model: type[BaseModel], document: dict[str, Any], where: str = "") -> None:
    assert set(document) == set(model.model_fields), where
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        value = document[name]
        if inner is None or value is None:
            continue
        for n, item in enumerate(value if isinstance(value, list) else [value]):
            same_fields(inner, item, f"{where}.{name}[{n}]")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def test_the_json_report_has_the_documented_fields() -> None:
    document = exports.to_json(sample(), suppressed=True)
    ImageVulnerabilitiesOut.model_validate(document, strict=False)
    same_fields(ImageVulnerabilitiesOut, document)
    triaged = [
        f
        for layer in document["layers"]
        for c in layer["components"]
        for f in c["findings"]
        if f["triage"]
    ]
    assert triaged  # the nested triage model was checked too
