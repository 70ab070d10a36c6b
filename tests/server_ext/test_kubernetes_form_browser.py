"""The "new cluster" forms offer Kubernetes (headless Chromium, a real JupyterLab): on
the cluster page and in the JupyterLab sidebar, choosing Kubernetes shows its fields
(namespace, image, worker pods at most, CPUs per worker) instead of the local ones, and
bad input is an error in the form that says what is wrong and how to fix it — a name
Kubernetes cannot take, and a server with no access to a Kubernetes cluster (no pod
credentials, no kubeconfig) — with nothing made.

A deploy driven from the page runs in ``test_kubernetes.py`` (the server in a pod of
the Kubernetes stand-in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..browser import ARTIFACTS, JupyterProcess, screenshot
from .test_lab_sidebar_browser import in_lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BAD_NAME = "name must be at most 40 lowercase letters, digits and '-'"
NO_ACCESS = "this Jupyter server has no access to a Kubernetes cluster"


def test_the_forms_offer_kubernetes_and_show_what_is_wrong(tmp_path: Path) -> None:
    def drive(page: Any, server: JupyterProcess) -> None:
        _cluster_page(page, server)
        _lab_sidebar(page, server)
        assert server.request("GET", "nbcluster/api/clusters") == (200, {"clusters": []})

    # No credentials at all: not in a pod, no kubeconfig.
    in_lab(tmp_path, drive, "kubernetes-form-failure",
           env={"KUBECONFIG": str(tmp_path / "no-kubeconfig"), "KUBERNETES_SERVICE_HOST": ""})


def _cluster_page(page: Any, server: Any) -> None:
    from playwright.sync_api import expect

    page.goto(server.url("nbcluster/"))
    expect(page.locator("body[data-ready='true']")).to_have_count(1)
    form = page.locator("#create-form")
    kubernetes, local_only = form.locator("#create-kubernetes"), form.locator("#create-cpus")
    expect(kubernetes).to_be_hidden()
    expect(local_only).to_be_visible()
    form.locator("#create-provider-kubernetes").check()
    expect(kubernetes).to_be_visible()
    for field in ("#create-namespace", "#create-image", "#create-workers-max", "#create-worker-cpus"):
        expect(form.locator(field)).to_be_visible()
    expect(local_only).to_be_hidden()
    expect(form.locator("#create-mode-fixed")).to_be_hidden()

    error = form.locator("#create-error")
    form.locator("#create-name").fill("Bad_Name")
    form.locator("#create-submit").click()
    expect(error).to_contain_text(BAD_NAME)
    expect(error).to_contain_text("'Bad_Name'")
    form.locator("#create-name").fill("demo")
    form.locator("#create-namespace").fill("ml")
    form.locator("#create-submit").click()
    expect(error).to_contain_text(NO_ACCESS)
    expect(error).to_contain_text("kubeconfig")
    expect(page.locator("[data-testid='cluster-row']")).to_have_count(0)
    screenshot(page, "kubernetes-form-page")

    form.locator("#create-provider-local").check()
    expect(kubernetes).to_be_hidden()
    expect(local_only).to_be_visible()


def _lab_sidebar(page: Any, server: Any) -> None:
    from playwright.sync_api import expect

    page.goto(server.url("lab"))
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='nbcluster-sidebar']").click()
    sidebar = page.locator("#nbcluster-sidebar")
    expect(sidebar.locator("[data-part='empty']")).to_contain_text("No clusters yet")
    sidebar.locator("[data-action='new']").click()
    form = sidebar.locator("[data-testid='nbc-create']")
    kubernetes, workers = form.locator("[data-testid='nbc-kubernetes']"), form.locator("[name='workers']")
    expect(workers).to_be_visible()
    expect(kubernetes).to_be_hidden()
    form.locator("[data-testid='nbc-provider']").select_option("kubernetes")
    expect(kubernetes).to_be_visible()
    for name in ("namespace", "image", "workers_max", "worker_cpus"):
        expect(form.locator(f"[name='{name}']")).to_be_visible()
    expect(workers).to_be_hidden()

    error = form.locator(".nbc-form-error")
    form.locator("[name='name']").fill("Bad_Name")
    form.locator("button[type='submit']").click()
    expect(error).to_contain_text(BAD_NAME)
    form.locator("[name='name']").fill("demo")
    form.locator("[name='workers_max']").fill("2")
    form.locator("button[type='submit']").click()
    expect(error).to_contain_text(NO_ACCESS)
    expect(sidebar.locator("[data-testid='nbc-cluster']")).to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    form.screenshot(path=str(ARTIFACTS / "kubernetes-form-sidebar.png"))
