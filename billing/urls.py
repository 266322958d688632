from django.urls import path  # noqa: F401

# The billing page for organization admins, mounted at /billing/.
urlpatterns: list = []
