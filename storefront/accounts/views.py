from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timeuntil

from storefront.accounts import lockout, services
from storefront.accounts.forms import PasswordResetRequestForm, ProfileForm, SignupForm


def _safe_next(request: HttpRequest) -> str:
    """Where to go after signing up: `next` when it is a path on this site, else ""."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""


def signup_page(request: HttpRequest) -> HttpResponse:
    """Sign up; a sign-up started elsewhere (checkout asks to log in) goes back there (`next`)."""
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "dashboards:customer")
    form = SignupForm(request.POST or None)
    context = {"form": form, "next": next_url}
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            user = services.user_sign_up(
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                full_name=data.get("full_name", ""),
            )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to Storefront, {user.display_name}!")
            return redirect(next_url or "dashboards:customer")
        return render(request, "accounts/signup.html", context, status=400)
    return render(request, "accounts/signup.html", context)


@login_required
def profile_page(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST":
        if form.is_valid():
            services.user_update_profile(user=request.user, **form.cleaned_data)
            messages.success(request, "Your profile is saved.")
            return redirect("accounts:profile")
        return render(request, "accounts/profile.html", {"form": form}, status=400)
    return render(request, "accounts/profile.html", {"form": form})


class InvalidFormIs400:
    """A rejected form is a client error: answer 400 with the form's messages, not 200."""

    def form_invalid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_invalid(form)  # type: ignore[misc]
        response.status_code = 400
        return response


class LoginPage(InvalidFormIs400, auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutPage(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            # Stored in the messages cookie, which also keeps the landing page out of the
            # anonymous page cache (storefront/cache_pages.py), so it shows there, once.
            messages.info(request, "You have been logged out.")
        return response


class PasswordResetPage(InvalidFormIs400, auth_views.PasswordResetView):
    """Asks for an email address; the same "check your inbox" page follows whether or not an
    account has it (no account enumeration). The email goes out through Celery (see the form)."""

    form_class = PasswordResetRequestForm
    template_name = "accounts/password_reset_form.html"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    email_template_name = "accounts/email/password_reset.txt"
    html_email_template_name = "accounts/email/password_reset.html"
    success_url = reverse_lazy("accounts:password_reset_done")

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # No password can fail here, so every request counts towards the login lockout: it
        # bounds the emails one client can send to an address, and its guesses at addresses.
        if lockout.count_password_reset_request(request, email=request.POST.get("email", "")):
            return lockout.lockout_response(request)
        return super().post(request, *args, **kwargs)

    @property
    def extra_email_context(self) -> dict[str, str]:  # type: ignore[override]
        # How long the link lasts, in words ("3 days"), from PASSWORD_RESET_TIMEOUT.
        now = timezone.now()
        lifetime = timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
        return {"expires_in": timeuntil(now + lifetime, now, depth=1).replace("\xa0", " ")}


class PasswordResetDonePage(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmPage(InvalidFormIs400, auth_views.PasswordResetConfirmView):
    """The link from the email. Its token covers the password hash (and the last login), so it
    dies with the reset it allows: good once. A used, expired or mangled link gets a 400 page
    that says so and offers a new one."""

    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def render_to_response(self, context, **response_kwargs):  # type: ignore[no-untyped-def]
        if not self.validlink:
            response_kwargs["status"] = 400
        return super().render_to_response(context, **response_kwargs)


class PasswordResetCompletePage(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


class PasswordChangePage(InvalidFormIs400, auth_views.PasswordChangeView):
    """Old password plus the new one twice. The user stays signed in here (Django updates this
    session's auth hash); their other sessions, which carry the old hash, are signed out."""

    template_name = "accounts/password_change_form.html"
    success_url = reverse_lazy("accounts:password_change_done")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_valid(form)
        messages.success(self.request, "Your password has been changed.")
        return response


class PasswordChangeDonePage(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"
