"""Django admin for billing: grant credits and change plans through the services (so every move
is in the ledger), and read-only views of the ledger, invoices and rollups."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing.credits import grant_credits
from billing.models import (
    MICROS_PER_DOLLAR,
    CreditGrant,
    Invoice,
    LedgerEntry,
    Membership,
    Organization,
    Plan,
    PlanChange,
    UsageRecord,
    UsageRollup,
)
from billing.organizations import organization_change_plan, organization_create
from billing.tasks import rollup_usage_day


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by services only: the admin shows it and never edits it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "code",
        "included_credits_micros",
        "credit_validity_days",
        "allows_overage",
        "monthly_spend_cap_micros",
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


class CreditGrantInline(ReadOnlyInline):
    model = CreditGrant
    fields = ("kind", "amount_micros", "remaining_micros", "expires_at", "expired_at", "note")


class PlanChangeInline(ReadOnlyInline):
    model = PlanChange
    fk_name = "organization"
    fields = (
        "created_at",
        "from_plan",
        "to_plan",
        "status",
        "effective_at",
        "spend_cap_micros",
        "changed_by",
        "note",
    )


class GrantCreditsForm(forms.Form):
    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    amount_usd = forms.DecimalField(
        label="Amount (USD)", min_value=Decimal("0.000001"), max_digits=14, decimal_places=6
    )
    kind = forms.ChoiceField(choices=CreditGrant.Kind.choices, initial=CreditGrant.Kind.PROMOTION)
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, initial=30, help_text="Blank: never expires"
    )
    note = forms.CharField(required=False, max_length=200)


class ChangePlanForm(forms.Form):
    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    plan = forms.ModelChoiceField(queryset=Plan.objects.all(), to_field_name="code")
    note = forms.CharField(required=False, max_length=200)


def _action_form_page(modeladmin, request, queryset, form, action, title):
    return TemplateResponse(
        request,
        "billing/admin_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "form": form,
            "action": action,
            "queryset": queryset,
            "opts": modeladmin.model._meta,
        },
    )


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "plan", "balance", "reserved_micros", "ledger_link")
    list_filter = ("plan",)
    search_fields = ("name", "slug")
    readonly_fields = (
        "plan",
        "balance_micros",
        "reserved_micros",
        "overage_month",
        "overage_micros",
        "spend_cap_micros",
    )
    inlines = [MembershipInline, CreditGrantInline, PlanChangeInline]
    actions = ["grant_credits_action", "change_plan_action"]

    def get_fields(self, request, obj=None):
        # A new organization needs a plan; afterwards the plan changes only through the action,
        # and the money fields move only through the ledger.
        if obj is None:
            return ("name", "slug", "plan")
        return ("name", "slug", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            # Never obj.save(): it would write back a balance read before this form was posted,
            # erasing every charge since. Only the plain fields the form changed are saved.
            fields = [name for name in form.changed_data if name in ("name", "slug")]
            if fields:
                obj.save(update_fields=fields)
            return
        # A new organization starts like any other: plan change recorded, plan credits granted.
        created = organization_create(name=obj.name, slug=obj.slug, plan_code=obj.plan.code)
        obj.pk = created.pk
        obj._state.adding = False

    @admin.display(description="Balance (USD)", ordering="balance_micros")
    def balance(self, obj):
        return Decimal(obj.balance_micros) / MICROS_PER_DOLLAR

    @admin.display(description="Ledger")
    def ledger_link(self, obj):
        url = reverse("admin:billing_ledgerentry_changelist") + f"?organization__id__exact={obj.pk}"
        return format_html('<a href="{}">entries</a>', url)

    @admin.action(description="Grant credits…")
    def grant_credits_action(self, request, queryset):
        if "apply" in request.POST:
            form = GrantCreditsForm(request.POST)
            if form.is_valid():
                days = form.cleaned_data["expires_in_days"]
                micros = int(form.cleaned_data["amount_usd"] * MICROS_PER_DOLLAR)
                for org in queryset:
                    grant_credits(
                        organization=org,
                        amount_micros=micros,
                        kind=form.cleaned_data["kind"],
                        expires_at=timezone.now() + timedelta(days=days) if days else None,
                        note=form.cleaned_data["note"],
                        created_by=request.user,
                    )
                self.message_user(
                    request, f"Granted credits to {queryset.count()} organization(s)."
                )
                return None
        else:
            form = GrantCreditsForm(
                initial={"_selected_action": request.POST.getlist(ACTION_CHECKBOX_NAME)}
            )
        return _action_form_page(
            self, request, queryset, form, "grant_credits_action", "Grant credits"
        )

    @admin.action(description="Change plan…")
    def change_plan_action(self, request, queryset):
        if "apply" in request.POST:
            form = ChangePlanForm(request.POST)
            if form.is_valid():
                changed = 0
                for org in queryset:
                    change = organization_change_plan(
                        organization=org,
                        plan_code=form.cleaned_data["plan"].code,
                        changed_by=request.user,
                        note=form.cleaned_data["note"],
                    )
                    changed += change is not None
                self.message_user(request, f"Changed the plan of {changed} organization(s).")
                return None
        else:
            form = ChangePlanForm(
                initial={"_selected_action": request.POST.getlist(ACTION_CHECKBOX_NAME)}
            )
        return _action_form_page(self, request, queryset, form, "change_plan_action", "Change plan")


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    """Adding a grant here goes through grant_credits (grant + ledger entry); grants never change."""

    list_display = (
        "organization",
        "kind",
        "amount_micros",
        "remaining_micros",
        "expires_at",
        "expired_at",
        "created_at",
    )
    list_filter = ("kind",)
    list_select_related = ("organization",)
    fields = ("organization", "kind", "amount_micros", "expires_at", "note")

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        grant = grant_credits(
            organization=obj.organization,
            amount_micros=obj.amount_micros,
            kind=obj.kind,
            expires_at=obj.expires_at,
            note=obj.note,
            created_by=request.user,
        )
        obj.pk = grant.pk
        obj.remaining_micros = grant.remaining_micros


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "organization",
        "kind",
        "amount_micros",
        "balance_after_micros",
        "overage_micros",
        "request_id",
        "note",
    )
    list_filter = ("kind",)
    list_select_related = ("organization",)
    search_fields = ("request_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over a million charges on every page


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("month", "organization", "overage_micros", "created_at")
    list_select_related = ("organization",)


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "organization",
        "from_plan",
        "to_plan",
        "status",
        "effective_at",
        "spend_cap_micros",
        "changed_by",
        "note",
    )
    list_filter = ("status",)
    list_select_related = ("organization", "from_plan", "to_plan", "changed_by")


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "organization",
        "team",
        "project",
        "model",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
    )
    list_filter = ("day",)
    list_select_related = ("organization",)
    actions = ["recompute_days"]

    @admin.action(description="Recompute the selected days (queued)")
    def recompute_days(self, request, queryset):
        days = sorted({d.isoformat() for d in queryset.values_list("day", flat=True)})
        for day in days:
            transaction.on_commit(lambda day=day: rollup_usage_day.delay(day))
        self.message_user(request, f"Queued {len(days)} day(s).", messages.INFO)


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
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
    list_select_related = ("organization",)
    search_fields = ("request_id",)
    show_full_result_count = False
