from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from storefront.accounts import views
from storefront.cache_pages import cache_anonymous_page

app_name = "accounts"
urlpatterns = [
    # The anonymous login page is cached; each client still gets its own CSRF token.
    path(
        "login/",
        cache_anonymous_page(
            "accounts",
            timeout=lambda: settings.STOREFRONT_CACHE_TTL_LOGIN,
            # LoginView sends no-store for browsers (its CSRF token); this cache personalises
            # the token per response, and every hit still carries the no-store header.
            honor_cache_control=False,
        )(views.LoginPage.as_view()),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup_page, name="signup"),
    path("profile/", views.profile_page, name="profile"),
]
