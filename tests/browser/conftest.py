"""A real Airflow (api-server, scheduler, dag-processor, triggerer) on the sandbox, and Debian's Chromium.

The Airflow is ``make airflow``'s own (``include.airflow_local``) with its own
home, data root and state, a real signed-in user instead of the local
all-admins mode, and every DAG unpaused, so the scheduler runs each once for
the last complete day, as it does on a laptop. Screenshots of every step go to
``test-artifacts/browser/`` (``VENDORFLOW_TEST_ARTIFACTS`` moves them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from include.airflow_local import LocalAirflow, running_airflow
from include.sandbox.control import free_port, running_sandbox

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("VENDORFLOW_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts")) / "browser"
USER, PASSWORD = "tester", "browser-test-password"


@dataclass
class UI:
    airflow: LocalAirflow
    data_root: Path
    token: str

    @property
    def url(self) -> str:
        return self.airflow.url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=60, **kwargs
        )
        assert response.status_code < 400, f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}"
        return response.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_run(self, dag_id: str, conf: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """The run triggered with ``conf``, once finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.airflow.check_alive()
            # The trigger form sends every param: a run is ours when its conf holds ``conf``.
            mine = [r for r in self.runs(dag_id) if conf.items() <= (r.get("conf") or {}).items()]
            if mine and mine[0]["state"] in ("success", "failed"):
                return mine[0]
            time.sleep(2)
        raise AssertionError(
            f"no finished {dag_id} run with conf {conf} within {timeout:.0f} s\n{self.airflow.tails()}"
        )

    def wait_until_idle(self, timeout: float = 600) -> dict[str, list[str]]:
        """Until no run of any DAG is queued or running (twice in a row: asset events start new runs)."""
        deadline, quiet = time.monotonic() + timeout, 0
        states: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            self.airflow.check_alive()
            dags = [d["dag_id"] for d in self.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]]
            states = {dag: [r["state"] for r in self.runs(dag)] for dag in dags}
            busy = any(s in ("queued", "running") for runs in states.values() for s in runs)
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return states
            time.sleep(3)
        raise AssertionError(f"DAG runs still active after {timeout:.0f} s: {states}\n{self.airflow.tails()}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    root = tmp_path_factory.mktemp("browser")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    data_root = root / "data"
    with running_sandbox(None, log_path=root / "sandbox.log") as sandbox:
        overrides = {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",  # a real sign-in: the page must demand it
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW_VAR_DATA_ROOT": str(data_root),
            "VENDORFLOW_STATE_DIR": str(root / "state"),
            "AIRFLOW_VAR_PII_HMAC_KEY": "browser-test-key",
        }
        with running_airflow(
            sandbox.base_url, home=root / "airflow", port=free_port(), paused=False, env_overrides=overrides
        ) as airflow:
            answer = requests.post(
                f"{airflow.url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30
            )
            assert answer.status_code < 400, f"no API token for {USER}: HTTP {answer.status_code} {answer.text[:300]}"
            yield UI(airflow, data_root, answer.json()["access_token"])


# Module-scoped: Playwright's sync API runs an event loop in the main thread while it is open, and
# every later asyncio.run() (Airflow's triggers in the e2e tests) would fail inside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: the browser tests drive Debian's Chromium. `make test` installs it "
            f"(apt-get install chromium); or set CHROMIUM=/path/to/chromium.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def signed_in(ui: UI, browser: Any) -> Iterator[Any]:
    """A browser page signed in through Airflow's own login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{ui.url}/vendorflow/")
    page.wait_for_url("**/auth/login**")  # the vendorflow page is behind Airflow's authentication
    shot(page, "00-sign-in")
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/vendorflow/")
    yield page
    context.close()


def shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def publish_screenshot(path: Path, name: str) -> None:
    """With ``VENDORFLOW_UPDATE_SCREENSHOTS=1``, refresh the README's copy of a screenshot."""
    if os.environ.get("VENDORFLOW_UPDATE_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "screenshots" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
