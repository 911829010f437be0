"""Allyy datasets: the daily models snapshot, and the record of every upload this project made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, ledger_pages, param
from vendorflow.vendors.allyy.uploads import LEDGER as UPLOADS_LEDGER  # the upload task's ledger

if TYPE_CHECKING:
    from vendorflow.vendors.allyy.hook import AllyyHook


def _hook(ctx: ExtractContext) -> AllyyHook:
    return ctx.hook


def extract_models(ctx: ExtractContext) -> Iterator[Records]:
    received = 0
    for page in _hook(ctx).models_pages():
        received += len(page)
        # totalItemsCount: the snapshot must hold exactly as many models as Allyy announced.
        ctx.facts["models_announced"] = page.total_records if page.total_records is not None else received
        yield page


def extract_uploads(ctx: ExtractContext) -> Iterator[Records]:
    """The upload ledger of the Allyy account as it is now: every partition ever sent to it, its latest state."""

    def row(entry: Any) -> dict[str, Any] | None:
        if entry.data.get("allyy_account", DEFAULT_ACCOUNT) != ctx.account:
            return None  # another Allyy account's upload (entries from before accounts are the default's)
        data = {k: v for k, v in entry.data.items() if k != "allyy_account"}
        return {**data, "source_account": data.pop("account", DEFAULT_ACCOUNT), "state": entry.status,
                "recorded_at": entry.updated_at.isoformat()}  # fmt: skip

    yield from ledger_pages(UPLOADS_LEDGER, row)


MODELS = DatasetSpec(
    vendor="allyy",
    name="models",
    notes=(
        "snapshot of every model (`GET .../model_v2_1`, take/skip pages until `totalItemsCount`); ids are UUID "
        "strings, the training instants UTC timestamps, `au_roc` `float64` in [0, 1]; as many rows as Allyy announced"
    ),
    description=(
        "Every model of the customer as listed that day (GET .../model_v2_1): training status and AUROC over time."
    ),
    snapshot=True,
    columns=(
        Column("model_id", "string", source="id", required=True, nullable=False),
        Column("customer_id", "string", source="customerId", required=True, nullable=False),
        Column("data_set_id", "string", source="dataSetId"),
        Column("title", "string"),
        Column("type", "int64"),
        Column("status", "int64"),
        Column("training_status", "int64", source="trainingStatus"),
        Column("training_started", "timestamp", source="trainingStarted"),
        Column("training_finished", "timestamp", source="trainingFinished"),
        Column("training_error_code", "int64", source="trainingErrorCode"),
        Column("au_roc", "float64", source="auRoc", description="area under the ROC curve of the last training"),
    ),
    key=("model_id",),
    expectations=(
        Expect("ExpectColumnValuesToBeBetween", column="au_roc", min_value=0, max_value=1),
        Expect("ExpectTableRowCountToEqual", value=param("models_announced")),
    ),
    extract=extract_models,
    # Nested configuration documents of each model type: see include/sandbox/allyy.py; not analysed here.
    ignore_fields=(
        "churnConfiguration",
        "dataSet",
        "description",
        "modelTrainingId",
        "recommenderSystemConfiguration",
        "responsePredictionConfiguration",
    ),
)

UPLOADS = DatasetSpec(
    vendor="allyy",
    name="uploads",
    notes=(
        "snapshot of the upload ledger after every `allyy_upload` run: one row per partition ever sent, its latest "
        "`state` (`sending`, `processing`, `finished`, `failed`) and Allyy's messages; read the latest `dt`"
    ),
    description=(
        "Every partition uploaded to an Allyy datasource: upload id, rows, bytes, state and times "
        "(snapshot of the upload ledger)."
    ),
    snapshot=True,
    columns=(
        Column("dataset", "string", required=True, nullable=False, description="<vendor>/<dataset> uploaded"),
        Column("partition", "date", required=True, nullable=False, description="its dt"),
        Column(
            "source_account",
            "string",
            required=True,
            nullable=False,
            description="the account of the dataset's partition (the row's `account` is the Allyy account)",
        ),
        Column("format", "string", required=True, nullable=False),
        Column("data_set_id", "string", required=True),
        Column("datasource_id", "string", required=True),
        Column("upload_id", "string", description="Allyy's id; empty when the upload was refused"),
        Column("rows", "int64", required=True),
        Column("bytes", "int64", required=True, description="size of the uploaded file"),
        Column("state", "string", required=True, nullable=False, description="sending, processing, finished or failed"),
        Column("allyy_status", "int64", description="Allyy's own status code"),
        Column("processed_lines", "int64"),
        Column("requested_at", "timestamp", required=True),
        Column("finished_at", "timestamp", description="when Allyy finished processing"),
        Column("recorded_at", "timestamp", required=True, description="last change of this record"),
        Column("message", "string", description="Allyy's messages when it refused or failed the upload"),
    ),
    key=("dataset", "partition", "source_account"),
    expectations=(
        Expect(
            "ExpectColumnValuesToBeInSet", column="state", value_set=["sending", "processing", "finished", "failed"]
        ),
        Expect("ExpectColumnValuesToBeInSet", column="format", value_set=["csv", "json"]),
        Expect("ExpectColumnValuesToBeBetween", column="rows", min_value=0),
    ),
    extract=extract_uploads,
    # When the uploaded partition was published and its content hash: kept in the ledger only (a changed
    # partition is uploaded again).
    ignore_fields=("published_at", "content_hash"),
)

DATASETS = (MODELS, UPLOADS)
