"""vendorflow: Airflow 3 pipelines that keep five vendors' data flowing.

Importing this package is cheap on purpose: DAG files import it at parse time,
so nothing here (or in ``vendorflow.datasets`` and ``vendorflow.assets``)
imports pandas, pyarrow, Great Expectations or touches the network.
"""

from __future__ import annotations

__version__ = "0.5.0"
