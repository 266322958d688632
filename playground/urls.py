from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from playground import account_views, catalog_views, chat_views

# Sign-in/up, API keys, the Inference page, the Playground and Compare.
urlpatterns = [
    path("", RedirectView.as_view(url="/inference/", permanent=False), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", account_views.signup, name="signup"),
    path("settings/keys/", account_views.api_keys, name="api_keys"),
    path("settings/project/", account_views.project_switch, name="project_switch"),
    path("inference/", catalog_views.inference, name="inference"),
    path("inference/models/<path:model_id>", catalog_views.model_detail, name="model_detail"),
    path("playground/", chat_views.playground, name="playground"),
    path("playground/compare", chat_views.compare, name="compare"),
]
