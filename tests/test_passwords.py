"""The password policy: 12 to 128 characters, no composition rules, common passwords refused.

It applies everywhere a password is set.
"""
import pytest
from sqlalchemy import select

from asthron.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordPolicyError,
    check_password_policy,
    common_passwords,
)
from tests.conftest import PASSWORD, Auth, csrf_token

GOOD = "granite lantern orbit velvet"
COMMON = "Password1234"  # on the list once lower-cased


def test_twelve_characters_are_accepted():
    check_password_policy("tulip-harbor")


def test_eleven_characters_are_refused():
    with pytest.raises(PasswordPolicyError, match="at least 12"):
        check_password_policy("tulip-harbo")


def test_sixty_four_characters_and_more_are_accepted():
    check_password_policy("a quiet river runs past the old mill where the heron waits alone")
    check_password_policy(("heron" * 30)[:MAX_LENGTH])


def test_no_character_classes_are_demanded():
    check_password_policy("onlylowercaseletterswithoutdigits")


def test_a_common_password_is_refused_whatever_its_case():
    with pytest.raises(PasswordPolicyError, match="too common"):
        check_password_policy(COMMON)


def test_the_common_list_holds_hundreds_of_lower_case_passwords_the_length_rule_alone_would_accept():
    listed = common_passwords()
    assert len(listed) >= 300
    assert all(len(p) >= MIN_LENGTH and p == p.lower() for p in listed)


def test_create_user_refuses_a_short_password(ctx):
    from asthron.services.tenancy import create_user

    with pytest.raises(PasswordPolicyError):
        create_user(username="shorty", email="shorty@example.com", password="short-pass")


def test_passwords_are_stored_as_scrypt_hashes(ctx, tenants):
    from flask_appbuilder.security.sqla.models import User

    from asthron.extensions import db

    stored = db.session.execute(select(User.password).where(User.id == tenants["a1_staff"])).scalar()
    assert stored.startswith("scrypt:") and PASSWORD not in stored


def test_reset_password_in_code_refuses_a_weak_password(ctx, tenants):
    with pytest.raises(PasswordPolicyError):
        ctx.appbuilder.sm.reset_password(tenants["a1_staff"], "qwertyuiop123")


def add_user(client, app, password):
    """Submit the user admin's add form for user `newcomer`."""
    from flask_appbuilder.security.sqla.models import Role

    from asthron.extensions import db

    with app.app_context():
        role_id = db.session.execute(select(Role.id).where(Role.name == "Staff")).scalar()
    token = csrf_token(client, "/users/add")
    return client.post("/users/add", data={
        "first_name": "New", "last_name": "Comer", "username": "newcomer", "active": "y",
        "email": "newcomer@example.com", "roles": [role_id], "password": password, "conf_password": password,
        "csrf_token": token})


def user_exists(app, username):
    from flask_appbuilder.security.sqla.models import User

    from asthron.extensions import db

    with app.app_context():
        return db.session.execute(select(User.id).where(User.username == username)).first() is not None


def test_user_admin_add_form_refuses_a_common_password(app, client, auth, tenants):
    auth.login("operator")
    response = add_user(client, app, COMMON)
    assert "too common" in response.get_data(as_text=True)
    assert not user_exists(app, "newcomer")


def test_user_admin_add_form_creates_a_user_with_a_long_password(app, client, auth, tenants):
    auth.login("operator")
    add_user(client, app, GOOD)
    assert user_exists(app, "newcomer")


def test_admin_reset_form_refuses_a_short_password_and_keeps_the_old_one(app, client, auth, tenants):
    auth.login("operator")
    path = f"/resetpassword/form?pk={tenants['a1_staff']}"
    response = client.post(path, data={"password": "too-short", "conf_password": "too-short",
                                       "csrf_token": csrf_token(client, path)})
    assert "at least 12" in response.get_data(as_text=True)
    assert Auth(app.test_client()).login("a1_staff").headers["Location"] == "/"


def test_own_reset_form_refuses_a_common_password(app, client, auth, tenants):
    auth.login("a1_staff")
    path = "/resetmypassword/form"
    response = client.post(path, data={"password": COMMON, "conf_password": COMMON,
                                       "csrf_token": csrf_token(client, path)})
    assert "too common" in response.get_data(as_text=True)
    assert Auth(app.test_client()).login("a1_staff", COMMON).headers["Location"] != "/"


def test_reset_form_states_the_policy_instead_of_fabs_disclaimer(app, client, auth, tenants):
    auth.login("a1_staff")
    html = client.get("/resetmypassword/form").get_data(as_text=True)
    assert "At least 12 characters" in html
    assert "does not check" not in html
