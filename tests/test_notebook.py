"""notebooks/feature_browser.ipynb runs top to bottom on the quick run (so it cannot rot)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_feature_browser_notebook_executes(quick_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    run, _ = quick_run
    monkeypatch.setenv("SAELAB_RUN", str(run))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(ROOT / "notebooks" / "feature_browser.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs if o.output_type == "display_data")
    assert "latent #" in text and "steered:" in text
    assert 'class="ctx"' in html and "<table>" in html
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type == "display_data")
    assert text.count("plain:") == text.count("steered:") == 4  # the four prompts, each both ways
