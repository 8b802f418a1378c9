from django.contrib.auth import views as auth_views
from django.urls import path

from storefront.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginPage.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup_page, name="signup"),
    path("profile/", views.profile_page, name="profile"),
]
