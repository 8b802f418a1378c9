from django.conf import settings
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
    path("logout/", views.LogoutPage.as_view(), name="logout"),
    path("signup/", views.signup_page, name="signup"),
    path("profile/", views.profile_page, name="profile"),
    # Password reset by email (the link carries the host, port and scheme the visitor used).
    path("password/reset/", views.PasswordResetPage.as_view(), name="password_reset"),
    path(
        "password/reset/done/",
        views.PasswordResetDonePage.as_view(),
        name="password_reset_done",
    ),
    path("reset/done/", views.PasswordResetCompletePage.as_view(), name="password_reset_complete"),
    path(
        "reset/<uidb64>/<token>/",
        views.PasswordResetConfirmPage.as_view(),
        name="password_reset_confirm",
    ),
    path("password/change/", views.PasswordChangePage.as_view(), name="password_change"),
    path(
        "password/change/done/",
        views.PasswordChangeDonePage.as_view(),
        name="password_change_done",
    ),
]
