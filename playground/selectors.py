"""Reads for the web UI: catalog cards, the user's projects, the header's context."""

from django.db.models import Exists, OuterRef, QuerySet

from billing.selectors import administers_any_organization
from inference_app.models import ApiKey, CatalogModel, Deployment, Project
from inference_app.projects import project_for_user, projects_readable, projects_usable
from playground.model_health import with_health


def _with_served(qs: QuerySet[CatalogModel]) -> QuerySet[CatalogModel]:
    # "Served" = at least one enabled deployment; health changes minute to minute, so it is
    # not part of availability shown on a card.
    enabled = Deployment.objects.filter(model=OuterRef("pk"), is_enabled=True)
    return qs.annotate(served=Exists(enabled))


def catalog_cards() -> list[CatalogModel]:
    """Every listed model, each with `.served`, in catalog order."""
    return list(_with_served(CatalogModel.objects.filter(is_listed=True)))


def served_models() -> list[CatalogModel]:
    """Served models, each with its health (playground/model_health.py) for the picker."""
    return with_health([m for m in catalog_cards() if m.served])


def catalog_model_find(*, model_id: str) -> CatalogModel | None:
    """The model, with `.served` and its health (playground/model_health.py), or None."""
    model = _with_served(CatalogModel.objects.filter(model_id=model_id)).first()
    return with_health([model])[0] if model is not None else None


def user_projects(*, user) -> QuerySet[Project]:
    """Projects the user may use (their team's, in an organization they belong to)."""
    return projects_usable(user_id=user.pk)


def current_project(*, user) -> Project | None:
    """The project a request without one runs in: the same rule as the API's."""
    return project_for_user(user_id=user.pk, path=None)


def readable_project_ids(*, user) -> list[int]:
    """The projects whose calls and sessions the user may read (the traces access rule: the
    projects they may use, and every project of an organization they administer)."""
    return list(projects_readable(user_id=user.pk).values_list("pk", flat=True))


def header_context(*, user) -> dict:
    if user is None or not user.is_authenticated:
        return {"projects": [], "current_project": None, "is_billing_admin": False}
    project = current_project(user=user)
    return {
        "projects": list(user_projects(user=user)),
        "current_project": project,
        # Any org admin gets the link, even one with no project yet: the billing page is per
        # organization, not per project.
        "is_billing_admin": administers_any_organization(user=user),
    }


def user_api_keys(*, user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")
