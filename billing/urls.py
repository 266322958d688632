from django.urls import path

from billing import member_views, views

# The billing and Members pages for organization admins, mounted at /billing/.
app_name = "billing"
urlpatterns = [
    path("", views.billing_home, name="home"),
    path("usage/", views.billing_usage, name="usage"),
    path("usage/export.csv", views.billing_usage_export, name="usage_export"),
    path("members/", member_views.members, name="members"),
]
