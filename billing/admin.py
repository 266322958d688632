from django.contrib import admin

from billing.models import Membership, Organization, Plan, UsageRecord


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "included_credits_micros", "allows_overage")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "plan", "balance_micros", "reserved_micros")
    readonly_fields = ("balance_micros", "reserved_micros")
    inlines = [MembershipInline]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = (
        "request_id",
        "organization",
        "model",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
        "created_at",
    )
    list_filter = ("status", "source", "model")
