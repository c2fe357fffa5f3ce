"""The Lineage page: the graph from a version down to its data files and their sha256.

The same answer ``adaptune lineage MODEL@vN`` prints (``lineage.query.version_lineage``),
drawn with ``graphs.svg``; the data files are listed beside it with their whole sha256.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from adaptune.errors import UserError
from adaptune.lineage.query import version_lineage
from adaptune.lineage.store import MetadataStore
from adaptune.registry import list_models, survey_model
from adaptune.studio.graphs import svg
from adaptune.studio.lineage_graph import record_graph, recorded_graph
from adaptune.studio.rendering import render

router = APIRouter()
MAX_REF_CHARS = 200


def known_refs(request: Request) -> list[str]:
    """Every registered ``MODEL@vN``, newest version first per model (the form's suggestions)."""
    registry_dir = request.app.state.settings.registry_dir
    return [
        version.ref
        for name in list_models(registry_dir)
        for version in reversed(survey_model(registry_dir, name).versions)
    ]


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(request: Request, ref: str = "") -> HTMLResponse:
    """The form, and with ``?ref=MODEL@vN`` the version's lineage graph."""
    settings = request.app.state.settings
    context: dict[str, object] = {"graph": "", "data_files": [], "error": "", "source": ""}
    ref = ref.strip()
    if ref:
        try:
            if len(ref) > MAX_REF_CHARS:
                raise UserError(f"Version: at most {MAX_REF_CHARS} characters")
            store = MetadataStore(settings.runs_dir, create=False)
            try:
                chain, recorded = version_lineage(store, settings.registry_dir, ref)
            finally:
                store.close()
        except UserError as exc:
            context["error"] = str(exc)
        else:
            graph = recorded_graph(chain) if recorded else record_graph(chain, settings.runs_dir)
            context.update(
                graph=svg(graph.nodes, graph.edges, f"Lineage of {ref}"),
                data_files=graph.data_files,
                source="the runs' metadata store" if recorded else chain["recorded_by"],
            )
    return render(
        request, "lineage.html", title="Lineage", ref=ref, refs=known_refs(request), **context
    )
