from django.contrib import admin

from inference_app.models import ApiKey, CatalogModel, Deployment, Profile, Project, Team


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = ("name", "base_url", "upstream_model", "weight", "is_enabled", "is_healthy")


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = ("display_name", "model_id", "modality", "context_window", "is_listed")
    search_fields = ("model_id", "display_name")
    inlines = [DeploymentInline]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "base_url", "weight", "is_enabled", "is_healthy")
    list_filter = ("is_enabled", "is_healthy")
    exclude = ()


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "organization")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "concurrency_limit")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    # The hash is useless to an operator and there is no raw key to show.
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "user", "created_at", "last_used_at")


admin.site.register(Profile)
