from django.contrib.auth import views as auth_views
from django.urls import path, re_path
from django.views.generic import RedirectView

from playground import account_views, catalog_views, chat_views, session_views

# A session id: 32 lowercase hex digits (traces.sessions.new_session_id).
SESSION = r"(?P<session_id>[0-9a-f]{32})"

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
    path("playground/history", session_views.history, name="playground_history"),
    re_path(
        rf"^playground/s/{SESSION}$", session_views.session_permalink, name="session_permalink"
    ),
    re_path(
        rf"^playground/s/{SESSION}/continue$",
        session_views.session_continue,
        name="session_continue",
    ),
    re_path(
        rf"^playground/s/{SESSION}\.json$",
        session_views.session_export_json,
        name="session_export_json",
    ),
    re_path(
        rf"^playground/s/{SESSION}\.md$",
        session_views.session_export_markdown,
        name="session_export_markdown",
    ),
]
