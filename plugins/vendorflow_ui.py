"""The Airflow plugin that adds the vendorflow page to the Airflow UI (Airflow 3.1+).

The API server mounts ``vendorflow.ui.app`` at ``/vendorflow`` and the UI shows it
under "Vendors" in the navigation. This file lives at the top of the plugins
folder because the plugin manager imports only what ``.airflowignore`` leaves it
(the ``vendorflow`` package itself is a library, not a plugin).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from vendorflow.ui.app import create_app


class VendorflowPlugin(AirflowPlugin):
    name = "vendorflow"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/vendorflow", "name": "vendorflow"}]
    external_views = [
        {
            "name": "Vendors",
            "href": "vendorflow/",
            "destination": "nav",
            "url_route": "vendorflow",
            "icon": "vendorflow/icon.svg",
        }
    ]
