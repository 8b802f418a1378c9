from __future__ import annotations

from django import forms
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from storefront.accounts import notifications, tasks
from storefront.accounts.models import User


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email", "full_name")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address already exists.")
        return email


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = (
            "full_name",
            "email",
            "phone",
            "address_line",
            "city",
            "postal_code",
            "country",
            "marketing_opt_in",
        )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another account uses this email address.")
        return email


class PasswordResetRequestForm(PasswordResetForm):
    """Django's reset form (same users: active, usable password, matching email), whose email
    is sent by a Celery worker instead of inside the request.

    The message is rendered here, from the context Django builds (`domain` is the request's
    host and port, `protocol` its scheme), and handed to the task once the request's
    transaction commits. robust: a broker (or, without one, SMTP) failure is logged and the
    visitor still sees the same "check your inbox" page as for an unknown address.
    """

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict,
        from_email: str | None,  # unused: every shop email comes from DEFAULT_FROM_EMAIL
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        path = reverse(
            "accounts:password_reset_confirm",
            kwargs={"uidb64": context["uid"], "token": context["token"]},
        )
        context = {**context, "reset_url": f"{context['protocol']}://{context['domain']}{path}"}
        subject = "".join(render_to_string(subject_template_name, context).splitlines())
        message = {
            "key": notifications.password_reset_key(context["user"].pk),
            "to": to_email,
            "subject": subject,
            "body": render_to_string(email_template_name, context),
            "html": (
                render_to_string(html_email_template_name, context)
                if html_email_template_name
                else ""
            ),
        }
        # A lambda, not a partial: robust on_commit logs a failure under the callable's
        # __qualname__, which a partial lacks (the logging itself would raise).
        transaction.on_commit(lambda: tasks.send_password_reset_email.delay(**message), robust=True)
