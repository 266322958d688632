from django.urls import path  # noqa: F401

# Sign-in/up, the Inference page, the Playground and Compare.
urlpatterns: list = []
