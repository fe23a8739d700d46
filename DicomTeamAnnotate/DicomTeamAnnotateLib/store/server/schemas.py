"""The server's request and response bodies as pydantic models: what ``/openapi.json`` documents.

Requests forbid unknown fields (a typo is refused, not ignored).  Responses are documented
with these models, but routes hand back plain dicts already checked by the service (no second
validation pass on every answer: listings can be large and are polled).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from DicomTeamAnnotateLib.store.model import MAX_MESSAGE

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VERSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
FILENAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._ +-]{0,199}$"


def pattern(regex: str, max_length: int | None = None) -> dict:
    """Field/Param keywords that DOCUMENT a pattern in the spec without enforcing it in pydantic: the
    store's own checks (model.check_*) refuse a bad value with a message naming the rule."""
    extra = {"pattern": regex, **({"maxLength": max_length} if max_length else {})}
    return {"json_schema_extra": extra}


Kind = Literal["annotation", "adjudicated", "prediction"]
State = Literal["todo", "in_progress", "submitted", "in_review", "adjudicated"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# ----- errors ----------------------------------------------------------------------------------------
class ErrorBody(_Response):
    """The one error shape: a sentence for people and the error's class for programs."""

    detail: str = Field(description="what went wrong, naming the field, id or value")
    error: str = Field(description="InvalidInput, Unauthorized, Forbidden, NotFound, Conflict, ...")
    offset: int | None = Field(None, description="upload conflicts only: the offset to resume from")


# ----- requests --------------------------------------------------------------------------------------
class SetStateRequest(_Request):
    """Move a case (reviewers, ``annotator`` null) or an annotator's work on it."""

    state: State
    annotator: str | None = Field(None, **pattern(ID_PATTERN, 128))


class CreateUploadRequest(_Request):
    """Start a push: the version's fields and the size of the .seg.nrrd that follows in chunks."""

    size: int = Field(gt=0, description="bytes of the .seg.nrrd that will be sent")
    sha256: str | None = Field(None, **pattern(SHA256_PATTERN),
                               description="optional: checked at finalize against the bytes received")
    filename: str | None = Field(None, **pattern(FILENAME_PATTERN, 200))
    parent: str | None = Field(None, **pattern(VERSION_ID_PATTERN, 64))
    kind: Kind = "annotation"
    message: str | None = Field("", json_schema_extra={"maxLength": MAX_MESSAGE})
    meta: dict[str, Any] | None = None
    version_id: str | None = Field(None, **pattern(VERSION_ID_PATTERN, 64),
                                   description="chosen by the client so that a retried push is idempotent")


class FinalizeRequest(_Request):
    """Finish an upload; ``sha256`` is needed unless every chunk carried X-Chunk-CRC32C."""

    sha256: str | None = Field(None, **pattern(SHA256_PATTERN))


# ----- responses -------------------------------------------------------------------------------------
class Health(_Response):
    ok: bool
    project: str | None


class MemberOut(_Response):
    user: str
    role: Literal["annotator", "reviewer", "admin"]


class ProjectOut(_Response):
    name: str
    labels: list[dict[str, Any]]
    blind: bool
    window_preset: str | None


class CaseOut(_Response):
    case_id: str
    patient_id: str
    image_sha256: str | None
    image_size: int | None
    image_name: str
    geometry: dict[str, Any]
    added: str | None
    source: str | None
    reference: dict[str, Any] | None
    attributes: dict[str, str]


class AssignmentOut(_Response):
    case_id: str
    user: str


class VersionOut(_Response):
    id: str
    case_id: str
    author: str
    parent: str | None
    created: str
    message: str
    sha256: str
    size: int
    kind: Kind
    meta: dict[str, Any] | None
    filename: str
    conflict: bool


class LatestOut(_Response):
    version: VersionOut | None


class StatesOut(_Response):
    case_id: str
    state: State
    override: State | None
    annotators: dict[str, State]


class WorklistRow(_Response):
    case_id: str
    patient_id: str
    state: State
    my_state: State
    case_state: State
    latest_version: str | None
    n_versions: int
    conflict: bool
    annotators: dict[str, State] | None = None
    prediction: dict[str, Any] | None = Field(None, description="the model's latest prediction of the case: id, "
                                              "model, job_id, weights_sha256, round, uncertainty")
    score: float | None = Field(None, description="the prediction's uncertainty (mean softmax entropy inside the "
                                "predicted foreground): what the `uncertainty` order sorts by")


class AuditEntry(_Response):
    id: str
    time: str
    actor: str
    type: str
    case_id: str | None
    data: dict[str, Any]


class UploadOut(_Response):
    upload_id: str
    offset: int
    size: int
    sha256: str | None = None


class UploadStarted(_Response):
    """Either an upload session to send chunks to, or (a retried push) the version that exists."""

    upload_id: str | None = None
    offset: int | None = None
    size: int | None = None
    version: VersionOut | None = None
