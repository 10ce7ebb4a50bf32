"""What the MLflow UI (3.17) opens on for an evalkit experiment: the training runs table, with loss,
seed, dataset, model and the headline test metrics as columns, sorted by ``test/macro_f2``.

How MLflow 3.17's UI decides (read from its bundled JavaScript, ``mlflow/server/js/build``):

* **The view** (GenAI "Overview" with traces and an assistant, or the machine-learning runs table)
  follows the global *workflow type*: the URL query parameter ``workflowType`` (``genai`` or
  ``machine_learning``), else the browser's ``localStorage`` key ``mlflow.workflowType``, else
  ``genai``. The experiment tag ``mlflow.experimentKind`` (``custom_model_development`` for the
  training view) is what MLflow 3.2-3.x UIs without the workflow switch read; 3.17 shows it only as
  the experiment's type. evalkit sets the tag (older UIs) and puts ``workflowType=machine_learning``
  in the links it prints (3.17).
* **The runs table** honours the URL parameters ``searchFilter``, ``orderByKey``, ``orderByAsc``,
  ``startTime``, ``lifecycleFilter``, ``modelVersionFilter``, ``datasetsFilter``. Shown columns are
  not a URL parameter; they come from a *shared view*: the URL parameter ``viewStateShareKey=KEY``
  loads the JSON in the experiment tag ``mlflow.sharedViewState.KEY`` (search facets and UI state,
  e.g. ``selectedColumns`` and ``columnOrder`` as ``params.`loss```, ``metrics.`test/macro_f2```,
  ``attributes.`Dataset```).
  The share key is ignored when any search-facet parameter is also in the URL, so evalkit's link
  carries the sort order inside the shared view.

Nothing here imports mlflow.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

#: experiment tag read by MLflow UIs to pick the experiment's view; value of the training view
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: the shared view evalkit stores on each experiment (tag ``mlflow.sharedViewState.evalkit-runs``)
SHARE_KEY = "evalkit-runs"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARE_KEY}"
#: the runs table's sort metric
SORT_METRIC = "test/macro_f2"
#: columns shown without clicks, left to right after the run name and date (``columnOrder``; without
#: it the UI groups metrics before params, each alphabetically): what fits a 1600 px window first
#: (``tags.`evalkit.gates```: pass / fail of a gated ``evaluate`` job, empty for training runs)
COLUMNS = (("params", "loss"), ("params", "seed"), ("metrics", "test/macro_f2"), ("tags", "evalkit.gates"),
           ("metrics", "test/micro_f2"),
           ("metrics", "test/macro_map"), ("attributes", "Dataset"), ("attributes", "Models"),
           ("metrics", "test/macro_f1"), ("metrics", "test/subset_accuracy"), ("params", "folds"))


def column(kind: str, key: str) -> str:
    """MLflow's canonical column key: ``params.`loss```, ``metrics.`test/macro_f2```,
    ``tags.`evalkit.gates``` (the UI's column types: attributes, params, metrics, tags)."""
    return f"{kind}.`{key}`"


def view_state() -> dict:
    """The shared view (search facets + UI state) stored in :data:`SHARED_VIEW_TAG`."""
    return {
        "searchFilter": "",
        "orderByKey": column("metrics", SORT_METRIC),
        "orderByAsc": False,
        "selectedColumns": [column(kind, key) for kind, key in COLUMNS],
        "columnOrder": [column(kind, key) for kind, key in COLUMNS],
    }


def experiment_tags() -> dict[str, str]:
    """Experiment tags evalkit sets on every experiment it logs to."""
    return {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
            SHARED_VIEW_TAG: json.dumps(view_state(), separators=(",", ":"))}


def runs_view_url(base_url: str, experiment_id: str | None = None) -> str:
    """The link to the training runs table of ``experiment_id`` (the experiments list when None),
    in the machine-learning view, with evalkit's columns and sort order."""
    base = base_url.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?{urlencode({'workflowType': 'machine_learning'})}"
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": SHARE_KEY})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The link to one run's page (machine-learning view)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
