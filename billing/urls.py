from django.urls import path

from billing import member_views, plan_views, views

# The billing and Members pages for organization admins, mounted at /billing/.
app_name = "billing"
urlpatterns = [
    path("", views.billing_home, name="home"),
    path("usage/", views.billing_usage, name="usage"),
    path("usage/export.csv", views.billing_usage_export, name="usage_export"),
    path("members/", member_views.members, name="members"),
    path("plan/", plan_views.plan_page, name="plan"),
    path("plan/change/", plan_views.plan_change, name="plan_change"),
    path("plan/cancel/", plan_views.plan_cancel, name="plan_cancel"),
    path("plan/cap/", plan_views.spend_cap, name="spend_cap"),
]
