import pytest
from django.test import Client

from storefront.accounts.models import User
from tests.factories import TEST_PASSWORD, UserFactory
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db

SIGNUP = {
    "username": "newbie",
    "email": "Newbie@Example.com",
    "full_name": "New Bie",
    "password1": "a-long-unusual-passphrase",
    "password2": "a-long-unusual-passphrase",
}


def test_signup_creates_account_and_logs_in(client: Client) -> None:
    response = client.post("/accounts/signup/", SIGNUP)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = User.objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert user.check_password("a-long-unusual-passphrase")
    assert "Hello, New Bie" in client.get("/dashboard/").content.decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password2": "different"}, "The two password fields didn’t match."),
        ({"password1": "123", "password2": "123"}, "This password is too short."),
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"email": "taken@example.com"}, "An account with this email address already exists."),
        ({"username": "taken"}, "A user with that username already exists."),
        ({"username": "bad name!"}, "Enter a valid username."),
    ],
)
def test_signup_rejects_bad_input(client: Client, change: dict, message: str) -> None:
    UserFactory(username="taken", email="taken@example.com")
    response = client.post("/accounts/signup/", {**SIGNUP, **change})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.filter(username=SIGNUP["username"]).exists()


def test_login_and_logout(client: Client) -> None:
    user = UserFactory(username="ada")
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": TEST_PASSWORD, "next": "/orders/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/orders/"
    assert int(client.session["_auth_user_id"]) == user.pk
    assert client.get("/accounts/logout/").status_code == 405  # logout is POST only
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_login_failure_is_400_with_message(client: Client) -> None:
    UserFactory(username="ada")
    response = client.post("/accounts/login/", {"username": "ada", "password": "wrong"})
    assert response.status_code == 400
    assert "did not match" in response.content.decode()


def test_login_ignores_offsite_next(client: Client) -> None:
    UserFactory(username="ada")
    response = client.post(
        "/accounts/login/",
        {"username": "ada", "password": TEST_PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == "/dashboard/"


def test_profile_edit(client: Client) -> None:
    user = UserFactory()
    client.force_login(user)
    assert client.get("/accounts/profile/").status_code == 200
    response = client.post(
        "/accounts/profile/",
        {
            "full_name": "Ada L.",
            "email": user.email,
            "phone": "+44 20 0000",
            "address_line": "12 Engine Way",
            "city": "London",
            "postal_code": "N1",
            "country": "UK",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.full_name, user.city, user.marketing_opt_in) == ("Ada L.", "London", False)
    assert "12 Engine Way" in user.shipping_address


def test_profile_rejects_duplicate_email(client: Client) -> None:
    UserFactory(email="taken@example.com")
    user = UserFactory()
    client.force_login(user)
    response = client.post("/accounts/profile/", {"email": "taken@example.com"})
    assert response.status_code == 400
    assert "Another account uses this email address." in response.content.decode()
    user.refresh_from_db()
    assert user.email != "taken@example.com"


def test_profile_needs_login(client: Client) -> None:
    assert (
        client.get("/accounts/profile/")["Location"] == "/accounts/login/?next=/accounts/profile/"
    )


def test_auth_pages_query_budget(client: Client) -> None:
    assert queries_for(client, "/accounts/login/") == 0
    assert queries_for(client, "/accounts/signup/") == 0
    client.force_login(UserFactory())
    # The user; the session comes from the cache (cached_db).
    assert queries_for(client, "/accounts/profile/") == 1


def test_login_page_offers_signup_that_comes_back_to_next(client: Client) -> None:
    login_page = client.get("/accounts/login/?next=/checkout/").content.decode()
    assert 'id="signup-link" href="/accounts/signup/?next=/checkout/"' in login_page
    signup_page = client.get("/accounts/signup/?next=/checkout/").content.decode()
    assert '<input type="hidden" name="next" value="/checkout/">' in signup_page
    response = client.post("/accounts/signup/", {**SIGNUP, "next": "/checkout/"})
    assert response.status_code == 302
    assert response["Location"] == "/checkout/"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/checkout/", "javascript:alert(1)"]
)
def test_signup_ignores_a_next_that_leaves_the_site(client: Client, target: str) -> None:
    page = client.get("/accounts/signup/", {"next": target}).content.decode()
    assert "evil.example" not in page and "javascript:" not in page
    response = client.post("/accounts/signup/", {**SIGNUP, "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
